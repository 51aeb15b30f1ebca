package events

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// pace bounds the events a node runs at once, over every function, and
// moves the bound with the machine's CPU and the node's requests: while
// the CPU is saturated and callers are waiting for answers (sync calls,
// function URLs), fewer events run (down to paceMin); otherwise more (up
// to paceMax). Events are work that can wait, and a flood of them must
// not make the node's requests wait for a CPU: the queue holds them
// meanwhile (bounded per function), and they run at full speed once the
// CPU is free again or no caller waits. An I/O-bound flood leaves the CPU
// idle, so its events keep running as many at once as their functions'
// workers allow.
//
// Slots are handed out in the order they were asked for, so functions
// take turns.
type pace struct {
	mu      sync.Mutex
	limit   int             // guarded by mu
	running int             // guarded by mu
	waiters []chan struct{} // guarded by mu: oldest first; each gets a slot by a send
}

// The bounds of a pace, and the machine's idle share under which it
// shrinks and over which it grows.
const (
	paceMin      = 2
	paceMax      = 4096
	paceLowIdle  = 0.10
	paceHighIdle = 0.25
	paceEvery    = 500 * time.Millisecond
)

func newPace() *pace { return &pace{limit: paceMax} }

// acquire waits for a slot, until ctx ends.
func (p *pace) acquire(ctx context.Context) error {
	p.mu.Lock()
	if p.running < p.limit && len(p.waiters) == 0 {
		p.running++
		p.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return ctx.Err()
		}
	}
	// A slot raced the end of ctx: give it on.
	p.running--
	p.handOutLocked()
	return ctx.Err()
}

// acquireKeeping is acquire for an event fetched from the queue: while
// it waits, JetStream is told every period that it is still being worked
// on, so that it is not handed to another worker meanwhile.
func (p *pace) acquireKeeping(ctx context.Context, m jetstream.Msg, period time.Duration) error {
	if p.tryAcquire() {
		return nil
	}
	stop := keepAlive(m, period)
	defer stop()
	return p.acquire(ctx)
}

// tryAcquire takes a slot if one is free now and no one waits for one.
func (p *pace) tryAcquire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running < p.limit && len(p.waiters) == 0 {
		p.running++
		return true
	}
	return false
}

// release gives a slot back.
func (p *pace) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	p.handOutLocked()
}

// handOutLocked gives the free slots to the oldest waiters.
func (p *pace) handOutLocked() {
	for p.running < p.limit && len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.running++
		w <- struct{}{}
	}
}

// setLimit moves the bound; events running over a lowered bound finish.
func (p *pace) setLimit(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = n
	p.handOutLocked()
}

func (p *pace) currentLimit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// nextLimit is the bound after a look at the machine that found it idle
// for share idle of its CPU time: a quarter less (one at least) while the CPU is
// saturated, an eighth more (at least one) while it has room.
func nextLimit(limit int, idle float64) int {
	switch {
	case idle < paceLowIdle:
		return max(paceMin, limit-max(1, limit/4))
	case idle > paceHighIdle:
		return min(paceMax, limit+max(1, limit/8))
	}
	return limit
}

// follow moves p's bound with the machine's idle CPU time, as cpu reads
// it (the CPU time spent idle and in all so far), while the node has
// callers, as calls counts them (the requests it has taken so far), until
// ctx ends. Where the CPU time cannot be read, or calls is nil, the bound
// stays as it is.
func (p *pace) follow(ctx context.Context, cpu func() (idle, total uint64, ok bool), calls func() uint64) {
	lastIdle, lastTotal, ok := cpu()
	if !ok || calls == nil {
		return
	}
	lastCalls := calls()
	t := time.NewTicker(paceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		idle, total, ok := cpu()
		if !ok || total <= lastTotal {
			continue
		}
		share := float64(idle-lastIdle) / float64(total-lastTotal)
		n := calls()
		if n == lastCalls {
			share = 1 // no caller to make room for: as if idle
		}
		lastIdle, lastTotal, lastCalls = idle, total, n
		p.setLimit(nextLimit(p.currentLimit(), share))
	}
}
