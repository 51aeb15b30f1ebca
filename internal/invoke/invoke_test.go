package invoke

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
)

// A call runs what its qualifier resolves to: that version's answer, its
// instances (one pool per version, whatever qualifier named it), and the
// function ARN with the qualifier as the caller gave it.
func TestInvokeRunsWhatTheQualifierResolvesTo(t *testing.T) {
	reg := &fakeRegistry{byQualifier: map[string]registry.Target{
		"":              target(registry.Latest, 3, 1),
		registry.Latest: target(registry.Latest, 3, 1),
		"1":             target("1", 3, 2),
		"2":             target("2", 3, 3),
		"live":          target("1", 3, 2), // an alias of version 1
	}}
	var arns []string
	drv := &fakeDriver{newInvoke: func(spec runtime.Spec) func(runtime.Invocation) runtime.Result {
		return func(inv runtime.Invocation) runtime.Result {
			arns = append(arns, inv.FunctionARN) // one call at a time
			return runtime.Result{Payload: []byte(`"` + spec.Version + `"`), Reusable: true}
		}
	}}
	iv := newInvoker(t, Config{Registry: reg, Driver: drv})
	const arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
	for _, step := range []struct {
		qualifier   string
		wantVersion string
		wantCold    bool
		wantARN     string
	}{
		{"", registry.Latest, true, arn},
		{registry.Latest, registry.Latest, false, arn + ":$LATEST"},
		{"2", "2", true, arn + ":2"},
		{"live", "1", true, arn + ":live"},
		{"1", "1", false, arn + ":1"}, // the instance live started
	} {
		res, err := iv.Invoke(context.Background(), Request{Function: "f", Qualifier: step.qualifier})
		if err != nil {
			t.Fatalf("qualifier %q: %v", step.qualifier, err)
		}
		if res.Version != step.wantVersion || string(res.Payload) != `"`+step.wantVersion+`"` {
			t.Errorf("qualifier %q: version %q answered %s, want version %q", step.qualifier, res.Version, res.Payload, step.wantVersion)
		}
		if res.Cold != step.wantCold {
			t.Errorf("qualifier %q: cold %v, want %v", step.qualifier, res.Cold, step.wantCold)
		}
		if got := arns[len(arns)-1]; got != step.wantARN {
			t.Errorf("qualifier %q: the function was handed ARN %s, want %s", step.qualifier, got, step.wantARN)
		}
	}
	if got, want := drv.started(), []string{registry.Latest, "2", "1"}; !slices.Equal(got, want) {
		t.Errorf("instances started for versions %q, want %q", got, want)
	}

	before := len(drv.started())
	_, err := iv.Invoke(context.Background(), Request{Function: "f", Qualifier: "gone"})
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("an unknown qualifier: %v, want registry.ErrNotFound", err)
	}
	if got := len(drv.started()); got != before {
		t.Errorf("an unknown qualifier started %d instances", got-before)
	}
}

