// Package meter owns usage: a record of every invocation (stored in
// JetStream, so it survives restarts), rollups per function per hour and
// per day (so a query after millions of invocations reads a few hundred
// numbers), the cost of usage under a price table, and quotas that stop a
// function, or the whole node, once a period's usage reaches a cap.
//
// A record's billed duration is telemetry.BilledMs of the duration the
// REPORT line shows, so the bill and the logs always agree.
package meter

import (
	"time"
)

// Record is one invocation's usage.
type Record struct {
	Function  string `json:"function"`
	Version   string `json:"version"`
	RequestID string `json:"request_id"`
	// Trigger is what invoked it: sync (the Invoke API), url (a function
	// URL), event (an async invocation), schedule, topic, destination.
	Trigger    string    `json:"trigger"`
	Start      time.Time `json:"start"`
	DurationUs int64     `json:"duration_us"`
	BilledMs   int64     `json:"billed_ms"`
	MemoryMB   int       `json:"memory_mb"`
	Cold       bool      `json:"cold,omitempty"`
	InitUs     int64     `json:"init_us,omitempty"`
	// Outcome is success, error or timeout.
	Outcome string `json:"outcome"`
}

// MBms is the record's memory-time, in MB × billed ms: an integer, so sums
// are exact. GB-seconds are MBms / 1024 / 1000.
func (r Record) MBms() int64 { return int64(r.MemoryMB) * r.BilledMs }

// GBSeconds is the record's billed memory-time in GB-seconds.
func (r Record) GBSeconds() float64 { return gbSeconds(r.MBms()) }

func gbSeconds(mbms int64) float64 { return float64(mbms) / 1024 / 1000 }

// Usage is what a set of invocations used.
type Usage struct {
	Invocations int64 `json:"invocations"`
	Errors      int64 `json:"errors"`
	ColdStarts  int64 `json:"cold_starts"`
	BilledMs    int64 `json:"billed_ms"`
	MBms        int64 `json:"mb_ms"`
	DurationUs  int64 `json:"duration_us"`
}

// Add counts r in u.
func (u *Usage) Add(r Record) {
	u.Invocations++
	if r.Outcome != "success" {
		u.Errors++
	}
	if r.Cold {
		u.ColdStarts++
	}
	u.BilledMs += r.BilledMs
	u.MBms += r.MBms()
	u.DurationUs += r.DurationUs
}

// Plus returns u and v together.
func (u Usage) Plus(v Usage) Usage {
	return Usage{u.Invocations + v.Invocations, u.Errors + v.Errors, u.ColdStarts + v.ColdStarts,
		u.BilledMs + v.BilledMs, u.MBms + v.MBms, u.DurationUs + v.DurationUs}
}

// GBSeconds is u's billed memory-time.
func (u Usage) GBSeconds() float64 { return gbSeconds(u.MBms) }

// Prices turn usage into cost, as Lambda prices it: per request and per
// GB-second of billed memory-time.
type Prices struct {
	PerRequest  float64 `json:"per_request"`
	PerGBSecond float64 `json:"per_gb_second"`
}

// LambdaX86 is AWS Lambda's public on-demand x86 price (us-east-1, first
// tier), the default and the comparison `wisp usage` prints.
var LambdaX86 = Prices{PerRequest: 0.20 / 1e6, PerGBSecond: 0.0000166667}

// Cost is what u costs at p.
func (p Prices) Cost(u Usage) float64 {
	return float64(u.Invocations)*p.PerRequest + u.GBSeconds()*p.PerGBSecond
}
