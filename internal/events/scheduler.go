package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/events/schedule"
	"github.com/wisp-dev/wisp/internal/registry"
)

const (
	scheduleBucket = "wisp_schedules"
	// onTime is how late a tick may be seen and still count as on time;
	// older ones were missed (no node ran) and are caught up or skipped.
	onTime = 30 * time.Second
)

// tickState is a schedule's record in the bucket: the last tick it fired
// or skipped. Expression and Created tell a schedule changed or made
// again, which starts it afresh.
type tickState struct {
	Last       time.Time `json:"last"`
	Fired      time.Time `json:"fired,omitzero"` // the last tick fired`
	Expression string    `json:"expression"`
	Timezone   string    `json:"timezone,omitempty"`
	Created    time.Time `json:"created"` // the function's
}

// parsedSchedules caches parsed expressions.
var parsedSchedules sync.Map // expression + "\x00" + timezone → *schedule.Schedule

func parseSchedule(expr, tz string) (*schedule.Schedule, error) {
	k := expr + "\x00" + tz
	if s, ok := parsedSchedules.Load(k); ok {
		return s.(*schedule.Schedule), nil
	}
	s, err := schedule.Parse(expr, tz)
	if err != nil {
		return nil, err
	}
	parsedSchedules.Store(k, s)
	return s, nil
}

func (e *Events) runSchedules(ctx context.Context) {
	t := time.NewTicker(e.cfg.ScheduleEvery)
	defer t.Stop()
	for {
		if err := e.CheckSchedules(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("events: schedules", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckSchedules fires every tick due at the clock's now that no node has
// fired yet. Every node runs it every second; a tick is claimed in the
// bucket (compare and swap) and stored under its tick id (JetStream keeps
// one), so each tick fires once across the nodes sharing the NATS.
func (e *Events) CheckSchedules(ctx context.Context) error {
	now := e.cfg.Now()
	var errs []error
	for _, f := range e.cfg.Registry.Functions() {
		for _, s := range f.Schedules {
			if err := e.checkSchedule(ctx, f, s, now); err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %w", f.Name, s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (e *Events) checkSchedule(ctx context.Context, f registry.Function, s registry.Schedule, now time.Time) error {
	sched, err := parseSchedule(s.Expression, s.Timezone)
	if err != nil {
		return err // validated on write; cannot happen
	}
	key := f.Name + "." + s.Name
	for range 5 {
		st, rev, err := e.tickState(ctx, key)
		if err != nil {
			return err
		}
		if rev == 0 || st.Expression != s.Expression || st.Timezone != s.Timezone || !st.Created.Equal(f.CreatedAt) {
			// A new schedule starts now: it has missed nothing.
			st = tickState{Last: now, Expression: s.Expression, Timezone: s.Timezone, Created: f.CreatedAt}
			if err := e.putTickState(ctx, key, st, rev); err != nil && !isConflict(err) {
				return err
			}
			return nil
		}
		latest, n := sched.Missed(st.Last, now)
		if n == 0 {
			return nil
		}
		fire := now.Sub(latest) <= onTime || s.CatchUp
		if fire {
			// Stored before it is claimed: a node that dies in between
			// leaves it to the next, and the tick id keeps one copy.
			if err := e.fireTick(ctx, f, s, latest); err != nil {
				return err
			}
			st.Fired = latest
		}
		st.Last = latest
		err = e.putTickState(ctx, key, st, rev)
		if isConflict(err) {
			continue // another node moved it; look again
		}
		if err != nil {
			return err
		}
		switch {
		case !fire:
			e.log.Info("events: schedule skipped missed ticks", "function", f.Name, "schedule", s.Name, "missed", n, "latest", latest)
		case n > 1 || now.Sub(latest) > onTime:
			e.log.Info("events: schedule caught up missed ticks once", "function", f.Name, "schedule", s.Name, "missed", n, "latest", latest)
		}
		return nil
	}
	return errors.New("the schedule's state kept changing")
}

func (e *Events) fireTick(ctx context.Context, f registry.Function, s registry.Schedule, tick time.Time) error {
	tickID := f.Name + "/" + s.Name + "/" + tick.UTC().Format(time.RFC3339)
	payload := schedule.ScheduledEvent(tickID, f.Name+"-"+s.Name, e.cfg.Region, e.cfg.Account, tick)
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return err
	}
	return e.store(ctx, Async{Function: f.Name, Qualifier: s.Qualifier, Payload: payload, RequestID: ev.ID,
		Trigger: TriggerSchedule, DedupID: "tick." + tickID}, e.cfg.Now(), 0, time.Time{})
}

func (e *Events) tickState(ctx context.Context, key string) (tickState, uint64, error) {
	entry, err := e.sched.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return tickState{}, 0, nil
	}
	if err != nil {
		return tickState{}, 0, err
	}
	var st tickState
	if err := json.Unmarshal(entry.Value(), &st); err != nil {
		return tickState{}, entry.Revision(), nil // rewritten as new
	}
	return st, entry.Revision(), nil
}

func (e *Events) putTickState(ctx context.Context, key string, st tickState, rev uint64) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = e.sched.Create(ctx, key, data)
	} else {
		_, err = e.sched.Update(ctx, key, data, rev)
	}
	return err
}

func isConflict(err error) bool {
	return err != nil && (errors.Is(err, jetstream.ErrKeyExists) || strings.Contains(err.Error(), "wrong last sequence"))
}

// ScheduleInfo is a schedule as listed: its function's config and when it
// fires next.
type ScheduleInfo struct {
	Function string `json:"function"`
	registry.Schedule
	Next     time.Time `json:"next,omitzero"`
	LastTick time.Time `json:"last_tick,omitzero"` // the last tick fired
}

// Schedules lists the schedules of a function, or of all when function is
// empty, by function and name.
func (e *Events) Schedules(ctx context.Context, function string) ([]ScheduleInfo, error) {
	now := e.cfg.Now()
	out := []ScheduleInfo{}
	for _, f := range e.cfg.Registry.Functions() {
		if function != "" && f.Name != function {
			continue
		}
		for _, s := range f.Schedules {
			info := ScheduleInfo{Function: f.Name, Schedule: s}
			if sched, err := parseSchedule(s.Expression, s.Timezone); err == nil {
				info.Next = sched.Next(now).UTC()
			}
			st, rev, err := e.tickState(ctx, f.Name+"."+s.Name)
			if err != nil {
				return nil, err
			}
			if rev != 0 && st.Expression == s.Expression && st.Created.Equal(f.CreatedAt) {
				info.LastTick = st.Fired.UTC()
			}
			out = append(out, info)
		}
	}
	return out, nil
}
