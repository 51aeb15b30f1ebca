package meter

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
)

// Quota caps usage per period; see registry.Quota.
type Quota = registry.Quota

// ReasonSpendCap is the reason a capped call is refused with, beside
// Lambda's throttle reasons.
const ReasonSpendCap = "SpendCapExceeded"

// CapTopic is where a reached cap is told, once per period and node, as a
// CloudEvent of type wisp.cap.exceeded, for a function to alert on.
const CapTopic = "spend-caps"

// Bus takes the events the node publishes itself; events.Bus is one.
type Bus interface {
	PublishNode(ctx context.Context, topic string, ev cloudevent.Event) error
}

// nodeScope names the node's totals among the functions' rollups: no
// function name starts with "_".
const nodeScope = "_node"

// CapError is a call refused because a quota's cap is reached.
type CapError struct {
	Function string    `json:"function"`
	Scope    string    `json:"scope"` // "function" or "node"
	Limit    string    `json:"limit"` // invocations, gb_seconds or cost
	Used     float64   `json:"used"`
	Max      float64   `json:"max"`
	Period   string    `json:"period"`
	Start    time.Time `json:"period_start"`
	Until    time.Time `json:"until"` // when the next period starts
	// Async is what the quota says capped events do: wait or fail.
	Async string `json:"async,omitempty"`
	// RetryAfter is the time until the next period, on the node's clock.
	RetryAfter time.Duration `json:"-"`
}

func (e *CapError) Error() string {
	who := "the function's"
	if e.Scope == "node" {
		who = "the node's"
	}
	return fmt.Sprintf("%s %s quota of %s %s is used up (%s); calls resume at %s", who, e.Period,
		strconv.FormatFloat(e.Max, 'f', -1, 64), e.Limit, strconv.FormatFloat(e.Used, 'f', -1, 64), e.Until.UTC().Format(time.RFC3339))
}

// capKey names one quota's period: a function's (fn) or the node's
// (fn == nodeScope).
type capKey struct {
	fn, period string
	start      int64 // unix seconds
}

// capState is what the caps know beyond the rollups: the calls this node
// admitted that have not ended, and the usage of those that did, which the
// rollups show only a moment later. A period's usage is at least what
// this node saw, plus what it let through, so one node stops at its cap
// exactly; other nodes' usage comes through the rollups within a second.
type capState struct {
	mu    sync.Mutex
	local map[capKey]*localUsage // guarded by mu
	told  map[capKey]bool        // guarded by mu
}

type localUsage struct {
	running  int64 // admitted calls not yet recorded
	recorded Usage
	cached   Usage     // the rollups' figure, as read at cachedAt
	cachedAt time.Time // real time
	until    time.Time // the period's end, on the node's clock
}

// capFresh is how old a cached rollup figure may be.
const capFresh = 200 * time.Millisecond

// Ticket is a call admitted under its quotas: the periods it counts in
// while it runs. Record or Release gives it back.
type Ticket struct {
	keys []capKey
}

// Admit lets a call of f run, and counts it as running, or refuses it
// with a *CapError when its quota or the node's is used up now. The quota
// is f's as given: the invoker passes the function's $LATEST.
//
// While the records of earlier calls cannot be stored and the meter holds
// all it may of them, it refuses every call with ErrBacklog.
func (m *Meter) Admit(f registry.Function) (*Ticket, error) {
	if m.full.Load() {
		return nil, ErrBacklog
	}
	now := m.cfg.Now()
	type check struct {
		q     Quota
		key   capKey
		scope string
		start time.Time
		until time.Time
	}
	var checks []check
	for _, c := range []struct {
		q     *Quota
		fn    string
		scope string
	}{{f.Quota, f.Name, "function"}, {m.cfg.Quota, nodeScope, "node"}} {
		if c.q == nil {
			continue
		}
		start, until := period(c.q.Period, now)
		checks = append(checks, check{*c.q, capKey{c.fn, c.q.Period, start.Unix()}, c.scope, start, until})
	}
	if len(checks) == 0 {
		return nil, nil // nothing to count: no work on the invoke path
	}
	c := &m.caps
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range checks {
		l := c.localLocked(ch.key, ch.until)
		if time.Since(l.cachedAt) > capFresh {
			l.cached, l.cachedAt = m.periodUsage(ch.key.fn, ch.q.Period, ch.start, ch.until), time.Now()
		}
		u := maxUsage(l.cached, l.recorded)
		u.Invocations += l.running
		if e := m.capped(ch.q, u); e != nil {
			e.Function, e.Scope, e.Period, e.Start, e.Until, e.Async = f.Name, ch.scope, ch.q.Period, ch.start, ch.until, ch.q.Async
			e.RetryAfter = ch.until.Sub(now)
			m.tellLocked(ch.key, e)
			return nil, e
		}
	}
	t := &Ticket{keys: make([]capKey, len(checks))}
	for i, ch := range checks {
		c.local[ch.key].running++
		t.keys[i] = ch.key
	}
	return t, nil
}

