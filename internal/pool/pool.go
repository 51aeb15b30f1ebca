// Package pool keeps the instances of one function version: it hands out
// the most recently used idle instance, starts instances within the
// version's and the node's limits, queues callers (FIFO, until their
// deadline) when it may not start more, and stops instances idle too long.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// Errors of Acquire.
var (
	// ErrClosed: the pool was drained (its version changed or went away);
	// the caller should resolve the function again.
	ErrClosed = errors.New("pool: closed")
)

// Throttle reasons, as Lambda names them.
const (
	ReasonReserved = "ReservedFunctionConcurrentInvocationLimitExceeded"
	ReasonNode     = "ConcurrentInvocationLimitExceeded"
)

// ThrottleError is a caller turned away: the limits allow no instance for
// it and the queue is full, or its deadline passed while it waited.
type ThrottleError struct {
	Reason string
	Msg    string
}

func (e *ThrottleError) Error() string { return "pool: throttled: " + e.Msg }

// Config says how a pool starts instances and within what limits.
type Config struct {
	// Start starts one instance of the pool's version.
	Start func(ctx context.Context) (runtime.Instance, error)
	// MemoryMB is what each instance takes from the Budget.
	MemoryMB int
	Budget   *Budget
	Limits   Limits
	// MaxQueue bounds the callers waiting; default 1000.
	MaxQueue int
	Now      func() time.Time
	// OnStart, if set, hears of every instance start (for metrics).
	OnStart func(d time.Duration, err error)
}

// Pool holds the instances of one version.
type Pool struct {
	cfg Config

	mu       sync.Mutex
	idle     []*member            // guarded by mu; least recently used first
	busy     int                  // guarded by mu
	lent     map[*member]struct{} // guarded by mu; the busy ones
	starting int                  // guarded by mu
	waiters  []*waiter            // guarded by mu; FIFO
	closed   bool                 // guarded by mu
	// throttledBy is why the last start was refused: the reason a caller
	// turned away is told. Guarded by mu.
	throttledBy string

	ctx    context.Context // ends starts in flight when the pool closes
	cancel context.CancelFunc
	bg     sync.WaitGroup // starts and stops in flight
	// emptied is closed once the pool is closed and no instance is lent.
	emptied     chan struct{}
	emptiedOnce sync.Once
}

type member struct {
	inst     runtime.Instance
	started  time.Time
	lastUsed time.Time
	// stopped says the instance was stopped (and its memory given back,
	// or about to be): it is stopped once, whoever asks again. Guarded
	// by the pool's mu.
	stopped bool
}

type waiter struct {
	ch chan grant // buffered 1: one grant per waiter
}

// grant is what a waiter gets: an instance, or the error of the start
// meant for it.
type grant struct {
	m    *member
	cold bool
	err  error
}

// New returns an empty pool.
func New(cfg Config) *Pool {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 1000
	}
	if cfg.Budget == nil {
		cfg.Budget = NewBudget(1 << 30)
	}
	p := &Pool{cfg: cfg, lent: map[*member]struct{}{}, emptied: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	cfg.Budget.join(p)
	return p
}

// Lease is one instance lent out for one invocation.
type Lease struct {
	Instance runtime.Instance
	// Cold says the instance was started to serve this lease.
	Cold bool
	pool *Pool
	m    *member
}

// Acquire returns the most recently used idle instance, or waits for one:
// an instance started for the queue or one freed by another caller,
// whichever comes first. A caller still waiting at its ctx's deadline is
// throttled.
func (p *Pool) Acquire(ctx context.Context) (*Lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		m := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if dead(m) {
			p.stopLocked(m)
			continue
		}
		p.busy++
		p.lent[m] = struct{}{}
		p.mu.Unlock()
		return &Lease{Instance: m.inst, pool: p, m: m}, nil
	}
	if p.cfg.Limits.Max == 0 {
		p.mu.Unlock()
		return nil, &ThrottleError{ReasonReserved, "the function's reserved concurrency is 0"}
	}
	if len(p.waiters) >= p.cfg.MaxQueue {
		reason := p.throttledBy
		p.mu.Unlock()
		return nil, p.throttle(reason, "the queue is full")
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	p.dispatch()

	select {
	case g := <-w.ch:
		return p.lease(g)
	case <-ctx.Done():
	}
	p.mu.Lock()
	removed := p.removeWaiterLocked(w)
	reason := p.throttledBy
	p.mu.Unlock()
	if !removed {
		// A grant raced the deadline: take it, the caller is still here
		// to use it or to give it back.
		return p.lease(<-w.ch)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, p.throttle(reason, "no instance became free before the deadline")
	}
	return nil, ctx.Err()
}

