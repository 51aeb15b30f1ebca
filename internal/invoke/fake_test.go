package invoke

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// Fakes of the Invoker's consumer-side interfaces, so that its own rules
// (which pool a call goes to, retries, what a failure is reported as) are
// tested without a registry, processes or a meter.

// fakeRegistry resolves every qualifier to the target it holds now or,
// when byQualifier is set, each qualifier to its own target (any other is
// not found). It records the qualifiers it was asked for and what the
// pick it was handed drew.
type fakeRegistry struct {
	mu          sync.Mutex
	t           registry.Target            // guarded by mu
	byQualifier map[string]registry.Target // guarded by mu
	asked       []string                   // guarded by mu
	draws       []float64                  // guarded by mu
}

func (r *fakeRegistry) set(t registry.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t = t
}

func (r *fakeRegistry) Resolve(name, qualifier string, pick func() float64) (registry.Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, qualifier)
	if pick != nil {
		r.draws = append(r.draws, pick())
	}
	if r.byQualifier == nil {
		return r.t, nil
	}
	t, ok := r.byQualifier[qualifier]
	if !ok || t.Name != name {
		return registry.Target{}, fmt.Errorf("%s:%s: %w", name, qualifier, registry.ErrNotFound)
	}
	return t, nil
}

func (r *fakeRegistry) Provisioned(string) []registry.Target { return nil }

func (r *fakeRegistry) Watch(ctx context.Context) (<-chan registry.Change, error) {
	ch := make(chan registry.Change)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// fakeInstance answers with what its invoke func says.
type fakeInstance struct {
	invoke func(runtime.Invocation) runtime.Result
	done   chan struct{}
	once   sync.Once
}

func (f *fakeInstance) Invoke(_ context.Context, inv runtime.Invocation) runtime.Result {
	return f.invoke(inv)
}
func (f *fakeInstance) InitDuration() time.Duration { return 0 }
func (f *fakeInstance) Done() <-chan struct{}       { return f.done }
func (f *fakeInstance) Stop() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

// fakeDriver starts instances whose invocations newInvoke makes, by the
// spec they were started for, or fails every start with startErr. It
// records the specs it started.
type fakeDriver struct {
	newInvoke func(runtime.Spec) func(runtime.Invocation) runtime.Result
	startErr  error

	mu     sync.Mutex
	starts []runtime.Spec // guarded by mu
}

func (d *fakeDriver) Start(_ context.Context, spec runtime.Spec) (runtime.Instance, error) {
	d.mu.Lock()
	d.starts = append(d.starts, spec)
	d.mu.Unlock()
	if d.startErr != nil {
		return nil, d.startErr
	}
	return &fakeInstance{invoke: d.newInvoke(spec), done: make(chan struct{})}, nil
}

// started returns the versions of the instances started so far.
func (d *fakeDriver) started() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, s := range d.starts {
		out = append(out, s.Version)
	}
	return out
}

// answer is a driver whose instances all answer r.
func answer(r runtime.Result) *fakeDriver {
	return &fakeDriver{newInvoke: func(runtime.Spec) func(runtime.Invocation) runtime.Result {
		return func(runtime.Invocation) runtime.Result { return r }
	}}
}

// fakeCode hands out dir, or fails with err.
type fakeCode struct {
	dir string
	err error
}

func (c fakeCode) Dir(context.Context, string) (string, error) { return c.dir, c.err }

// fakeLogs keeps every record.
type fakeLogs struct {
	mu   sync.Mutex
	recs []telemetry.Record // guarded by mu
}

func (l *fakeLogs) Append(rec telemetry.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, rec)
}

func (l *fakeLogs) AppendWait(_ <-chan struct{}, rec telemetry.Record) { l.Append(rec) }

// platform returns the platform lines of a request that start with prefix.
func (l *fakeLogs) platform(requestID, prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Stream == "platform" && r.RequestID == requestID && strings.HasPrefix(r.Message, prefix) {
			out = append(out, r.Message)
		}
	}
	return out
}

// fakeMetrics records outcomes and throttles.
type fakeMetrics struct {
	mu        sync.Mutex
	outcomes  []string // guarded by mu; "version outcome"
	throttles []string // guarded by mu; reasons
}

func (m *fakeMetrics) Invoked(_, version, outcome string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes = append(m.outcomes, version+" "+outcome)
}

func (m *fakeMetrics) ColdStart(string, string, time.Duration) {}

func (m *fakeMetrics) Throttled(_, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.throttles = append(m.throttles, reason)
}

// fakeUsage admits every call unless admitErr is set, and records what
// it is told.
type fakeUsage struct {
	admitErr error

	mu       sync.Mutex
	admitted []string       // guarded by mu; the functions admitted, by their $LATEST's name
	released int            // guarded by mu
	records  []meter.Record // guarded by mu
}

func (u *fakeUsage) Admit(f registry.Function) (*meter.Ticket, error) {
	if u.admitErr != nil {
		return nil, u.admitErr
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.admitted = append(u.admitted, f.Name)
	return &meter.Ticket{}, nil
}

func (u *fakeUsage) Release(*meter.Ticket) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.released++
}

func (u *fakeUsage) Record(rec meter.Record, _ *meter.Ticket) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.records = append(u.records, rec)
}

func (u *fakeUsage) RecordStored(_ context.Context, rec meter.Record, t *meter.Ticket) error {
	u.Record(rec, t)
	return nil
}

// newInvoker starts an Invoker on cfg, with a code dir and a log sink
// unless cfg has them, closed when the test ends.
func newInvoker(t *testing.T, cfg Config) *Invoker {
	t.Helper()
	if cfg.Code == nil {
		cfg.Code = fakeCode{dir: t.TempDir()}
	}
	if cfg.Logs == nil {
		cfg.Logs = &fakeLogs{}
	}
	iv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iv.Close(context.Background()) }) //nolint:errcheck // Close returns nil
	return iv
}

// target is version of function f, with a timeout in seconds, at revision rev.
func target(version string, timeout int, rev uint64) registry.Target {
	return registry.Target{Function: registry.Function{Name: "f", Runtime: "provided", MemoryMB: 128, Timeout: timeout,
		CodeSHA256: "abc"}, Version: version, Key: "f@" + version, Revision: rev}
}
