// Package pool keeps the instances of one function version: it hands out
// a warm idle instance when there is one, starts one when there is not, and
// takes instances back after each invocation.
package pool

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// ErrClosed is an Acquire on a pool that was drained.
var ErrClosed = errors.New("pool: closed")

// Config says how a pool starts instances.
type Config struct {
	// Start starts one instance of the pool's version.
	Start func(ctx context.Context) (runtime.Instance, error)
	Now   func() time.Time
}

// Pool holds the instances of one version.
type Pool struct {
	cfg Config

	mu     sync.Mutex
	idle   []*member // guarded by mu; most recently used last
	busy   int       // guarded by mu
	closed bool      // guarded by mu

	stopping sync.WaitGroup // instances being stopped in the background
}

type member struct {
	inst     runtime.Instance
	lastUsed time.Time
}

// New returns an empty pool.
func New(cfg Config) *Pool {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Pool{cfg: cfg}
}

// Lease is one instance lent out for one invocation.
type Lease struct {
	Instance runtime.Instance
	// Cold says the instance was started for this lease.
	Cold bool
	pool *Pool
	m    *member
}

// Acquire returns the most recently used idle instance, or starts one.
func (p *Pool) Acquire(ctx context.Context) (*Lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		m := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		select {
		case <-m.inst.Done():
			p.stopLocked(m) // died while idle
			continue
		default:
		}
		p.busy++
		p.mu.Unlock()
		return &Lease{Instance: m.inst, pool: p, m: m}, nil
	}
	p.busy++
	p.mu.Unlock()

	inst, err := p.cfg.Start(ctx)
	if err != nil {
		p.mu.Lock()
		p.busy--
		p.mu.Unlock()
		return nil, err
	}
	return &Lease{Instance: inst, Cold: true, pool: p, m: &member{inst: inst}}, nil
}

// Release gives the instance back; one that cannot be reused is stopped.
func (l *Lease) Release(reusable bool) {
	p := l.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy--
	if !reusable || p.closed {
		p.stopLocked(l.m)
		return
	}
	l.m.lastUsed = p.cfg.Now()
	p.idle = append(p.idle, l.m)
}

// stopLocked stops an instance in the background so the caller, often on
// the invoke path, does not wait for a process to exit.
func (p *Pool) stopLocked(m *member) {
	p.stopping.Add(1)
	go func() {
		defer p.stopping.Done()
		m.inst.Stop() //nolint:errcheck // the instance is gone either way; its driver logs why
	}()
}

// Stats is a snapshot of the pool.
type Stats struct{ Idle, Busy int }

// Stats returns how many instances are idle and busy.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Idle: len(p.idle), Busy: p.busy}
}

// Drain stops taking new work: idle instances stop now, busy ones when
// they are released. It waits until every instance that was stopped is
// gone or ctx ends.
func (p *Pool) Drain(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	for _, m := range p.idle {
		p.stopLocked(m)
	}
	p.idle = nil
	p.mu.Unlock()
	return p.wait(ctx)
}

// Close drains the pool and waits for busy instances too, which their
// invocations release.
func (p *Pool) Close(ctx context.Context) error {
	if err := p.Drain(ctx); err != nil {
		return err
	}
	for {
		p.mu.Lock()
		busy := p.busy
		p.mu.Unlock()
		if busy == 0 {
			return p.wait(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *Pool) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.stopping.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