// Alias weights draw with Config.Pick, on every resolution: Invoke's and
// Resolve's alike, so that a test (or a caller) can fix the draw.
func TestInvokeDrawsWithConfigPick(t *testing.T) {
	draws := []float64{0.25, 0.75, 0.5}
	next := 0
	pick := func() float64 { next++; return draws[next-1] }
	reg := &fakeRegistry{t: target("1", 3, 1)}
	iv := newInvoker(t, Config{Registry: reg, Driver: answer(runtime.Result{Reusable: true}), Pick: pick})
	for range 2 {
		if _, err := iv.Invoke(context.Background(), Request{Function: "f", Qualifier: "live"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := iv.Resolve("f", "live"); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if !slices.Equal(reg.draws, draws) {
		t.Errorf("the registry drew %v, want Config.Pick's %v", reg.draws, draws)
	}
}

// Each way a call can fail reaches the caller as one thing: an error of
// a type the gateway maps to a status, or an answer with the function's
// error, as Lambda reports a failure in the function. Metrics and the
// meter hear of it as such.
func TestInvokeErrorMapping(t *testing.T) {
	errCode := errors.New("code store is down")
	capErr := &meter.CapError{Function: "f", Scope: "function", Limit: "invocations", Max: 1, Period: registry.PeriodDay}
	initErr := &runtime.InitError{Type: "Runtime.ImportModuleError", Message: "no module index",
		Payload: []byte(`{"errorType":"Runtime.ImportModuleError"}`)}
	zero := 0
	throttled := target("1", 3, 1)
	throttled.Concurrency = &zero
	isThrottle := func(err error) bool {
		var te *pool.ThrottleError
		return errors.As(err, &te) && te.Reason == pool.ReasonReserved
	}
	isCap := func(err error) bool {
		var ce *meter.CapError
		return errors.As(err, &ce) && ce == capErr
	}
	errIs := func(want error) func(error) bool { return func(err error) bool { return errors.Is(err, want) } }
	for _, tc := range []struct {
		name    string
		payload string
		missing bool            // the function does not exist
		target  registry.Target // default: version 1, 3 s timeout
		result  runtime.Result  // what the instance answers
		drv     *fakeDriver     // default: one that answers result
		code    fakeCode
		admit   error // what the meter says
		closed  bool  // the invoker is closed

		wantErr func(error) bool // nil: an answer, no error
		// For an answer:
		wantFunctionError, wantErrorType, wantPayload string
		wantCold                                      bool
		wantLog                                       string // a platform line starting so
		wantOutcome                                   string // what Metrics.Invoked heard
		// Either way:
		wantThrottle string // what Metrics.Throttled heard
		wantStarts   int
		wantRecord   bool // a usage record is stored
		wantReleased int  // admitted calls given back unrun
	}{
		{name: "success", result: runtime.Result{Payload: []byte(`"ok"`), Reusable: true},
			wantPayload: `"ok"`, wantCold: true, wantOutcome: "1 success", wantStarts: 1, wantRecord: true},
		{name: "function error", result: runtime.Result{ErrorType: "TypeError", Payload: []byte(`{"errorMessage":"boom"}`)},
			wantFunctionError: "Unhandled", wantErrorType: "TypeError", wantPayload: `{"errorMessage":"boom"}`, wantCold: true,
			wantOutcome: "1 error", wantStarts: 1, wantRecord: true},
		{name: "timeout", result: runtime.Result{ErrorType: runtime.ErrTypeTimeout},
			wantFunctionError: "Unhandled", wantErrorType: runtime.ErrTypeTimeout, wantCold: true,
			wantLog: "Task timed out after 3.00 seconds", wantOutcome: "1 timeout", wantStarts: 1, wantRecord: true},
		{name: "init error", drv: &fakeDriver{startErr: initErr},
			wantFunctionError: "Unhandled", wantErrorType: initErr.Type, wantPayload: string(initErr.Payload), wantCold: true,
			wantLog: "INIT_REPORT", wantOutcome: "1 error", wantStarts: 1, wantRecord: true},
		{name: "payload not JSON", payload: "{", wantErr: errIs(ErrInvalidContent)},
		{name: "payload too large", payload: `"` + strings.Repeat("a", runtime.MaxRequestBytes) + `"`, wantErr: errIs(ErrTooLarge)},
		{name: "no such function", missing: true, wantErr: errIs(registry.ErrNotFound), wantReleased: 1},
		{name: "reserved concurrency 0", target: throttled, wantErr: isThrottle,
			wantThrottle: pool.ReasonReserved, wantReleased: 1},
		{name: "quota used up", admit: capErr, wantErr: isCap, wantThrottle: meter.ReasonSpendCap},
		{name: "code unavailable", code: fakeCode{err: errCode}, wantErr: errIs(errCode), wantStarts: 0, wantReleased: 1},
		{name: "node shutting down", closed: true, wantErr: errIs(ErrClosed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &fakeRegistry{t: target("1", 3, 1)}
			if tc.target.Name != "" {
				reg.t = tc.target
			}
			if tc.missing {
				reg.byQualifier = map[string]registry.Target{}
			}
			drv := tc.drv
			if drv == nil {
				drv = answer(tc.result)
			}
			if tc.code.dir == "" && tc.code.err == nil {
				tc.code.dir = t.TempDir()
			}
			logs, metrics, usage := &fakeLogs{}, &fakeMetrics{}, &fakeUsage{admitErr: tc.admit}
			iv := newInvoker(t, Config{Registry: reg, Driver: drv, Code: tc.code, Logs: logs, Metrics: metrics, Usage: usage})
			if tc.closed {
				if err := iv.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			res, err := iv.Invoke(context.Background(), Request{Function: "f", Payload: []byte(tc.payload), RequestID: "req-1"})
			switch {
			case tc.wantErr != nil && (err == nil || !tc.wantErr(err)):
				t.Fatalf("Invoke = %+v, %v; want an error of the kind %s", res, err, tc.name)
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Invoke: %v, want an answer", err)
			case tc.wantErr == nil:
				if res.FunctionError != tc.wantFunctionError || res.ErrorType != tc.wantErrorType || string(res.Payload) != tc.wantPayload {
					t.Errorf("answer %q/%q %s, want %q/%q %s", res.FunctionError, res.ErrorType, res.Payload,
						tc.wantFunctionError, tc.wantErrorType, tc.wantPayload)
				}
				if res.Cold != tc.wantCold || res.Version != "1" {
					t.Errorf("answer from version %q, cold %v; want version 1, cold %v", res.Version, res.Cold, tc.wantCold)
				}
				if tc.wantLog != "" && !hasLine(logs.platform("req-1", ""), tc.wantLog) {
					t.Errorf("platform lines %q, want one with %q", logs.platform("req-1", ""), tc.wantLog)
				}
				for _, prefix := range []string{"START", "END", "REPORT"} {
					if got := logs.platform("req-1", prefix); len(got) != 1 {
						t.Errorf("%s lines: %q, want one", prefix, got)
					}
				}
			}

			metrics.mu.Lock()
			if tc.wantOutcome == "" && len(metrics.outcomes) > 0 || tc.wantOutcome != "" && !slices.Equal(metrics.outcomes, []string{tc.wantOutcome}) {
				t.Errorf("metrics heard outcomes %q, want %q", metrics.outcomes, tc.wantOutcome)
			}
			if tc.wantThrottle == "" && len(metrics.throttles) > 0 || tc.wantThrottle != "" && !slices.Equal(metrics.throttles, []string{tc.wantThrottle}) {
				t.Errorf("metrics heard throttles %q, want %q", metrics.throttles, tc.wantThrottle)
			}
			metrics.mu.Unlock()
			if got := len(drv.started()); got != tc.wantStarts {
				t.Errorf("%d instances started, want %d", got, tc.wantStarts)
			}
			usage.mu.Lock()
			defer usage.mu.Unlock()
			if got := len(usage.records) == 1; got != tc.wantRecord || len(usage.records) > 1 {
				t.Errorf("usage records %+v, want a record: %v", usage.records, tc.wantRecord)
			}
			if tc.wantRecord {
				rec := usage.records[0]
				wantOutcome := strings.TrimPrefix(tc.wantOutcome, "1 ")
				if rec.Outcome != wantOutcome || rec.Trigger != "sync" || rec.Version != "1" || rec.RequestID != "req-1" {
					t.Errorf("usage record %+v, want outcome %s of version 1, trigger sync, request req-1", rec, wantOutcome)
				}
			}
			if usage.released != tc.wantReleased {
				t.Errorf("%d calls released unrun, want %d", usage.released, tc.wantReleased)
			}
		})
	}
}

func hasLine(lines []string, part string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, part) })
}
