package invoke

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// fakeRegistry resolves every name to the target it holds now.
type fakeRegistry struct {
	mu sync.Mutex
	t  registry.Target
}

func (r *fakeRegistry) set(t registry.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t = t
}

func (r *fakeRegistry) Resolve(name, qualifier string, pick func() float64) (registry.Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t, nil
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
// spec they were started for.
type fakeDriver struct {
	newInvoke func(runtime.Spec) func(runtime.Invocation) runtime.Result
}

func (d fakeDriver) Start(_ context.Context, spec runtime.Spec) (runtime.Instance, error) {
	return &fakeInstance{invoke: d.newInvoke(spec), done: make(chan struct{})}, nil
}

type fakeCode struct{ dir string }

func (c fakeCode) Dir(context.Context, string) (string, error) { return c.dir, nil }

type noLogs struct{}

func (noLogs) Append(telemetry.Record)                      {}
func (noLogs) AppendWait(<-chan struct{}, telemetry.Record) {}

func target(version string, timeout int, rev uint64) registry.Target {
	return registry.Target{Function: registry.Function{Name: "f", Runtime: "provided", MemoryMB: 128, Timeout: timeout,
		CodeSHA256: "abc"}, Version: version, Key: "f@" + version, Revision: rev}
}

// A call whose instance died before it got the call goes to another
// instance; when the function changed meanwhile, it runs under what runs
// now: its timeout, and the version the answer names.
func TestRetryRunsWhatRunsNow(t *testing.T) {
	reg := &fakeRegistry{t: target("1", 3, 1)}
	var deadlines []time.Duration
	var mu sync.Mutex
	iv, err := New(Config{Registry: reg, Code: fakeCode{t.TempDir()}, Logs: noLogs{},
		Driver: fakeDriver{newInvoke: func(spec runtime.Spec) func(runtime.Invocation) runtime.Result {
			return func(inv runtime.Invocation) runtime.Result {
				mu.Lock()
				defer mu.Unlock()
				deadlines = append(deadlines, time.Until(inv.Deadline))
				if spec.Version == "1" {
					// Gone before the call reached it; the alias moved on.
					reg.set(target("2", 60, 2))
					return runtime.Result{Undelivered: true}
				}
				return runtime.Result{Payload: []byte(`"ok"`), Reusable: true}
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer iv.Close(context.Background())
	res, err := iv.Invoke(context.Background(), Request{Function: "f", Qualifier: "live", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Payload) != `"ok"` || res.Version != "2" {
		t.Fatalf("answer %q from version %q, want \"ok\" from version 2", res.Payload, res.Version)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deadlines) != 2 {
		t.Fatalf("%d attempts, want 2", len(deadlines))
	}
	if deadlines[1] < 30*time.Second {
		t.Errorf("the retry's deadline was %s away, want version 2's 60 s timeout, not version 1's 3 s", deadlines[1].Round(time.Second))
	}
}
