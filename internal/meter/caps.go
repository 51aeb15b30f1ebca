package meter

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

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
}

func (e *CapError) Error() string {
	who := "the function's"
	if e.Scope == "node" {
		who = "the node's"
	}
	return fmt.Sprintf("%s %s quota of %s %s is used up (%s); calls resume at %s", who, e.Period,
		strconv.FormatFloat(e.Max, 'f', -1, 64), e.Limit, strconv.FormatFloat(e.Used, 'f', -1, 64), e.Until.UTC().Format(time.RFC3339))
}

// capState caches period usage briefly, so a check on every call costs a
// map lookup; counts what this node admitted and ran, which the rollups
// show only a moment later; and remembers which caps were told.
type capState struct {
	mu    sync.Mutex
	cache map[string]cachedUsage // guarded by mu; by capKey
	local map[string]*localUsage // guarded by mu; by capKey
	told  map[string]bool        // guarded by mu
}

// localUsage is this node's own part of a period: the calls it let
// through and the usage they recorded. A period's usage is at least that,
// so one node stops at its cap exactly, whatever the rollups' lag.
type localUsage struct {
	admitted int64
	recorded Usage
	until    time.Time
}

// capKey names a quota's period: its scope, period and start, and the
// function for a function's quota.
func capKey(scope, p string, start time.Time, fn string) string {
	k := scope + "/" + p + "/" + start.Format(time.RFC3339)
	if scope == "function" {
		k += "/" + fn
	}
	return k
}

type cachedUsage struct {
	at time.Time
	u  Usage
}

// capFresh is how old a cached period usage may be: caps take effect
// within it plus the time records take to be rolled up.
const capFresh = 200 * time.Millisecond

// Allow says whether f may run now: nil, or a *CapError when its quota or
// the node's is used up in the current period.
func (m *Meter) Allow(f registry.Function) error {
	now := m.cfg.Now()
	if f.Quota != nil {
		if err := m.check(*f.Quota, "function", f.Name, now); err != nil {
			return err
		}
	}
	if m.cfg.Quota != nil {
		return m.check(*m.cfg.Quota, "node", f.Name, now)
	}
	return nil
}

func (m *Meter) check(q Quota, scope, fn string, now time.Time) error {
	start, until := period(q.Period, now)
	key := capKey(scope, q.Period, start, fn)
	u := m.periodUsage(key, scope, fn, q.Period, start, until)
	m.caps.mu.Lock()
	if l := m.caps.local[key]; l != nil {
		u = maxUsage(u, l.recorded)
		u.Invocations = max(u.Invocations, l.admitted)
	}
	m.caps.mu.Unlock()
	e := &CapError{Function: fn, Scope: scope, Period: q.Period, Start: start, Until: until, Async: q.Async}
	switch {
	case q.MaxInvocations > 0 && u.Invocations >= q.MaxInvocations:
		e.Limit, e.Used, e.Max = "invocations", float64(u.Invocations), float64(q.MaxInvocations)
	case q.MaxGBSeconds > 0 && u.GBSeconds() >= q.MaxGBSeconds:
		e.Limit, e.Used, e.Max = "gb_seconds", u.GBSeconds(), q.MaxGBSeconds
	case q.MaxCost > 0 && m.prices.Cost(u) >= q.MaxCost:
		e.Limit, e.Used, e.Max = "cost", m.prices.Cost(u), q.MaxCost
	default:
		m.caps.mu.Lock()
		m.localLocked(key, until).admitted++
		m.caps.mu.Unlock()
		return nil
	}
	m.tell(key, e)
	return e
}

// localLocked returns this node's usage of a period, made if need be.
func (m *Meter) localLocked(key string, until time.Time) *localUsage {
	c := &m.caps
	l := c.local[key]
	if l == nil {
		l = &localUsage{until: until}
		c.local[key] = l
	}
	return l
}

// recordLocal counts a record in every period it falls in, for the caps.
func (m *Meter) recordLocal(r Record) {
	m.caps.mu.Lock()
	defer m.caps.mu.Unlock()
	for _, p := range []string{registry.PeriodHour, registry.PeriodDay, registry.PeriodMonth} {
		start, until := period(p, r.Start)
		m.localLocked(capKey("function", p, start, r.Function), until).recorded.Add(r)
		m.localLocked(capKey("node", p, start, r.Function), until).recorded.Add(r)
	}
}

// forgetLocal drops the periods that ended before now.
func (m *Meter) forgetLocal(now time.Time) {
	m.caps.mu.Lock()
	defer m.caps.mu.Unlock()
	for k, l := range m.caps.local {
		if now.After(l.until) {
			delete(m.caps.local, k)
		}
	}
}

func maxUsage(a, b Usage) Usage {
	return Usage{max(a.Invocations, b.Invocations), max(a.Errors, b.Errors), max(a.ColdStarts, b.ColdStarts),
		max(a.BilledMs, b.BilledMs), max(a.MBms, b.MBms), max(a.DurationUs, b.DurationUs)}
}

func (m *Meter) periodUsage(key, scope, fn, p string, start, until time.Time) Usage {
	c := &m.caps
	c.mu.Lock()
	cu, ok := c.cache[key]
	c.mu.Unlock()
	real := time.Now()
	if ok && real.Sub(cu.at) < capFresh {
		return cu.u
	}
	fns := []string{fn}
	if scope == "node" {
		fns = m.functions()
	}
	var u Usage
	for _, f := range fns {
		if p == registry.PeriodHour {
			u = u.Plus(m.rollupOf(rollupKey(Hour, f, start)))
			continue
		}
		for d := start; d.Before(until); d = d.AddDate(0, 0, 1) {
			u = u.Plus(m.rollupOf(rollupKey(Day, f, d)))
		}
	}
	c.mu.Lock()
	c.cache[key] = cachedUsage{at: real, u: u}
	for k, v := range c.cache { // forget old periods
		if real.Sub(v.at) > time.Minute {
			delete(c.cache, k)
		}
	}
	c.mu.Unlock()
	return u
}

// tell publishes a reached cap on CapTopic, once per period per node.
func (m *Meter) tell(key string, e *CapError) {
	c := &m.caps
	c.mu.Lock()
	told := c.told[key]
	c.told[key] = true
	c.mu.Unlock()
	if told || m.cfg.Publish == nil {
		return
	}
	m.log.Warn("meter: a quota is used up", "scope", e.Scope, "function", e.Function, "limit", e.Limit, "until", e.Until)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.cfg.Publish(ctx, CapTopic, e); err != nil {
			m.log.Warn("meter: telling a reached cap", "err", err)
		}
	}()
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
