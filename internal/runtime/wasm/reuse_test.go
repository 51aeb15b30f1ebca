package wasm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// ended reports whether the instance's Done is closed.
func ended(inst runtime.Instance) bool {
	select {
	case <-inst.Done():
		return true
	default:
		return false
	}
}

// streams returns the lines tagged with requestID as "stream: text".
func (l *logs) streams(requestID string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if line.RequestID == requestID {
			out = append(out, line.Stream+": "+line.Text)
		}
	}
	return out
}

func TestReuseContract(t *testing.T) {
	tests := []struct {
		name        string
		dir         func(t testing.TB) string
		payload     string
		want        string // the payload, or on error the errorMessage
		wantErrType string
		wantStack   []string
		wantLogs    []string // "stream: text"
	}{
		{
			name: "go example", dir: func(testing.TB) string { return reuseExampleDir },
			payload: `{"name":"ada"}`, want: `{"greeting":"hello, ada"}`,
			wantLogs: []string{"stderr: greeting ada in hello"},
		},
		{
			name: "go example, function URL", dir: func(testing.TB) string { return reuseExampleDir },
			payload: `{"version":"2.0","rawPath":"/","queryStringParameters":{"name":"bob"},"requestContext":{"http":{"method":"GET","path":"/"}}}`,
			want:    `{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"hello, bob\n"}`,
		},
		{
			name: "go example, bad event", dir: func(testing.TB) string { return reuseExampleDir },
			payload: `[1]`, wantErrType: runtime.ErrTypeUnknown,
			want: "event is not an object with a name: json: cannot unmarshal array into Go value of type main.request",
		},
		{
			name: "stdout and stderr go to the logs", dir: func(testing.TB) string { return reuseGuestDir },
			payload: `{"mode":"log"}`, want: `"logged"`,
			wantLogs: []string{"stdout: to stdout", "stderr: first line", "stderr: no newline at the end"},
		},
		{
			name: "empty answer", dir: func(testing.TB) string { return reuseGuestDir },
			payload: `{"mode":"empty"}`, want: `null`,
		},
		{
			name: "error as text", dir: func(testing.TB) string { return reuseGuestDir },
			payload: `{"mode":"error"}`, wantErrType: runtime.ErrTypeUnknown, want: "bad thing happened (run ",
			wantLogs: []string{"stderr: failing"},
		},
		{
			name: "error as a document", dir: func(testing.TB) string { return reuseGuestDir },
			payload: `{"mode":"errordoc"}`, wantErrType: "UserNotFound", want: "no such user", wantStack: []string{"main.handle"},
		},
		{
			name: "answer too large", dir: func(testing.TB) string { return reuseGuestDir },
			payload: `{"mode":"big"}`, wantErrType: runtime.ErrTypeResponseTooLarge,
			want: "Response payload size exceeded maximum allowed payload size (6291456 bytes).",
		},
		{
			name: "wat reactor without _initialize", dir: func(t testing.TB) string { return watDir(t, "reactor") },
			payload: `{"echo":true}`, want: `{"echo":true}`,
		},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			inst := start(t, d, tt.dir(t), runtime.Spec{Function: "hello", Reuse: true, Log: l.log})
			// Three times, all in the one module instance.
			for n := range 3 {
				id := fmt.Sprintf("req-%d", n)
				got := invoke(inst, id, tt.payload, 10*time.Second)
				if got.ErrorType != tt.wantErrType {
					t.Fatalf("ErrorType = %q (%s), want %q", got.ErrorType, got.Payload, tt.wantErrType)
				}
				if !got.Reusable || ended(inst) {
					t.Fatalf("Reusable = %v, Done closed = %v: want the instance to live on", got.Reusable, ended(inst))
				}
				if tt.wantErrType == "" {
					if string(got.Payload) != tt.want {
						t.Errorf("Payload = %q, want %q", got.Payload, tt.want)
					}
				} else {
					doc := parseError(t, got)
					if !strings.HasPrefix(doc.Message, tt.want) {
						t.Errorf("errorMessage = %q, want %q", doc.Message, tt.want)
					}
					if !slices.Equal(doc.Stack, tt.wantStack) {
						t.Errorf("stackTrace = %q, want %q", doc.Stack, tt.wantStack)
					}
				}
				if got := l.streams(id); !slices.Equal(got, tt.wantLogs) {
					t.Errorf("logs of %s = %q, want %q", id, got, tt.wantLogs)
				}
				if got.MaxMemoryMB <= 0 || got.MaxMemoryMB > 128 {
					t.Errorf("MaxMemoryMB = %d, want 1…128", got.MaxMemoryMB)
				}
			}
		})
	}
}

