package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// errStopped ends an invocation whose instance is being stopped.
var errStopped = errors.New("wasm: instance stopped")

// instance is a compiled module ready to run: every Invoke instantiates
// it afresh, or in reuse mode calls the module instance Start made.
type instance struct {
	d       *Driver
	m       *module
	spec    runtime.Spec
	config  wazero.ModuleConfig // shared by every instantiation
	limit   uint64              // bytes of linear memory
	initDur time.Duration
	done    chan struct{} // closed by end

	// invokeMu makes Invoke calls one at a time, as the Instance contract
	// asks of callers anyway; Stop takes it to wait for the one running.
	invokeMu sync.Mutex
	// warm is the module instance of reuse mode, nil in fresh mode;
	// guarded by invokeMu.
	warm     *warm
	stopOnce sync.Once
	endOnce  sync.Once

	mu      sync.Mutex
	stopped bool                    // guarded by mu
	cancel  context.CancelCauseFunc // guarded by mu: ends the invocation running, if any
}

// ID returns the instance id the spec gave, for logs.
func (i *instance) ID() string { return i.spec.InstanceID }

// InitDuration is how long Start took: the compilation, or finding the
// module compiled, and in reuse mode the instantiation and _initialize.
func (i *instance) InitDuration() time.Duration { return i.initDur }

// Done is closed once the instance is stopped or, in reuse mode, once its
// module instance has ended (a trap, an exit, a timeout).
func (i *instance) Done() <-chan struct{} { return i.done }

// end closes done.
func (i *instance) end() { i.endOnce.Do(func() { close(i.done) }) }

// Stop ends the invocation running, if any, waits for it, closes the
// module instance of reuse mode, and lets the driver free the module once
// no instance uses it. It may be called more than once, and concurrently.
func (i *instance) Stop() error {
	i.stopOnce.Do(func() {
		i.mu.Lock()
		i.stopped = true
		if i.cancel != nil {
			i.cancel(errStopped)
		}
		i.mu.Unlock()
		// Waits for the invocation running, if any, to end.
		i.invokeMu.Lock()
		if i.warm != nil {
			i.closeWarmLocked()
		}
		i.invokeMu.Unlock()
		i.end()
		i.d.release(i.m)
	})
	return nil
}

