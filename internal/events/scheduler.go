package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/events/schedule"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

const (
	scheduleBucket = "wisp_schedules"
	// onTime is how late a tick may be seen and still count as on time;
	// older ones were missed (no node ran) and are caught up or skipped.
	onTime = 2 * time.Minute
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

// SchedulerConfig is what a Scheduler needs; JS, Registry and Queue are
// required.
type SchedulerConfig struct {
	JS jetstream.JetStream
	// Registry lists the functions and their schedules.
	Registry interface{ Functions() []registry.Function }
	// Queue takes the ticks, as events of their functions.
	Queue  *Queue
	Logger *slog.Logger
	// Now is the schedules' clock; default time.Now.
	Now func() time.Time
	// Every is how often schedules are checked; default 1s.
	Every time.Duration
	// Region and Account go into scheduled events; defaults us-east-1
	// and 000000000000.
	Region, Account string
}

// Scheduler fires the functions' schedules: every node checks them, and
// each tick fires once across the nodes.
type Scheduler struct {
	cfg    SchedulerConfig
	log    *slog.Logger
	kv     jetstream.KeyValue // the last tick of each schedule
	scheds schedules
	stop   context.CancelFunc
	wg     sync.WaitGroup // the loop
}

// OpenScheduler creates the schedules' bucket if need be and starts
// checking them; Close stops that.
func OpenScheduler(ctx context.Context, cfg SchedulerConfig) (*Scheduler, error) {
	clockAndLogger(&cfg.Now, &cfg.Logger)
	if cfg.Every == 0 {
		cfg.Every = time.Second
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.Account == "" {
		cfg.Account = arn.DefaultAccount
	}
	kv, err := cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: scheduleBucket, Description: "wisp: the last tick each schedule fired", History: 1,
		Storage: jetstream.FileStorage, MaxBytes: bucketBytes})
	if err != nil {
		return nil, fmt.Errorf("events: schedule bucket: %w", err)
	}
	e := &Scheduler{cfg: cfg, log: cfg.Logger, kv: kv, scheds: newSchedules()}
	lctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	goLoop(&e.wg, func() { e.runSchedules(lctx) })
	return e, nil
}

// Close stops checking the schedules, waiting until ctx ends for a check
// under way; a tick it cut off fires at the next check of any node.
func (e *Scheduler) Close(ctx context.Context) error {
	e.stop()
	if !waitUntil(ctx, e.wg.Wait) {
		return errors.New("events: the scheduler did not stop in time")
	}
	return nil
}

// schedules is the scheduler's memory: parsed expressions, and the state
// of each schedule as this node last read or wrote it, so that a schedule
// with no tick due costs no read of the bucket.
type schedules struct {
	mu     sync.Mutex
	parsed map[string]parsed     // guarded by mu; by expression and time zone
	states map[string]knownState // guarded by mu; by bucket key
}

func newSchedules() schedules {
	return schedules{parsed: map[string]parsed{}, states: map[string]knownState{}}
}

type knownState struct {
	st  tickState
	rev uint64
}

// parsed is an expression as parsed, or why it is not.
type parsed struct {
	s   *schedule.Schedule
	err error
}

// maxParsed bounds the expressions kept parsed.
const maxParsed = 10_000

// errToldBefore is a schedule that does not parse, already reported: one
// stored before its expression was refused on write (a Feb 30 cron) would
// otherwise be reported at every check, every second.
var errToldBefore = errors.New("events: the schedule does not parse (reported before)")

func (e *Scheduler) parseSchedule(expr, tz string) (*schedule.Schedule, error) {
	k := expr + "\x00" + tz
	e.scheds.mu.Lock()
	p, ok := e.scheds.parsed[k]
	e.scheds.mu.Unlock()
	if ok {
		if p.err != nil {
			return nil, errToldBefore
		}
		return p.s, nil
	}
	s, err := schedule.Parse(expr, tz)
	e.scheds.mu.Lock()
	if len(e.scheds.parsed) >= maxParsed {
		clear(e.scheds.parsed) // expressions of schedules long changed; the rest parse again
	}
	e.scheds.parsed[k] = parsed{s, err}
	e.scheds.mu.Unlock()
	return s, err
}

func (e *Scheduler) knownState(key string) (knownState, bool) {
	e.scheds.mu.Lock()
	defer e.scheds.mu.Unlock()
	k, ok := e.scheds.states[key]
	return k, ok
}

func (e *Scheduler) rememberState(key string, st tickState, rev uint64) {
	e.scheds.mu.Lock()
	defer e.scheds.mu.Unlock()
	e.scheds.states[key] = knownState{st, rev}
}