func TestReuseKeepsState(t *testing.T) {
	d := newDriver(t, sharedCache)
	var l logs
	inst := start(t, d, reuseGuestDir, runtime.Spec{Reuse: true, Log: l.log})
	if got, want := l.texts(""), []string{"guest initialized"}; !slices.Equal(got, want) {
		t.Errorf("init logs = %q, want %q", got, want)
	}
	if inst.InitDuration() <= 0 {
		t.Errorf("InitDuration = %v", inst.InitDuration())
	}
	// A function error leaves the state as it is: its call counts too.
	for n, step := range []struct{ payload, want string }{
		{`{"mode":"counter"}`, "1"},
		{`{"mode":"counter"}`, "2"},
		{`{"mode":"error"}`, `{"errorMessage":"bad thing happened (run 3)","errorType":"Unhandled"}`},
		{`{"mode":"counter"}`, "4"},
	} {
		r := invoke(inst, fmt.Sprint(n), step.payload, 10*time.Second)
		if string(r.Payload) != step.want || !r.Reusable {
			t.Fatalf("invocation %d: %s (Reusable %v), want %s", n, r.Payload, r.Reusable, step.want)
		}
	}

	// Instances are apart, and may run at once.
	var wg sync.WaitGroup
	insts := []runtime.Instance{
		start(t, d, reuseGuestDir, runtime.Spec{Reuse: true, Log: l.log, InstanceID: "a"}),
		start(t, d, reuseGuestDir, runtime.Spec{Reuse: true, Log: l.log, InstanceID: "b"}),
	}
	for k, inst := range insts {
		wg.Go(func() {
			for n := range 5 {
				id := fmt.Sprintf("%d-%d", k, n)
				r := invoke(inst, id, `{"mode":"counter"}`, 10*time.Second)
				if want := fmt.Sprint(2*n + 1); string(r.Payload) != want { // log calls count too
					t.Errorf("instance %d, invocation %d: %s, want %s", k, n, r.Payload, want)
				}
				invoke(inst, id, `{"mode":"log"}`, 10*time.Second)
			}
		})
	}
	wg.Wait()
	for k := range insts {
		for n := range 5 {
			if got := l.texts(fmt.Sprintf("%d-%d", k, n)); len(got) != 3 {
				t.Errorf("logs of %d-%d = %q, want its own 3 lines", k, n, got)
			}
		}
	}
}

