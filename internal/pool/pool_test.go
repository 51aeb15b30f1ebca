package pool

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// fakeInstance is an instance without a process.
type fakeInstance struct {
	done     chan struct{}
	stopOnce sync.Once
	stopped  atomic.Bool
	onStop   func() // called once, as it stops
}

func newFake() *fakeInstance { return &fakeInstance{done: make(chan struct{})} }

func (f *fakeInstance) Invoke(context.Context, runtime.Invocation) runtime.Result {
	return runtime.Result{Reusable: true}
}
func (f *fakeInstance) InitDuration() time.Duration { return time.Millisecond }
func (f *fakeInstance) Done() <-chan struct{}       { return f.done }
func (f *fakeInstance) Stop() error {
	f.stopOnce.Do(func() {
		f.stopped.Store(true)
		if f.onStop != nil {
			f.onStop()
		}
		close(f.done)
	})
	return nil
}
func (f *fakeInstance) crash() { f.Stop() } //nolint:errcheck // a fake

// fakeDriver starts fake instances, each start waiting for gate if set.
type fakeDriver struct {
	mu      sync.Mutex
	started []*fakeInstance
	live    atomic.Int32
	maxLive atomic.Int32
	gate    chan struct{} // nil: starts at once
	fail    error
}

func (d *fakeDriver) start(ctx context.Context) (runtime.Instance, error) {
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d.fail != nil {
		return nil, d.fail
	}
	f := newFake()
	n := d.live.Add(1)
	for {
		m := d.maxLive.Load()
		if n <= m || d.maxLive.CompareAndSwap(m, n) {
			break
		}
	}
	f.onStop = func() { d.live.Add(-1) }
	d.mu.Lock()
	d.started = append(d.started, f)
	d.mu.Unlock()
	return f, nil
}

func (d *fakeDriver) starts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.started)
}

func newTestPool(t *testing.T, d *fakeDriver, cfg Config) *Pool {
	t.Helper()
	cfg.Start = d.start
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 128
	}
	if cfg.Limits.KeepWarm == 0 {
		cfg.Limits.KeepWarm = time.Minute
	}
	p := New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Drain(ctx); err != nil {
			t.Errorf("drain: %v", err)
		}
	})
	return p
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestTidy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	idle := func(usedAgo time.Duration) IdleState { return IdleState{Started: t0, LastUsed: t0.Add(-usedAgo)} }
	lim := Limits{Max: -1, KeepWarm: 10 * time.Minute}
	for _, tc := range []struct {
		name      string
		state     State
		limits    Limits
		now       time.Time
		wantStop  []int
		wantStart int
	}{
		{"nothing idle", State{}, lim, t0, nil, 0},
		{"recently used stays", State{Idle: []IdleState{idle(time.Minute)}}, lim, t0, nil, 0},
		{"idle past keep-warm stops", State{Idle: []IdleState{idle(11 * time.Minute), idle(time.Minute)}}, lim, t0, []int{0}, 0},
		{"scale to zero", State{Idle: []IdleState{idle(20 * time.Minute), idle(15 * time.Minute)}}, lim, t0, []int{0, 1}, 0},
		{"min kept though idle", State{Idle: []IdleState{idle(20 * time.Minute), idle(15 * time.Minute)}},
			Limits{Max: -1, Min: 1, KeepWarm: 10 * time.Minute}, t0, []int{0}, 0},
		{"busy count toward min", State{Idle: []IdleState{idle(20 * time.Minute)}, Busy: 2},
			Limits{Max: -1, Min: 2, KeepWarm: 10 * time.Minute}, t0, []int{0}, 0},
		{"min started", State{}, Limits{Max: -1, Min: 2, KeepWarm: time.Minute}, t0, nil, 2},
		{"min counts starting", State{Starting: 1}, Limits{Max: -1, Min: 2, KeepWarm: time.Minute}, t0, nil, 1},
		{"min capped by max", State{}, Limits{Max: 1, Min: 3, KeepWarm: time.Minute}, t0, nil, 1},
		{"dead replaced", State{Idle: []IdleState{{Started: t0, LastUsed: t0, Dead: true}}},
			Limits{Max: -1, Min: 1, KeepWarm: time.Minute}, t0, []int{0}, 1},
		{"recycled when old", State{Idle: []IdleState{{Started: t0.Add(-3 * time.Hour), LastUsed: t0}}},
			Limits{Max: -1, KeepWarm: time.Minute, MaxLifetime: 2 * time.Hour}, t0, []int{0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop, start := Tidy(tc.now, tc.state, tc.limits)
			if !slices.Equal(stop, tc.wantStop) || start != tc.wantStart {
				t.Errorf("Tidy = %v, %d; want %v, %d", stop, start, tc.wantStop, tc.wantStart)
			}
		})
	}
}

func TestStartsFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state State
		max   int
		want  int
	}{
		{"one per waiter", State{Waiting: 3}, -1, 3},
		{"starting ones count", State{Waiting: 3, Starting: 2}, -1, 1},
		{"capped by max", State{Waiting: 30, Busy: 18}, 20, 2},
		{"at max", State{Waiting: 3, Busy: 20}, 20, 0},
		{"nobody waiting", State{Idle: []IdleState{{}}}, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StartsFor(tc.state, Limits{Max: tc.max}); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestWarmReuseMostRecentFirst(t *testing.T) {
	d := &fakeDriver{}
	p := newTestPool(t, d, Config{Limits: Limits{Max: -1}})
	a, err := p.Acquire(ctxFor(t, time.Second))
	if err != nil || !a.Cold {
		t.Fatalf("first acquire: %v cold=%v", err, a != nil && a.Cold)
	}
	b, err := p.Acquire(ctxFor(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	a.Release(true)
	b.Release(true)
	c, err := p.Acquire(ctxFor(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cold || c.Instance != b.Instance {
		t.Errorf("got a cold=%v instance, want the warm one released last", c.Cold)
	}
	c.Release(true)
	if d.starts() != 2 {
		t.Errorf("%d starts, want 2", d.starts())
	}
}

func TestConcurrencyLimitQueues(t *testing.T) {
	d := &fakeDriver{}
	p := newTestPool(t, d, Config{Limits: Limits{Max: 3, KeepWarm: time.Minute}})
	var wg sync.WaitGroup
	var served atomic.Int32
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := p.Acquire(ctxFor(t, 5*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
			served.Add(1)
			l.Release(true)
		}()
	}
	wg.Wait()
	if served.Load() != 50 || d.maxLive.Load() > 3 {
		t.Errorf("served %d, max live %d; want 50 and at most 3", served.Load(), d.maxLive.Load())
	}
}

func TestThrottle(t *testing.T) {
	t.Run("reserved zero", func(t *testing.T) {
		p := newTestPool(t, &fakeDriver{}, Config{Limits: Limits{Max: 0}})
		_, err := p.Acquire(ctxFor(t, time.Second))
		var te *ThrottleError
		if !errors.As(err, &te) || te.Reason != ReasonReserved {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("queue full", func(t *testing.T) {
		p := newTestPool(t, &fakeDriver{}, Config{Limits: Limits{Max: 1, KeepWarm: time.Minute}, MaxQueue: 1})
		l, err := p.Acquire(ctxFor(t, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(true)
		go func() { // fills the queue
			if l, err := p.Acquire(ctxFor(t, 5*time.Second)); err == nil {
				l.Release(true)
			}
		}()
		waitFor(t, func() bool { return p.Stats().Queued == 1 })
		_, err = p.Acquire(ctxFor(t, time.Second))
		var te *ThrottleError
		if !errors.As(err, &te) || te.Reason != ReasonReserved {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("deadline in queue", func(t *testing.T) {
		p := newTestPool(t, &fakeDriver{}, Config{Limits: Limits{Max: 1, KeepWarm: time.Minute}})
		l, err := p.Acquire(ctxFor(t, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(true)
		_, err = p.Acquire(ctxFor(t, 20*time.Millisecond))
		var te *ThrottleError
		if !errors.As(err, &te) {
			t.Fatalf("got %v", err)
		}
		if p.Stats().Queued != 0 {
			t.Errorf("the caller that gave up is still queued")
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A queued caller takes whichever instance frees first: a warm one
// released while a cold start is still on its way.
func TestWarmBeatsColdStart(t *testing.T) {
	d := &fakeDriver{}
	p := newTestPool(t, d, Config{Limits: Limits{Max: -1}})
	l, err := p.Acquire(ctxFor(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	d.gate = make(chan struct{}) // the next start hangs until released
	got := make(chan *Lease)
	go func() {
		l2, err := p.Acquire(ctxFor(t, 5*time.Second))
		if err != nil {
			t.Error(err)
		}
		got <- l2
	}()
	waitFor(t, func() bool { return p.Stats().Starting == 1 })
	l.Release(true)
	l2 := <-got
	if l2.Cold || l2.Instance != l.Instance {
		t.Errorf("the queued caller waited for the cold start")
	}
	l2.Release(true)
	close(d.gate) // the cold start ends and goes idle
	waitFor(t, func() bool { return p.Stats().Idle == 2 })
}

func TestInitErrorGoesToCaller(t *testing.T) {
	boom := &runtime.InitError{Type: "Runtime.ImportModuleError", Message: "no module"}
	p := newTestPool(t, &fakeDriver{fail: boom}, Config{Limits: Limits{Max: -1}})
	_, err := p.Acquire(ctxFor(t, time.Second))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestBudgetEvictsOtherPoolsIdle(t *testing.T) {
	b := NewBudget(256)
	da, db := &fakeDriver{}, &fakeDriver{}
	pa := newTestPool(t, da, Config{Budget: b, Limits: Limits{Max: -1}})
	pb := newTestPool(t, db, Config{Budget: b, Limits: Limits{Max: -1}})
	var leases []*Lease
	for range 2 {
		l, err := pa.Acquire(ctxFor(t, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.Release(true)
	}
	if b.Used() != 256 {
		t.Fatalf("used %d", b.Used())
	}
	l, err := pb.Acquire(ctxFor(t, 2*time.Second))
	if err != nil {
		t.Fatalf("acquire with the budget held by idle instances: %v", err)
	}
	defer l.Release(true)
	if s := pa.Stats(); s.Idle != 1 {
		t.Errorf("pool a has %d idle, want 1 (one evicted)", s.Idle)
	}
}

func TestBudgetFullThrottles(t *testing.T) {
	b := NewBudget(128)
	pa := newTestPool(t, &fakeDriver{}, Config{Budget: b, Limits: Limits{Max: -1}})
	pb := newTestPool(t, &fakeDriver{}, Config{Budget: b, Limits: Limits{Max: -1}})
	l, err := pa.Acquire(ctxFor(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pb.Acquire(ctxFor(t, 30*time.Millisecond))
	var te *ThrottleError
	if !errors.As(err, &te) || te.Reason != ReasonNode {
		t.Fatalf("got %v, want a node throttle", err)
	}
	// Once a is released and idle, b gets the memory by evicting it.
	l.Release(true)
	l, err = pb.Acquire(ctxFor(t, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l.Release(true)
}

func TestTickScalesToZeroAndKeepsMin(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	d := &fakeDriver{}
	p := newTestPool(t, d, Config{Now: clock, Limits: Limits{Max: -1, Min: 1, KeepWarm: 10 * time.Minute}})
	p.Tick(clock())
	waitFor(t, func() bool { return p.Stats().Idle == 1 })

	var leases []*Lease
	for range 3 {
		l, err := p.Acquire(ctxFor(t, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.Release(true)
	}
	if got := p.Stats().Idle; got != 3 {
		t.Fatalf("%d idle", got)
	}
	advance(5 * time.Minute)
	p.Tick(clock())
	if got := p.Stats().Idle; got != 3 {
		t.Errorf("stopped instances before keep-warm: %d idle", got)
	}
	advance(6 * time.Minute)
	p.Tick(clock())
	if got := p.Stats().Idle; got != 1 {
		t.Errorf("%d idle after keep-warm, want min 1", got)
	}
	// The warm one dies: the next tick replaces it.
	d.mu.Lock()
	var live *fakeInstance
	for _, f := range d.started {
		if !f.stopped.Load() {
			live = f
		}
	}
	d.mu.Unlock()
	live.crash()
	p.Tick(clock())
	waitFor(t, func() bool { s := p.Stats(); return s.Idle == 1 && s.Starting == 0 })
	if d.starts() != 4 {
		t.Errorf("%d starts, want 4 (3 plus one replacement)", d.starts())
	}
}

func TestDrain(t *testing.T) {
	d := &fakeDriver{}
	p := New(Config{Start: d.start, MemoryMB: 128, Limits: Limits{Max: 1, KeepWarm: time.Minute}})
	l, err := p.Acquire(ctxFor(t, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan error)
	go func() {
		_, err := p.Acquire(ctxFor(t, 5*time.Second))
		queued <- err
	}()
	waitFor(t, func() bool { return p.Stats().Queued == 1 })
	drained := make(chan error)
	go func() { drained <- p.Drain(ctxFor(t, 5*time.Second)) }()
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Errorf("queued caller got %v, want ErrClosed", err)
	}
	// The busy instance finishes its call, then stops.
	l.Release(true)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if d.live.Load() != 0 {
		t.Errorf("%d instances live after drain", d.live.Load())
	}
	if _, err := p.Acquire(ctxFor(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after drain: %v", err)
	}
}

// An instance killed while lent is stopped once, and its memory given
// back once, when the invocation's lease comes back after the kill.
func TestKillThenRelease(t *testing.T) {
	d := &fakeDriver{}
	b := NewBudget(256)
	p := newTestPool(t, d, Config{MemoryMB: 128, Budget: b, Limits: Limits{Max: 2}})
	l1, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l2, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Used() != 256 {
		t.Fatalf("budget used %d MB with two instances of 128", b.Used())
	}
	p.Kill()
	l1.Release(true)
	l2.Release(false)
	l2.Release(false) // a second release of one lease changes nothing
	p.bg.Wait()
	if got := b.Used(); got != 0 {
		t.Fatalf("budget used %d MB after the pool was killed and its leases came back, want 0", got)
	}
	// Memory given back twice would let a third instance start here.
	q := newTestPool(t, &fakeDriver{}, Config{MemoryMB: 128, Budget: b, Limits: Limits{Max: 4}})
	for i := range 2 {
		l, err := q.Acquire(context.Background())
		if err != nil {
			t.Fatalf("instance %d of another pool: %v", i, err)
		}
		defer l.Release(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if l, err := q.Acquire(ctx); err == nil {
		l.Release(true)
		t.Fatal("a third instance of 128 MB started in a budget of 256")
	}
}

// A drain that runs out of time still leaves the budget, and the memory
// of the instance it waited for comes back when that one is released.
func TestDrainTimeoutLeavesBudget(t *testing.T) {
	b := NewBudget(256)
	p := newTestPool(t, &fakeDriver{}, Config{MemoryMB: 128, Budget: b, Limits: Limits{Max: 2}})
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a busy instance: %v", err)
	}
	b.mu.Lock()
	_, still := b.pools[p]
	b.mu.Unlock()
	if still {
		t.Error("the drained pool is still in the budget")
	}
	l.Release(true)
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.Used(); got != 0 {
		t.Errorf("budget used %d MB after the drain ended", got)
	}
}