// Invoke runs one invocation in a fresh instantiation of the module, or
// in reuse mode in the module instance kept, until the module answers,
// exits or traps, or the deadline or ctx ends it.
func (i *instance) Invoke(ctx context.Context, inv runtime.Invocation) runtime.Result {
	i.invokeMu.Lock()
	defer i.invokeMu.Unlock()
	i.mu.Lock()
	if i.stopped || (i.warm != nil && i.warm.mod == nil) {
		i.mu.Unlock()
		why := "was stopped"
		if !i.stopped {
			why = "has ended"
		}
		msg := fmt.Sprintf("RequestId: %s Error: the instance %s", inv.RequestID, why)
		return runtime.Result{ErrorType: runtime.ErrTypeExit, Payload: runtime.ErrorPayload(runtime.ErrTypeExit, msg), Undelivered: true}
	}
	if inv.Deadline.IsZero() {
		inv.Deadline = time.Now().Add(i.spec.TimeoutOrDefault())
	}
	// Over before it began: the module never sees it.
	if time.Until(inv.Deadline) <= 0 {
		i.mu.Unlock()
		return runtime.Result{ErrorType: runtime.ErrTypeTimeout, Reusable: true,
			Payload: runtime.ErrorPayload(runtime.ErrTypeTimeout, runtime.TimeoutMessage(inv.RequestID, i.spec.TimeoutOrDefault()))}
	}
	if ctx.Err() != nil {
		i.mu.Unlock()
		msg := fmt.Sprintf("RequestId: %s Error: Invocation abandoned before it started: %v", inv.RequestID, context.Cause(ctx))
		return runtime.Result{ErrorType: runtime.ErrTypeExit, Payload: runtime.ErrorPayload(runtime.ErrTypeExit, msg), Reusable: true}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	runCtx, cancelDeadline := context.WithDeadline(runCtx, inv.Deadline)
	i.cancel = cancel
	i.mu.Unlock()

	var res runtime.Result
	err := i.d.slots.do(runCtx, i.spec.Function, func() {
		if i.warm != nil {
			res = i.call(runCtx, inv)
		} else {
			res = i.run(runCtx, inv)
		}
	})
	if err != nil {
		res = i.unstarted(runCtx, inv)
	}

	cancelDeadline()
	cancel(nil)
	i.mu.Lock()
	i.cancel = nil
	i.mu.Unlock()
	return res
}

// unstarted is the result of an invocation whose ctx ended while it
// waited for a slot: the module never saw it.
func (i *instance) unstarted(ctx context.Context, inv runtime.Invocation) runtime.Result {
	id := inv.RequestID
	fail := func(typ, msg string, reusable bool) runtime.Result {
		return runtime.Result{ErrorType: typ, Payload: runtime.ErrorPayload(typ, msg), Reusable: reusable}
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStopped):
		return fail(runtime.ErrTypeExit, fmt.Sprintf("RequestId: %s Error: Invocation abandoned, instance stopped", id), false)
	case errors.Is(cause, context.DeadlineExceeded) && !time.Now().Before(inv.Deadline):
		return fail(runtime.ErrTypeTimeout, runtime.TimeoutMessage(id, i.spec.TimeoutOrDefault()), true)
	default:
		return fail(runtime.ErrTypeExit, fmt.Sprintf("RequestId: %s Error: Invocation abandoned before it started: %v", id, cause), true)
	}
}

// run instantiates the module with the invocation's stdin, stdout and
// stderr; instantiation runs _start.
func (i *instance) run(ctx context.Context, inv runtime.Invocation) runtime.Result {
	out := &response{}
	logs := &logWriter{log: i.spec.Log, done: ctx.Done(), requestID: inv.RequestID, stream: "stderr"}
	alloc := &allocator{limit: i.limit, reserve: i.m.lastPeak.Load()}
	cfg := i.config.
		WithStdin(bytes.NewReader(inv.Payload)).
		WithStdout(out).
		WithStderr(logs).
		WithNanosleep(func(ns int64) { sleep(ns, ctx.Done()) })
	if inv.TraceID != "" {
		cfg = cfg.WithEnv("_X_AMZN_TRACE_ID", inv.TraceID)
	}
	mod, err := i.d.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), i.m.compiled, cfg)
	if mod != nil {
		// A _start that returned rather than exited leaves it open.
		if cerr := mod.Close(context.WithoutCancel(ctx)); cerr != nil {
			i.d.log.Debug("wasm: closing a module instance", "instance", i.spec.InstanceID, "err", cerr)
		}
	}
	logs.flush()
	i.m.lastPeak.Store(alloc.peak)
	var res runtime.Result
	switch {
	case err != nil:
		res = i.failure(ctx, inv, err, logs, alloc)
	case out.tooLarge():
		res = responseTooLarge()
	default:
		res = answered(out.buf)
	}
	res.MaxMemoryMB = mb(alloc.peak)
	return res
}

// answered is the result of an invocation that answered payload.
func answered(payload []byte) runtime.Result {
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("null") // as a Lambda handler that returns nothing
	}
	return runtime.Result{Payload: payload, Reusable: true}
}

func responseTooLarge() runtime.Result {
	typ := runtime.ErrTypeResponseTooLarge
	return runtime.Result{ErrorType: typ, Reusable: true, Payload: runtime.ErrorPayload(typ, fmt.Sprintf(
		"Response payload size exceeded maximum allowed payload size (%d bytes).", runtime.MaxResponseBytes))}
}