// TestReuseFailures checks what ends a module instance: each failure
// leaves the instance done, and a new one starts afresh.
func TestReuseFailures(t *testing.T) {
	tests := []struct {
		name      string
		dir       func(t testing.TB) string
		payload   string
		timeout   time.Duration
		memoryMB  int
		wantType  string
		wantMsg   string // the errorMessage has it
		wantLogs  []string
		wantStack string // a frame of the stackTrace has it
		wantNext  string // what a new instance answers to {"mode":"counter"}
	}{
		{
			name: "go exits", dir: func(testing.TB) string { return reuseGuestDir }, payload: `{"mode":"exit"}`,
			wantType: runtime.ErrTypeExit, wantMsg: "exiting", wantLogs: []string{"exiting"},
		},
		{
			name: "go panics", dir: func(testing.TB) string { return reuseGuestDir }, payload: `{"mode":"panic"}`,
			wantType: runtime.ErrTypeExit, wantMsg: "panic: boom", wantStack: "runtime.gopanic",
		},
		{
			name: "go traps", dir: func(testing.TB) string { return reuseGuestDir }, payload: `{"mode":"trap"}`,
			wantType: ErrTypeTrap, wantMsg: "wasm trap: out of bounds memory access",
		},
		{
			name: "go spins past the deadline", dir: func(testing.TB) string { return reuseGuestDir }, payload: `{"mode":"spin"}`,
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeTimeout, wantMsg: "Task timed out after 0.30 seconds",
		},
		{
			name: "go sleeps past the deadline", dir: func(testing.TB) string { return reuseGuestDir }, payload: `{"mode":"sleep"}`,
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeTimeout, wantMsg: "Task timed out after 0.30 seconds",
		},
		{
			name: "go allocates past the memory", dir: func(testing.TB) string { return reuseGuestDir }, payload: `{"mode":"alloc","mb":200}`,
			memoryMB: 128, wantType: runtime.ErrTypeOutOfMemory, wantMsg: "memory limit of 128 MB reached",
		},
		{
			name: "wat traps", dir: func(t testing.TB) string { return watDir(t, "reactor") }, payload: "trap",
			wantType: ErrTypeTrap, wantMsg: "wasm trap: unreachable", wantNext: `{"mode":"counter"}`,
		},
		{
			name: "wat answers outside its memory", dir: func(t testing.TB) string { return watDir(t, "reactor") }, payload: "oob",
			wantType: ErrTypeTrap, wantMsg: "wisp_handle answered 100 bytes at 0xfff0000, outside the module's 65536 bytes of memory",
			wantNext: `{"mode":"counter"}`,
		},
		{
			name: "wat gives no room for the event", dir: func(t testing.TB) string { return watDir(t, "reactor") },
			payload:  strings.Repeat("x", 60001),
			wantType: ErrTypeTrap, wantMsg: "wisp_alloc(60001) returned 0xfde8: the event does not fit", wantNext: `{"mode":"counter"}`,
		},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			timeout := cmp.Or(tt.timeout, 10*time.Second)
			spec := runtime.Spec{Reuse: true, Log: l.log, MemoryMB: tt.memoryMB, Timeout: timeout}
			inst := start(t, d, tt.dir(t), spec)
			if r := invoke(inst, "warm-up", `{"mode":"counter"}`, 10*time.Second); r.Failed() {
				t.Fatalf("warm-up: %s", r.Payload)
			}
			begin := time.Now()
			r := invoke(inst, "req-1", tt.payload, timeout)
			took := time.Since(begin)
			if r.ErrorType != tt.wantType {
				t.Fatalf("ErrorType = %q (%s), want %q", r.ErrorType, r.Payload, tt.wantType)
			}
			doc := parseError(t, r)
			if !strings.Contains(doc.Message, tt.wantMsg) {
				t.Errorf("errorMessage = %q, want it to have %q", doc.Message, tt.wantMsg)
			}
			if tt.wantStack != "" && !slices.ContainsFunc(doc.Stack, func(f string) bool { return strings.Contains(f, tt.wantStack) }) {
				t.Errorf("stackTrace = %q, want a frame with %q", doc.Stack, tt.wantStack)
			}
			if tt.wantLogs != nil {
				if got := l.texts("req-1"); !slices.Equal(got, tt.wantLogs) {
					t.Errorf("logs = %q, want %q", got, tt.wantLogs)
				}
			}
			if tt.timeout > 0 && took > tt.timeout+time.Second {
				t.Errorf("took %v, over the %v deadline", took, tt.timeout)
			}
			if r.Reusable || !ended(inst) {
				t.Errorf("Reusable = %v, Done closed = %v: want the instance ended", r.Reusable, ended(inst))
			}
			if r := invoke(inst, "req-2", `{}`, time.Second); !r.Undelivered || r.ErrorType == "" {
				t.Errorf("an invocation after: %+v, want an undelivered error", r)
			}
			// A new instance starts afresh.
			spec.InstanceID = "next"
			next := start(t, d, tt.dir(t), spec)
			r = invoke(next, "req-3", `{"mode":"counter"}`, 10*time.Second)
			if want := cmp.Or(tt.wantNext, "1"); r.Failed() || string(r.Payload) != want {
				t.Errorf("a new instance answers %s (%s), want %s", r.Payload, r.ErrorType, want)
			}
		})
	}
}

func TestReuseStartErrors(t *testing.T) {
	tests := []struct {
		name     string
		dir      func(t testing.TB) string
		reuse    bool
		env      map[string]string
		timeout  time.Duration // of Start's ctx
		wantType string
		wantMsg  string
	}{
		{name: "a command with reuse", dir: func(testing.TB) string { return exampleDir }, reuse: true,
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "reuse needs a module exporting wisp_alloc and wisp_handle"},
		{name: "a reactor without the ABI, with reuse", dir: func(t testing.TB) string { return codeDir(t, tinyModule("_initialize", 1, "")) },
			reuse: true, wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "reuse needs a module exporting wisp_alloc and wisp_handle"},
		{name: "a reactor without reuse", dir: func(testing.TB) string { return reuseExampleDir },
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "it is a reactor exporting wisp_handle, which runs with reuse on"},
		{name: "init panics", dir: func(testing.TB) string { return reuseGuestDir }, reuse: true, env: map[string]string{"GUEST_INIT": "panic"},
			wantType: runtime.ErrTypeInit, wantMsg: "panic: init failed"},
		{name: "init exits", dir: func(testing.TB) string { return reuseGuestDir }, reuse: true, env: map[string]string{"GUEST_INIT": "exit"},
			wantType: runtime.ErrTypeInit, wantMsg: "cannot start"},
		{name: "init outlives Start's ctx", dir: func(testing.TB) string { return reuseGuestDir }, reuse: true, env: map[string]string{"GUEST_INIT": "spin"},
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeInit, wantMsg: "init abandoned: context deadline exceeded"},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(tt.timeout, time.Minute))
			defer cancel()
			inst, err := d.Start(ctx, runtime.Spec{Function: "fn", CodeDir: tt.dir(t), Handler: "main.wasm", Reuse: tt.reuse, Env: tt.env})
			if err == nil {
				inst.Stop()
				t.Fatalf("Start worked, want an error")
			}
			ie, ok := errors.AsType[*runtime.InitError](err)
			if !ok || ie.Type != tt.wantType || !strings.Contains(ie.Message, tt.wantMsg) {
				t.Fatalf("Start: %v, want an InitError %s with %q", err, tt.wantType, tt.wantMsg)
			}
		})
	}
	// The driver let go of the modules: a good Start still works.
	inst := start(t, d, reuseGuestDir, runtime.Spec{Reuse: true})
	if r := invoke(inst, "r", `{"mode":"counter"}`, 10*time.Second); string(r.Payload) != "1" {
		t.Errorf("Invoke: %s", r.Payload)
	}
}