// capped says which cap of q usage u reached, if any.
func (m *Meter) capped(q Quota, u Usage) *CapError {
	switch {
	case q.MaxInvocations > 0 && u.Invocations >= q.MaxInvocations:
		return &CapError{Limit: "invocations", Used: float64(u.Invocations), Max: float64(q.MaxInvocations)}
	case q.MaxGBSeconds > 0 && u.GBSeconds() >= q.MaxGBSeconds:
		return &CapError{Limit: "gb_seconds", Used: u.GBSeconds(), Max: q.MaxGBSeconds}
	case q.MaxCost > 0 && m.prices.Cost(u) >= q.MaxCost:
		return &CapError{Limit: "cost", Used: m.prices.Cost(u), Max: q.MaxCost}
	}
	return nil
}

// Release gives back the ticket of a call that did not run.
func (m *Meter) Release(t *Ticket) {
	if t == nil || len(t.keys) == 0 {
		return
	}
	m.caps.mu.Lock()
	defer m.caps.mu.Unlock()
	for _, k := range t.keys {
		if l := m.caps.local[k]; l != nil && l.running > 0 {
			l.running--
		}
	}
}

func (c *capState) localLocked(k capKey, until time.Time) *localUsage {
	l := c.local[k]
	if l == nil {
		l = &localUsage{until: until}
		c.local[k] = l
	}
	return l
}

// recordLocal moves a call that ended from running to recorded in the
// periods its ticket counts it in. A call with no ticket ran under no
// quota; the rollups count it.
func (m *Meter) recordLocal(r Record, t *Ticket) {
	if t == nil {
		return
	}
	m.caps.mu.Lock()
	defer m.caps.mu.Unlock()
	for _, k := range t.keys {
		if l := m.caps.local[k]; l != nil {
			l.running = max(0, l.running-1)
			l.recorded.Add(r)
		}
	}
}

// forgetLocal drops what it knows of periods that ended before now.
func (m *Meter) forgetLocal(now time.Time) {
	m.caps.mu.Lock()
	defer m.caps.mu.Unlock()
	for k, l := range m.caps.local {
		if now.After(l.until) && l.running == 0 {
			delete(m.caps.local, k)
			delete(m.caps.told, k)
		}
	}
}

// periodUsage is what the rollups say of a function's (or the node's)
// period.
func (m *Meter) periodUsage(fn, p string, start, until time.Time) Usage {
	if p == registry.PeriodHour {
		return m.rollupOf(rollupKey(Hour, fn, start))
	}
	var u Usage
	for d := start; d.Before(until); d = d.AddDate(0, 0, 1) {
		u = u.Plus(m.rollupOf(rollupKey(Day, fn, d)))
	}
	return u
}

func maxUsage(a, b Usage) Usage {
	return Usage{max(a.Invocations, b.Invocations), max(a.Errors, b.Errors), max(a.ColdStarts, b.ColdStarts),
		max(a.BilledMs, b.BilledMs), max(a.MBms, b.MBms), max(a.DurationUs, b.DurationUs)}
}

// tellLocked publishes a reached cap on CapTopic, once per period per
// node; a failed publish is tried again at the next refusal.
func (m *Meter) tellLocked(k capKey, e *CapError) {
	if m.caps.told[k] || m.cfg.Bus == nil {
		return
	}
	m.caps.told[k] = true
	m.log.Warn("meter: a quota is used up", "scope", e.Scope, "function", e.Function, "limit", e.Limit, "until", e.Until)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.publishCap(ctx, e); err != nil {
			m.log.Warn("meter: telling a reached cap", "err", err)
			m.caps.mu.Lock()
			delete(m.caps.told, k)
			m.caps.mu.Unlock()
		}
	}()
}

// publishCap tells CapTopic that a quota is used up, as a CloudEvent of
// type wisp.cap.exceeded whose id names the quota's period: the notices of
// one period from several nodes are stored once.
func (m *Meter) publishCap(ctx context.Context, e *CapError) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	subject := e.Scope
	if e.Scope == "function" {
		subject = e.Function
	}
	return m.cfg.Bus.PublishNode(ctx, CapTopic, cloudevent.Event{SpecVersion: cloudevent.SpecVersion,
		ID: e.Scope + "/" + subject + "/" + e.Start.Format(time.RFC3339), Source: "wisp://meter",
		Type: "wisp.cap.exceeded", Subject: subject, Time: m.cfg.Now().UTC().Truncate(time.Millisecond),
		DataContentType: "application/json", Data: data})
}

// period returns the UTC hour, day or month that holds now, as its start
// and the next one's.
func period(p string, now time.Time) (start, next time.Time) {
	now = now.UTC()
	switch p {
	case registry.PeriodHour:
		start = now.Truncate(time.Hour)
		return start, start.Add(time.Hour)
	case registry.PeriodMonth:
		start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	default:
		start = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	}
}