func (p *Pool) lease(g grant) (*Lease, error) {
	if g.err != nil {
		return nil, g.err
	}
	return &Lease{Instance: g.m.inst, Cold: g.cold, pool: p, m: g.m}, nil
}

func (p *Pool) throttle(reason, why string) error {
	if reason == "" {
		// No limit was met: the instances were all busy, or starting.
		reason = ReasonReserved
		if p.cfg.Limits.Max < 0 {
			reason = ReasonNode
		}
		return &ThrottleError{reason, "every instance is busy or starting: " + why}
	}
	if reason == ReasonNode {
		return &ThrottleError{reason, "the node's instance memory is in use: " + why}
	}
	return &ThrottleError{reason, fmt.Sprintf("the function's reserved concurrency (%d) is in use: %s", p.cfg.Limits.Max, why)}
}

func (p *Pool) removeWaiterLocked(w *waiter) bool {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return true
		}
	}
	return false
}

func dead(m *member) bool {
	select {
	case <-m.inst.Done():
		return true
	default:
		return false
	}
}

// dispatch starts instances for the callers waiting, within the limits,
// making room in the budget by evicting other pools' idle instances.
func (p *Pool) dispatch() {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		if StartsFor(p.stateLocked(), p.cfg.Limits) == 0 {
			if len(p.waiters) > 0 && p.cfg.Limits.Max >= 0 && p.instancesLocked() >= p.cfg.Limits.Max {
				p.throttledBy = ReasonReserved
			}
			p.mu.Unlock()
			return
		}
		if !p.cfg.Budget.tryReserve(p, p.cfg.MemoryMB) {
			p.throttledBy = ReasonNode
			p.mu.Unlock()
			// Room may be made by stopping an idle instance elsewhere; its
			// release calls dispatch again, as the budget knows p waits.
			p.cfg.Budget.evictIdle(p)
			return
		}
		p.throttledBy = ""
		p.starting++
		p.startLocked(true)
		p.mu.Unlock()
	}
}

// startLocked starts one instance in the background, its memory reserved.
// forQueue says it serves the head of the queue (else it goes idle).
func (p *Pool) startLocked(forQueue bool) {
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		t0 := p.cfg.Now()
		inst, err := p.cfg.Start(p.ctx)
		if p.cfg.OnStart != nil {
			p.cfg.OnStart(p.cfg.Now().Sub(t0), err)
		}
		p.mu.Lock()
		p.starting--
		if err != nil {
			// The caller at the head hears why, as the one the start was for.
			if forQueue && len(p.waiters) > 0 {
				w := p.waiters[0]
				p.waiters = p.waiters[1:]
				w.ch <- grant{err: err}
			}
			p.mu.Unlock()
			p.cfg.Budget.release(p.cfg.MemoryMB)
			p.dispatch()
			return
		}
		now := p.cfg.Now()
		m := &member{inst: inst, started: now, lastUsed: now}
		if p.closed {
			p.stopLocked(m)
			p.mu.Unlock()
			return
		}
		p.giveLocked(m, true)
		p.mu.Unlock()
	}()
}

// giveLocked hands a free instance to the caller waiting longest, or puts
// it with the idle ones.
func (p *Pool) giveLocked(m *member, cold bool) {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.busy++
		p.lent[m] = struct{}{}
		w.ch <- grant{m: m, cold: cold}
		return
	}
	m.lastUsed = p.cfg.Now()
	p.idle = append(p.idle, m)
}

