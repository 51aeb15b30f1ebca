package events

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestNextLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		idle  float64
		want  int
	}{
		{"saturated shrinks by a quarter", 100, 0.02, 75},
		{"saturated stops at the least", paceMin, 0, paceMin},
		{"saturated from 3", 3, 0.05, paceMin},
		{"room grows by an eighth", 80, 0.5, 90},
		{"room grows by one at least", 2, 0.9, 3},
		{"room stops at the most", paceMax, 1, paceMax},
		{"in between stays", 40, 0.15, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextLimit(tc.limit, tc.idle); got != tc.want {
				t.Errorf("nextLimit(%d, %.2f) = %d, want %d", tc.limit, tc.idle, got, tc.want)
			}
		})
	}
}

// Slots go to waiters in the order they asked, a lowered limit lets the
// events running finish, and a raised one lets waiters in at once.
func TestPace(t *testing.T) {
	p := newPace()
	p.setLimit(2)
	ctx := context.Background()
	for range 2 {
		if err := p.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if p.tryAcquire() {
		t.Fatal("a third slot of two")
	}
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			if err := p.acquire(ctx); err == nil {
				order <- i
			}
		}()
		for { // in order
			p.mu.Lock()
			n := len(p.waiters)
			p.mu.Unlock()
			if n == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	p.release()
	if got := <-order; got != 0 {
		t.Fatalf("the first slot freed went to waiter %d, want 0", got)
	}
	for i, limit := range []int{3, 4} {
		p.setLimit(limit)
		if got := <-order; got != i+1 {
			t.Fatalf("a limit raised to %d let in waiter %d, want %d", limit, got, i+1)
		}
	}
	p.setLimit(1) // four run; they finish, and no one new starts until one does not
	for range 3 {
		p.release()
	}
	if p.tryAcquire() {
		t.Fatal("a slot over a lowered limit")
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p.acquire(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire past its ctx: %v", err)
	}
	p.release()
	if !p.tryAcquire() {
		t.Fatal("no slot once the running are under the limit")
	}
}

// machineCPU reads this machine's CPU time.
func TestMachineCPU(t *testing.T) {
	idle, total, ok := machineCPU()
	if !ok {
		t.Skip("the machine's CPU time cannot be read here")
	}
	if total == 0 || idle > total {
		t.Errorf("idle %d of %d", idle, total)
	}
}

// The pace shrinks only while the CPU is saturated and callers wait for
// answers: events alone on a busy machine run as fast as they can.
func TestPaceFollows(t *testing.T) {
	var ticks, requests atomic.Uint64
	saturated := func() (idle, total uint64, ok bool) {
		n := ticks.Add(100)
		return n / 100, n, true // 1% idle
	}
	run := func(calls func() uint64) int {
		p := newPace()
		ctx, cancel := context.WithTimeout(context.Background(), 3*paceEvery+paceEvery/2)
		defer cancel()
		p.follow(ctx, saturated, calls)
		return p.currentLimit()
	}
	if got := run(func() uint64 { return requests.Load() }); got != paceMax {
		t.Errorf("limit after a saturated CPU and no callers: %d, want %d", got, paceMax)
	}
	if got := run(func() uint64 { return requests.Add(1) }); got >= paceMax*3/4 {
		t.Errorf("limit after a saturated CPU with callers: %d, want it shrunk", got)
	}
}