func (e *Scheduler) runSchedules(ctx context.Context) {
	t := time.NewTicker(e.cfg.Every)
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
func (e *Scheduler) CheckSchedules(ctx context.Context) error {
	now := e.cfg.Now()
	var errs []error
	for _, f := range e.cfg.Registry.Functions() {
		for _, s := range f.Schedules {
			if err := e.checkSchedule(ctx, f, s, now); err != nil && !errors.Is(err, errToldBefore) {
				errs = append(errs, fmt.Errorf("%s/%s: %w", f.Name, s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (e *Scheduler) checkSchedule(ctx context.Context, f registry.Function, s registry.Schedule, now time.Time) error {
	sched, err := e.parseSchedule(s.Expression, s.Timezone)
	if err != nil {
		return err // validated on write; cannot happen
	}
	key := f.Name + "." + s.Name
	if k, ok := e.knownState(key); ok && k.st.matches(f, s) {
		if _, n := sched.Missed(k.st.Last, now); n == 0 {
			return nil // nothing due since this node last looked
		}
	}
	for range 5 {
		st, rev, err := e.tickState(ctx, key)
		if err != nil {
			return err
		}
		if rev == 0 || !st.matches(f, s) {
			// A new schedule starts now: it has missed nothing.
			st = tickState{Last: now, Expression: s.Expression, Timezone: s.Timezone, Created: f.CreatedAt}
			rev, err := e.putTickState(ctx, key, st, rev)
			if store.IsConflict(err) {
				continue
			}
			if err == nil {
				e.rememberState(key, st, rev)
			}
			return err
		}
		latest, n := sched.Missed(st.Last, now)
		if n == 0 {
			e.rememberState(key, st, rev)
			return nil
		}
		fire := now.Sub(latest) <= onTime || s.CatchUp
		full := false
		if fire {
			// Stored before it is claimed: a node that dies in between
			// leaves it to the next, and the tick id keeps one copy.
			err := e.fireTick(ctx, f, s, latest)
			switch {
			case errors.Is(err, ErrQueueFull):
				// The function has no room: the tick is skipped, not
				// held to flood it later.
				fire, full = false, true
				e.log.Warn("events: schedule tick skipped: the function's queue is full", "function", f.Name,
					"schedule", s.Name, "tick", latest, "err", err)
			case err != nil:
				return err
			default:
				st.Fired = latest
			}
		}
		st.Last = latest
		rev, err = e.putTickState(ctx, key, st, rev)
		if store.IsConflict(err) {
			continue // another node moved it; look again
		}
		if err != nil {
			return err
		}
		e.rememberState(key, st, rev)
		switch {
		case full:
		case !fire:
			e.log.Info("events: schedule skipped missed ticks", "function", f.Name, "schedule", s.Name, "missed", n, "latest", latest)
		case n > 1 || now.Sub(latest) > onTime:
			e.log.Info("events: schedule caught up missed ticks once", "function", f.Name, "schedule", s.Name, "missed", n, "latest", latest)
		}
		return nil
	}
	return errors.New("the schedule's state kept changing")
}

func (e *Scheduler) fireTick(ctx context.Context, f registry.Function, s registry.Schedule, tick time.Time) error {
	tickID := f.Name + "/" + s.Name + "/" + tick.UTC().Format(time.RFC3339)
	payload := schedule.ScheduledEvent(tickID, f.Name+"-"+s.Name, e.cfg.Region, e.cfg.Account, tick)
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return err
	}
	return e.cfg.Queue.storeNew(ctx, Async{Function: f.Name, Qualifier: s.Qualifier, Payload: payload, RequestID: ev.ID,
		Trigger: TriggerSchedule, DedupID: "tick." + tickID})
}

func (e *Scheduler) tickState(ctx context.Context, key string) (tickState, uint64, error) {
	entry, err := e.kv.Get(ctx, key)
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

// putTickState writes a schedule's state if its revision is still rev,
// and returns the new revision.
func (e *Scheduler) putTickState(ctx context.Context, key string, st tickState, rev uint64) (uint64, error) {
	data, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		return e.kv.Create(ctx, key, data)
	}
	return e.kv.Update(ctx, key, data, rev)
}

// matches says whether the state is of this schedule as it is now: a
// schedule changed, or its function made again, starts afresh.
func (st tickState) matches(f registry.Function, s registry.Schedule) bool {
	return st.Expression == s.Expression && st.Timezone == s.Timezone && st.Created.Equal(f.CreatedAt)
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
func (e *Scheduler) Schedules(ctx context.Context, function string) ([]ScheduleInfo, error) {
	now := e.cfg.Now()
	out := []ScheduleInfo{}
	for _, f := range e.cfg.Registry.Functions() {
		if function != "" && f.Name != function {
			continue
		}
		for _, s := range f.Schedules {
			info := ScheduleInfo{Function: f.Name, Schedule: s}
			if sched, err := e.parseSchedule(s.Expression, s.Timezone); err == nil {
				info.Next = sched.Next(now).UTC()
			}
			st, rev, err := e.tickState(ctx, f.Name+"."+s.Name)
			if err != nil {
				return nil, err
			}
			if rev != 0 && st.matches(f, s) {
				info.LastTick = st.Fired.UTC()
			}
			out = append(out, info)
		}
	}
	return out, nil
}