// Release gives the instance back; one that cannot be reused is stopped.
// A second Release of a lease does nothing.
func (l *Lease) Release(reusable bool) {
	p := l.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lent[l.m]; !ok {
		return
	}
	p.busy--
	delete(p.lent, l.m)
	old := p.cfg.Limits.MaxLifetime > 0 && p.cfg.Now().Sub(l.m.started) >= p.cfg.Limits.MaxLifetime
	if !reusable || p.closed || old || dead(l.m) || l.m.stopped {
		p.stopLocked(l.m) // nothing if Kill stopped it already
		// After the stop is counted: Drain waits for it once emptied.
		p.checkEmptiedLocked()
		return
	}
	p.giveLocked(l.m, false)
}

// checkEmptiedLocked closes emptied once the pool is closed and nothing
// is lent.
func (p *Pool) checkEmptiedLocked() {
	if p.closed && p.busy == 0 {
		p.emptiedOnce.Do(func() { close(p.emptied) })
	}
}

// stopLocked stops an instance in the background, so the caller (often on
// the invoke path) does not wait for a process to exit, and then gives its
// memory back; once per instance.
func (p *Pool) stopLocked(m *member) {
	if m.stopped {
		return
	}
	m.stopped = true
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		m.inst.Stop() //nolint:errcheck // the instance is gone either way; its driver logs why
		p.cfg.Budget.release(p.cfg.MemoryMB)
		p.dispatch()
	}()
}

func (p *Pool) instancesLocked() int { return len(p.idle) + p.busy + p.starting }

func (p *Pool) stateLocked() State {
	s := State{Busy: p.busy, Starting: p.starting, Waiting: len(p.waiters)}
	for _, m := range p.idle {
		s.Idle = append(s.Idle, IdleState{Started: m.started, LastUsed: m.lastUsed, Dead: dead(m)})
	}
	return s
}

// Tick applies the scale decisions at now: stops instances idle too long,
// dead or too old, and starts instances to keep Min warm.
func (p *Pool) Tick(now time.Time) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	stop, start := Tidy(now, p.stateLocked(), p.cfg.Limits)
	keep := p.idle[:0:0]
	j := 0
	for i, m := range p.idle {
		if j < len(stop) && stop[j] == i {
			p.stopLocked(m)
			j++
			continue
		}
		keep = append(keep, m)
	}
	p.idle = keep
	for ; start > 0; start-- {
		if !p.cfg.Budget.tryReserve(p, p.cfg.MemoryMB) {
			break
		}
		p.starting++
		p.startLocked(false)
	}
	p.mu.Unlock()
}

// lruIdle returns when the least recently used idle instance was last used.
func (p *Pool) lruIdle() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		return time.Time{}, false
	}
	return p.idle[0].lastUsed, true
}

// evictLRU stops the least recently used idle instance to free memory.
func (p *Pool) evictLRU() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		return
	}
	m := p.idle[0]
	p.idle = p.idle[1:]
	p.stopLocked(m)
}

// Stats is a snapshot of the pool.
type Stats struct{ Idle, Busy, Starting, Queued int }

// Stats returns the pool's instances by state and its queue.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Idle: len(p.idle), Busy: p.busy, Starting: p.starting, Queued: len(p.waiters)}
}

// Kill closes the pool and stops every instance now, busy ones too: their
// invocations end as crashed. It is for a node's shutdown that ran out of
// time.
func (p *Pool) Kill() {
	p.mu.Lock()
	p.closeLocked()
	for m := range p.lent {
		p.stopLocked(m)
	}
	p.mu.Unlock()
	p.bg.Wait()
}

func (p *Pool) closeLocked() {
	if p.closed {
		return
	}
	p.closed = true
	for _, w := range p.waiters {
		w.ch <- grant{err: ErrClosed}
	}
	p.waiters = nil
	for _, m := range p.idle {
		p.stopLocked(m)
	}
	p.idle = nil
	p.cancel() // starts in flight end; what they started is stopped
	// A closed pool takes no more memory, so the budget need not know it
	// (what its instances hold is given back as they stop).
	p.cfg.Budget.leave(p)
	p.checkEmptiedLocked()
}

// Drain closes the pool to new callers: callers still queued get ErrClosed
// (to go to whatever replaced this pool), idle instances stop now and busy
// ones when released. It waits until no instance is left or ctx ends.
func (p *Pool) Drain(ctx context.Context) error {
	p.mu.Lock()
	p.closeLocked()
	p.mu.Unlock()
	select {
	case <-p.emptied:
	case <-ctx.Done():
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