func TestReuseStop(t *testing.T) {
	d := newDriver(t, sharedCache)
	t.Run("during an invocation", func(t *testing.T) {
		inst := start(t, d, reuseGuestDir, runtime.Spec{Reuse: true})
		res := make(chan runtime.Result, 1)
		go func() { res <- invoke(inst, "spin", `{"mode":"spin"}`, time.Minute) }()
		time.Sleep(200 * time.Millisecond) // let it spin
		begin := time.Now()
		if err := inst.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("Stop took %v", took)
		}
		if !ended(inst) {
			t.Errorf("Done is not closed after Stop")
		}
		if r := <-res; r.ErrorType != runtime.ErrTypeExit || r.Reusable || !strings.Contains(string(r.Payload), "instance stopped") {
			t.Errorf("the stopped invocation: %s %s (Reusable %v)", r.ErrorType, r.Payload, r.Reusable)
		}
	})
	t.Run("idle", func(t *testing.T) {
		inst := start(t, d, reuseGuestDir, runtime.Spec{Reuse: true})
		invoke(inst, "r", `{"mode":"counter"}`, 10*time.Second)
		if err := inst.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if !ended(inst) {
			t.Errorf("Done is not closed after Stop")
		}
		if r := invoke(inst, "after", `{}`, time.Second); !r.Undelivered {
			t.Errorf("an invocation after Stop: %+v, want it undelivered", r)
		}
	})
}

// TestMeasureReuse reports the figures of reuse mode, beside fresh mode's
// in the same run. It measures, so it runs only when asked:
// WISP_WASM_MEASURE=1 go test -run Measure -v.
func TestMeasureReuse(t *testing.T) {
	if os.Getenv("WISP_WASM_MEASURE") == "" {
		t.Skip("set WISP_WASM_MEASURE=1 to measure")
	}
	d := newDriver(t, sharedCache)
	p50 := make(map[string]time.Duration)
	for _, g := range []struct {
		name  string
		dir   func(t testing.TB) string
		reuse bool
		runs  int
	}{
		{"go example, fresh", func(testing.TB) string { return exampleDir }, false, 200},
		{"go example, reuse", func(testing.TB) string { return reuseExampleDir }, true, 2000},
		{"wat reactor, reuse", func(t testing.TB) string { return watDir(t, "reactor") }, true, 2000},
	} {
		// The first Start compiles; the second is what a pool pays.
		start(t, d, g.dir(t), runtime.Spec{InstanceID: g.name + " 1", Reuse: g.reuse})
		inst := start(t, d, g.dir(t), runtime.Spec{InstanceID: g.name, Reuse: g.reuse})
		var took []time.Duration
		for n := range g.runs + 20 {
			begin := time.Now()
			r := invoke(inst, "r", `{"name":"ada"}`, 10*time.Second)
			if n >= 20 { // after a warm-up
				took = append(took, time.Since(begin))
			}
			if r.Failed() {
				t.Fatalf("%s: %s", g.name, r.Payload)
			}
		}
		slices.Sort(took)
		p50[g.name] = took[len(took)/2]
		t.Logf("%s: Start (compiled) %v; Invoke over %d runs: p50 %v, p90 %v, p99 %v", g.name, inst.InitDuration(), len(took),
			took[len(took)/2], took[len(took)*9/10], took[len(took)*99/100])
	}
	t.Logf("go example: reuse p50 is 1/%.0f of fresh p50",
		float64(p50["go example, fresh"])/float64(p50["go example, reuse"]))
}
