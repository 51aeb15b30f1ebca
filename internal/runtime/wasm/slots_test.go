package wasm

import (
	"context"
	"errors"
	"os"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// waitState waits until the slots hold held slots and have queued
// waiters, as the goroutines under test get there.
func waitState(t *testing.T, s *slots, held, queued int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		total, n := s.total, len(s.queue)
		s.mu.Unlock()
		if total == held && n == queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots: %d held, %d queued; want %d and %d", total, n, held, queued)
		}
	}
}

// acquireAsync asks for a slot in a goroutine; the channel says when it
// is granted, or how it failed.
func acquireAsync(ctx context.Context, s *slots, function string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.acquire(ctx, function) }()
	return done
}

func granted(t *testing.T, name string, c <-chan error) {
	t.Helper()
	select {
	case err := <-c:
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s got no slot", name)
	}
}

func waiting(t *testing.T, name string, c <-chan error) {
	t.Helper()
	select {
	case err := <-c:
		t.Fatalf("%s: got %v, want it still waiting", name, err)
	default:
	}
}

func TestSlotsFairness(t *testing.T) {
	ctx := context.Background()
	s := newSlots(3) // 2 at most for one function
	for range 2 {
		if err := s.acquire(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	a3 := acquireAsync(ctx, s, "a")
	waitState(t, s, 2, 1) // a holds its most; the third slot is not a's
	if err := s.acquire(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	c1 := acquireAsync(ctx, s, "c")
	waitState(t, s, 3, 2)
	// c has none running, a has two: c's waiter goes first, though a's
	// came before it.
	s.release("a")
	granted(t, "c", c1)
	waiting(t, "a's third", a3)
	s.release("b")
	granted(t, "a's third", a3)
	waitState(t, s, 3, 0)

	// One slot: turns in order of arrival between equals.
	one := newSlots(1)
	if err := one.acquire(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	a2 := acquireAsync(ctx, one, "a")
	waitState(t, one, 1, 1)
	b1 := acquireAsync(ctx, one, "b")
	waitState(t, one, 1, 2)
	one.release("a")
	granted(t, "a's second", a2)
	waiting(t, "b", b1)
	one.release("a")
	granted(t, "b", b1)
}

func TestSlotsWaitEnds(t *testing.T) {
	s := newSlots(1)
	if err := s.acquire(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := acquireAsync(ctx, s, "b")
	waitState(t, s, 1, 1)
	cancel()
	if err := <-b; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := s.acquire(dctx, "c"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 slots") {
		t.Errorf("past the deadline: %v", err)
	}
	// The waiters that left took nothing with them.
	waitState(t, s, 1, 0)
	s.release("a")
	if err := s.acquire(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, 1, 0)
}

// TestSlotsDo runs guest code that runs long: on the caller's thread,
// which gets a low priority, and its own back after; the code's panics
// are the caller's.
func TestSlotsDo(t *testing.T) {
	s := newSlots(2)
	goruntime.LockOSThread() // so "after" is the thread the code ran on
	defer goruntime.UnlockOSThread()
	before := niceOf(t)
	var during string
	if err := s.do(context.Background(), "a", func() {
		// Runs until its thread is demoted, as a looping guest does.
		for deadline := time.Now().Add(10 * time.Second); s.lower && time.Now().Before(deadline); {
			if during = niceOf(t); during == "10" {
				break
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if after := niceOf(t); after != before {
		t.Errorf("the thread's nice: %s before, %s after", before, after)
	}
	if s.lower && during != "10" {
		t.Errorf("the thread's nice while it ran guest code: %s, want 10", during)
	}
	if goruntime.GOOS == "linux" && os.Geteuid() == 0 && !s.lower {
		t.Errorf("root cannot lower a thread's priority and give it back")
	}
	func() {
		defer func() {
			if p := recover(); p != "guest" {
				t.Errorf("recovered %v, want the guest's panic", p)
			}
		}()
		s.do(context.Background(), "a", func() { //nolint:errcheck // it panics
			for deadline := time.Now().Add(10 * time.Second); s.lower && niceOf(t) != "10" && time.Now().Before(deadline); {
			}
			panic("guest")
		})
	}()
	if after := niceOf(t); after != before {
		t.Errorf("the thread's nice after a panic: %s, want %s", after, before)
	}
	waitState(t, s, 0, 0)
}

// niceOf returns the calling thread's nice value, the 19th field of its
// stat, or "" where there is none.
func niceOf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		return ""
	}
	_, after, _ := strings.Cut(string(b), ") ")
	if f := strings.Fields(after); len(f) >= 17 {
		return f[16]
	}
	t.Fatalf("stat %q", b)
	return ""
}

// TestMaxRunning runs looping modules under a driver of two slots: one
// function's loops get one slot, the other's call runs in the other
// meanwhile, a call that waits past its deadline times out without
// running, and a reuse-mode instance still works.
func TestMaxRunning(t *testing.T) {
	if _, err := New(Config{CacheDir: t.TempDir(), MaxRunning: -1}); err == nil || !strings.Contains(err.Error(), "MaxRunning -1") {
		t.Errorf("MaxRunning -1: %v", err)
	}
	d, err := New(Config{CacheDir: sharedCache, MaxRunning: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	// Started (compiled) first: a loop takes a P.
	loops := []runtime.Instance{
		start(t, d, watDir(t, "loop"), runtime.Spec{Function: "spin", InstanceID: "spin-1"}),
		start(t, d, watDir(t, "loop"), runtime.Spec{Function: "spin", InstanceID: "spin-2"}),
	}
	third := start(t, d, watDir(t, "loop"), runtime.Spec{Function: "spin", InstanceID: "spin-3", Timeout: time.Second})
	hello := start(t, d, watDir(t, "hello"), runtime.Spec{Function: "hello", InstanceID: "hello-1"})
	warm := start(t, d, reuseGuestDir, runtime.Spec{Function: "warm", InstanceID: "warm-1", Reuse: true})

	results := make(chan runtime.Result, len(loops))
	for _, inst := range loops {
		go func() { results <- invoke(inst, "loop", `{}`, time.Minute) }()
	}
	waitState(t, d.slots, 1, 1)
	if r := invoke(hello, "hi", `{}`, 10*time.Second); r.Failed() || !strings.Contains(string(r.Payload), "hello from wat") {
		t.Errorf("another function beside the loops: %s %s", r.ErrorType, r.Payload)
	}
	if r := invoke(warm, "w", `{"mode":"counter"}`, 10*time.Second); string(r.Payload) != "1" {
		t.Errorf("reuse mode beside the loops: %s %s", r.ErrorType, r.Payload)
	}
	// A third loop of spin's waits behind the second, to its deadline.
	if r := invoke(third, "late", `{}`, 200*time.Millisecond); r.ErrorType != runtime.ErrTypeTimeout || !r.Reusable {
		t.Errorf("waiting past the deadline: %s %s (Reusable %v)", r.ErrorType, r.Payload, r.Reusable)
	}
	waitState(t, d.slots, 1, 1)

	// Stopped, the loop running ends and the one waiting never runs.
	for _, inst := range loops {
		if err := inst.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	for range loops {
		if r := <-results; r.ErrorType != runtime.ErrTypeExit || r.Reusable || !strings.Contains(string(r.Payload), "instance stopped") {
			t.Errorf("a stopped loop: %s %s (Reusable %v)", r.ErrorType, r.Payload, r.Reusable)
		}
	}
	waitState(t, d.slots, 0, 0)
}
