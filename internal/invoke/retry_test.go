package invoke

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// A call whose instance died before it got the call goes to another
// instance; when the function changed meanwhile, it runs under what runs
// now: its timeout, and the version the answer names.
func TestRetryRunsWhatRunsNow(t *testing.T) {
	reg := &fakeRegistry{t: target("1", 3, 1)}
	var deadlines []time.Duration
	var mu sync.Mutex
	iv := newInvoker(t, Config{Registry: reg,
		Driver: &fakeDriver{newInvoke: func(spec runtime.Spec) func(runtime.Invocation) runtime.Result {
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

// Only a call that never reached its instance is tried again, on a new
// instance, with the same request id, at most three times in all; a
// failure the function saw is the caller's answer at once.
func TestUndeliveredCallsAreRetried(t *testing.T) {
	undelivered := runtime.Result{Undelivered: true, ErrorType: runtime.ErrTypeExit, Payload: []byte(`{"errorType":"Runtime.ExitError"}`)}
	for _, tc := range []struct {
		name          string
		script        []runtime.Result // what the attempts get, in order
		wantAttempts  int
		wantPayload   string
		wantErrorType string
	}{
		{"a failure the function saw", []runtime.Result{{ErrorType: runtime.ErrTypeExit, Payload: []byte(`"crashed"`)}}, 1, `"crashed"`, runtime.ErrTypeExit},
		{"one dead instance", []runtime.Result{undelivered, {Payload: []byte(`"ok"`), Reusable: true}}, 2, `"ok"`, ""},
		{"two dead instances", []runtime.Result{undelivered, undelivered, {Payload: []byte(`"ok"`), Reusable: true}}, 3, `"ok"`, ""},
		{"every instance dead", []runtime.Result{undelivered, undelivered, undelivered, {Payload: []byte(`"too late"`)}}, 3, string(undelivered.Payload), runtime.ErrTypeExit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				ids []string
			)
			drv := &fakeDriver{newInvoke: func(runtime.Spec) func(runtime.Invocation) runtime.Result {
				return func(inv runtime.Invocation) runtime.Result {
					mu.Lock()
					defer mu.Unlock()
					ids = append(ids, inv.RequestID)
					return tc.script[len(ids)-1]
				}
			}}
			logs := &fakeLogs{}
			iv := newInvoker(t, Config{Registry: &fakeRegistry{t: target("1", 3, 1)}, Driver: drv, Logs: logs})
			res, err := iv.Invoke(context.Background(), Request{Function: "f", RequestID: "req-1"})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if got := len(ids); got != tc.wantAttempts {
				t.Fatalf("%d attempts, want %d", got, tc.wantAttempts)
			}
			if got := strings.Join(ids, ","); got != strings.Repeat("req-1,", tc.wantAttempts-1)+"req-1" {
				t.Errorf("attempts carried request ids %s, want req-1 on each", got)
			}
			if got := len(drv.started()); got != tc.wantAttempts {
				t.Errorf("%d instances started, want one per attempt (%d): a dead one must not be used again", got, tc.wantAttempts)
			}
			if string(res.Payload) != tc.wantPayload || res.ErrorType != tc.wantErrorType {
				t.Errorf("answer %s (error type %q), want %s (%q)", res.Payload, res.ErrorType, tc.wantPayload, tc.wantErrorType)
			}
			if got := logs.platform("req-1", "START"); len(got) != 1 {
				t.Errorf("START lines %q, want one however many attempts", got)
			}
		})
	}
}
