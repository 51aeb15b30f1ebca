package api

import (
	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/registry"
)

// The API speaks apitype's types; the parts below keep their own records.
// These functions are the one place the two meet, so a storage field is on
// the wire only once it is written here. Types whose fields are the same
// on both sides convert with a Go conversion, which fails to compile once
// they differ. What a caller sets, aliases, a function's sub-records,
// the catalog's topics, topic events, log records and access keys are
// apitype's in their packages too, so they need no conversion.

// each converts every element of in, keeping nil nil (JSON null) and
// empty empty (JSON []).
func each[T, U any](in []T, conv func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = conv(v)
	}
	return out
}

func wireFunction(f registry.Function) apitype.Function {
	return apitype.Function{
		Name: f.Name, Runtime: f.Runtime, Handler: f.Handler, MemoryMB: f.MemoryMB, Timeout: f.Timeout, Env: f.Env,
		Concurrency: f.Concurrency, MinInstances: f.MinInstances, KeepWarm: f.KeepWarm, Description: f.Description,
		URLAuth: f.URLAuth, Network: f.Network, Reuse: f.Reuse, Async: f.Async,
		Schedules: f.Schedules, Logs: f.Logs, Quota: f.Quota,
		Publish: f.Publish, CodeSHA256: f.CodeSHA256, CodeSize: f.CodeSize, CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt,
		Revision: f.Revision,
	}
}

func wireVersion(v registry.Version) apitype.Version {
	return apitype.Version{Version: v.Version, Function: wireFunction(v.Function), CreatedAt: v.CreatedAt, Description: v.Description}
}

func wireSubscription(s events.Subscription) apitype.Subscription {
	return apitype.Subscription{ID: s.ID, Topic: s.Topic, Function: s.Function, Qualifier: s.Qualifier,
		Filter: apitype.Filter(s.Filter), CreatedAt: s.CreatedAt}
}

func wireScheduleInfo(s events.ScheduleInfo) apitype.ScheduleInfo {
	return apitype.ScheduleInfo{Function: s.Function, Schedule: s.Schedule, Next: s.Next, LastTick: s.LastTick}
}

func wireUsageRecord(r meter.Record) apitype.UsageRecord { return apitype.UsageRecord(r) }

func wireBucket(b meter.Bucket) apitype.UsageBucket {
	return apitype.UsageBucket{Start: b.Start, Usage: apitype.Usage(b.Usage), GBSeconds: b.GBSeconds, Cost: b.Cost}
}

func wireFunctionUsage(f meter.FunctionUsage) apitype.FunctionUsage {
	return apitype.FunctionUsage{Function: f.Function, Usage: apitype.Usage(f.Usage), GBSeconds: f.GBSeconds,
		Cost: f.Cost, Buckets: each(f.Buckets, wireBucket)}
}

func wireReport(r meter.Report) apitype.UsageReport {
	return apitype.UsageReport{Granularity: r.Granularity, From: r.From, To: r.To, Prices: apitype.Prices(r.Prices),
		LambdaX86: apitype.Prices(r.LambdaX86), Functions: each(r.Functions, wireFunctionUsage), Total: wireBucket(r.Total)}
}