// failure says how an invocation whose guest code returned err (an
// instantiation, or in reuse mode a call) ended. The result is reusable
// unless the instance was stopped: the caller of reuse mode knows better.
func (i *instance) failure(ctx context.Context, inv runtime.Invocation, err error, logs *logWriter, alloc *allocator) runtime.Result {
	id := inv.RequestID
	fail := func(typ, msg string, stack []string) runtime.Result {
		return runtime.Result{ErrorType: typ, Payload: errorPayload(typ, msg, stack), Reusable: true}
	}
	exit, isExit := errors.AsType[*sys.ExitError](err)
	if isExit && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled) {
		// We closed it: which of our reasons was it?
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, errStopped):
			res := fail(runtime.ErrTypeExit, fmt.Sprintf("RequestId: %s Error: Invocation abandoned, instance stopped", id), nil)
			res.Reusable = false
			return res
		case errors.Is(cause, context.DeadlineExceeded) && !time.Now().Before(inv.Deadline):
			return fail(runtime.ErrTypeTimeout, runtime.TimeoutMessage(id, i.spec.TimeoutOrDefault()), nil)
		default:
			return fail(runtime.ErrTypeExit, fmt.Sprintf("RequestId: %s Error: Invocation abandoned, runtime stopped: %v", id, cause), nil)
		}
	}
	if alloc.refused {
		// Whatever the guest made of the failed grow, that is why it
		// failed.
		return fail(runtime.ErrTypeOutOfMemory, fmt.Sprintf("RequestId: %s Error: Runtime exited with error: memory limit of %d MB reached",
			id, i.limit>>20), nil)
	}
	if isExit {
		msg := logs.errorLine(exit.ExitCode())
		if msg == "" {
			msg = fmt.Sprintf("RequestId: %s Error: Runtime exited with error: exit status %d", id, exit.ExitCode())
		}
		return fail(runtime.ErrTypeExit, msg, nil)
	}
	msg, stack := trapMessage(err)
	if logs.crash != "" {
		// A Go reactor that panicked: its runtime aborts with a trap,
		// where a command exits with status 2. Both are a crash.
		return fail(runtime.ErrTypeExit, logs.crash, stack)
	}
	if !strings.Contains(err.Error(), "wasm error: ") {
		// Not the guest's doing: a host function failed, or the runtime
		// was closed under it.
		i.d.log.Warn("wasm: invocation failed in the host", "instance", i.spec.InstanceID, "request_id", id, "err", err)
	}
	return fail(ErrTypeTrap, fmt.Sprintf("RequestId: %s Error: wasm trap: %s", id, msg), stack)
}

// trapMessage splits a trap error into the trap (e.g. "unreachable") and
// the wasm stack trace wazero appended to it.
func trapMessage(err error) (string, []string) {
	inner := err
	for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
		inner = u
	}
	msg, _, _ := strings.Cut(inner.Error(), "\n")
	var stack []string
	if _, trace, ok := strings.Cut(err.Error(), "wasm stack trace:\n"); ok {
		trace, _, _ = strings.Cut(trace, "\n\n") // a host panic's Go stack follows
		for line := range strings.SplitSeq(trace, "\n") {
			if line = strings.TrimPrefix(line, "\t"); line != "" {
				stack = append(stack, line)
			}
		}
	}
	return msg, stack
}

// errorPayload is Lambda's error document, with a stack trace if there is
// one.
func errorPayload(typ, msg string, stack []string) []byte {
	if len(stack) == 0 {
		return runtime.ErrorPayload(typ, msg)
	}
	b, err := json.Marshal(struct {
		Message string   `json:"errorMessage"`
		Type    string   `json:"errorType"`
		Stack   []string `json:"stackTrace"`
	}{msg, typ, stack})
	if err != nil {
		panic(err) // strings always marshal
	}
	return b
}

// sleep is the guest's sleep (poll_oneoff with a timeout), cut short
// when wake is closed (the invocation's ctx is done), so a sleeping guest
// is stopped at its deadline too.
func sleep(ns int64, wake <-chan struct{}) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	}
}
