package wasm

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
)

// DefaultMaxRunning is how many wasm calls may run at once when
// Config.MaxRunning is 0: one fewer than GOMAXPROCS, at least 1. A call
// runs in the node's own process, on one of its Ps, and wazero's compiled
// code yields to Go's scheduler only at its loops' and calls' checks, so
// calls as many as the Ps would leave the node's own goroutines (its HTTP
// server, the Runtime API of process instances) waiting behind them.
func DefaultMaxRunning() int {
	return max(1, goruntime.GOMAXPROCS(0)-1)
}

// slots bounds the guest code running at once (invocations, reuse mode's
// _initialize, the start section a trial instantiation runs). A call
// cannot be preempted once it runs, so fairness is in who gets a slot:
//
//   - callers wait in order, each until it gets a slot or its ctx ends
//     (the invocation's deadline, its caller, a Stop);
//   - a slot that frees goes to the waiting function with the fewest
//     calls running, the first of its waiters (so a function queueing
//     many calls takes turns with the others rather than before them);
//   - no function holds more than max−1 slots (all, when max is 1), so
//     while one function's calls loop to their timeouts, another's still
//     find a slot.
type slots struct {
	max, perFunction int
	lower            bool // guest code runs at guestNice

	mu      sync.Mutex
	total   int            // guarded by mu: slots held
	running map[string]int // guarded by mu: slots held, by function
	queue   []*slotWaiter  // guarded by mu: in arrival order
}

// slotWaiter is a caller waiting for a slot.
type slotWaiter struct {
	function string
	granted  chan struct{} // closed once the slot is the waiter's
}

func newSlots(n int) *slots {
	return &slots{max: n, perFunction: max(1, n-1), lower: canLower(), running: make(map[string]int)}
}

// do runs f, guest code of function's, once it has a slot in its turn,
// at a low CPU priority where the node can set it back (see runLowered);
// or returns the error of ctx ending first, f never having run.
func (s *slots) do(ctx context.Context, function string, f func()) error {
	if err := s.acquire(ctx, function); err != nil {
		return err
	}
	defer s.release(function)
	if s.lower {
		runLowered(f)
	} else {
		f()
	}
	return nil
}

// acquire waits for a slot for function, in its turn, until ctx ends.
// The caller gives it back with release.
func (s *slots) acquire(ctx context.Context, function string) error {
	w := &slotWaiter{function: function, granted: make(chan struct{})}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	s.grantLocked()
	s.mu.Unlock()
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-w.granted:
		// Granted as ctx ended: the slot is given back to the next.
		s.releaseLocked(function)
	default:
		for i, q := range s.queue {
			if q == w {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		// A waiter behind this one may have been held back by it.
		s.grantLocked()
	}
	return fmt.Errorf("wasm: waiting for one of the %d slots wasm calls run in: %w", s.max, context.Cause(ctx))
}

// release gives back function's slot.
func (s *slots) release(function string) {
	s.mu.Lock()
	s.releaseLocked(function)
	s.mu.Unlock()
}

func (s *slots) releaseLocked(function string) {
	s.total--
	if s.running[function] <= 1 {
		delete(s.running, function)
	} else {
		s.running[function]--
	}
	s.grantLocked()
}

// grantLocked hands the free slots to waiters: each to the first waiter
// of the function, under its bound, with the fewest calls running.
func (s *slots) grantLocked() {
	for s.total < s.max {
		best := -1
		for i, w := range s.queue {
			n := s.running[w.function]
			if n >= s.perFunction {
				continue
			}
			if best < 0 || n < s.running[s.queue[best].function] {
				best = i
			}
		}
		if best < 0 {
			return
		}
		w := s.queue[best]
		s.queue = append(s.queue[:best], s.queue[best+1:]...)
		s.total++
		s.running[w.function]++
		close(w.granted)
	}
}
