package wasm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// initTimeout bounds a reuse-mode module's _initialize, as Lambda bounds
// a runtime's init.
const initTimeout = 10 * time.Second

// errInitTimeout ends an _initialize that ran past initTimeout.
var errInitTimeout = errors.New("wasm: init timed out")

// errorBit, set in what wisp_handle returns, says the answer is an error.
const errorBit = 1 << 31

// warm is the module instance a reuse-mode instance keeps between
// invocations. Its fields are used by the goroutine calling into the
// module, one call at a time (the instance's invokeMu): output and sleeps
// happen only during a call, so routing them to the invocation under way
// needs no lock.
type warm struct {
	mod    api.Module // nil once closed
	alloc  api.Function
	handle api.Function
	mem    *allocator // for the module instance's whole life
	// stdout and stderr are the logs of the invocation under way, or of
	// the init.
	stdout, stderr *logWriter
	wake           <-chan struct{} // ends the guest's sleeps: the invocation's ctx.Done
}

// warmOutput is a warm module's stdout or stderr.
type warmOutput struct {
	w      *warm
	stderr bool
}

func (o warmOutput) Write(p []byte) (int, error) {
	if o.stderr {
		return o.w.stderr.Write(p)
	}
	return o.w.stdout.Write(p)
}

// listen routes the module's output, tagged with requestID, and its
// sleeps to the call about to begin under ctx.
func (w *warm) listen(ctx context.Context, log func(runtime.Line), requestID string) {
	w.stdout = &logWriter{log: log, done: ctx.Done(), requestID: requestID, stream: "stdout"}
	w.stderr = &logWriter{log: log, done: ctx.Done(), requestID: requestID, stream: "stderr"}
	w.wake = ctx.Done()
}

// flush hands on the last lines of a call written without a newline.
func (w *warm) flush() {
	w.stdout.flush()
	w.stderr.flush()
}

// startWarm instantiates the module for reuse mode, running _initialize if
// it exports one, and keeps it. ctx, bounded by initTimeout, bounds it.
func (i *instance) startWarm(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, initTimeout, errInitTimeout)
	defer cancel()
	w := &warm{mem: &allocator{limit: i.limit, reserve: i.m.lastPeak.Load()}}
	w.listen(ctx, i.spec.Log, "")
	cfg := i.config.
		WithStdout(warmOutput{w: w}).
		WithStderr(warmOutput{w: w, stderr: true}).
		WithNanosleep(func(ns int64) { sleep(ns, w.wake) }).
		WithStartFunctions("_initialize")
	var (
		mod api.Module
		err error
	)
	if serr := i.d.slots.do(ctx, i.spec.Function, func() {
		mod, err = i.d.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, w.mem), i.m.compiled, cfg)
	}); serr != nil {
		if errors.Is(context.Cause(ctx), errInitTimeout) {
			return runtime.NewInitError(runtime.ErrTypeInit, fmt.Sprintf("init timed out after %v waiting to run", initTimeout))
		}
		return runtime.NewInitError(runtime.ErrTypeInit, "init abandoned: "+serr.Error())
	}
	w.flush()
	i.m.lastPeak.Store(w.mem.peak)
	if err != nil {
		return i.initFailure(ctx, err, w)
	}
	if mod.IsClosed() {
		// proc_exit(0), which wazero does not count as a failure.
		return runtime.NewInitError(runtime.ErrTypeInit, "the module exited during _initialize: a reactor must return from it")
	}
	w.mod = mod
	w.alloc = mod.ExportedFunction("wisp_alloc")
	w.handle = mod.ExportedFunction("wisp_handle")
	i.warm = w
	return nil
}

// initFailure says why an _initialize that returned err failed.
func (i *instance) initFailure(ctx context.Context, err error, w *warm) *runtime.InitError {
	exit, isExit := errors.AsType[*sys.ExitError](err)
	switch {
	case isExit && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled):
		if cause := context.Cause(ctx); !errors.Is(cause, errInitTimeout) {
			return runtime.NewInitError(runtime.ErrTypeInit, fmt.Sprintf("init abandoned: %v", cause))
		}
		return runtime.NewInitError(runtime.ErrTypeInit, fmt.Sprintf("init timed out after %v", initTimeout))
	case w.mem.refused:
		return runtime.NewInitError(runtime.ErrTypeOutOfMemory, fmt.Sprintf("memory limit of %d MB reached during init", i.limit>>20))
	case isExit:
		msg := w.stderr.errorLine(exit.ExitCode())
		if msg == "" {
			msg = fmt.Sprintf("Runtime exited with error: exit status %d", exit.ExitCode())
		}
		return runtime.NewInitError(runtime.ErrTypeInit, msg)
	}
	if w.stderr.crash != "" {
		return runtime.NewInitError(runtime.ErrTypeInit, w.stderr.crash) // a Go runtime's abort
	}
	msg, _ := trapMessage(err)
	return runtime.NewInitError(runtime.ErrTypeInit, "wasm trap in _initialize: "+msg)
}

// call runs one invocation in the warm module instance. A failure of the
// guest's code ends the module instance, and with it the instance: after
// a trap or a timeout its state cannot be trusted, and after an exit it is
// gone.
func (i *instance) call(ctx context.Context, inv runtime.Invocation) runtime.Result {
	w := i.warm
	w.listen(ctx, i.spec.Log, inv.RequestID)
	w.mem.refused = false // an earlier call's refusal, handled, is not this one's
	ptr, n, isErr, err := w.exchange(ctx, inv.Payload)
	w.flush()
	i.m.lastPeak.Store(w.mem.peak)
	res := i.answer(ctx, inv, ptr, n, isErr, err)
	res.MaxMemoryMB = mb(w.mem.peak)
	if !res.Reusable {
		i.closeWarmLocked()
	}
	return res
}

// abiError is a guest that broke the reuse ABI.
type abiError string

func (e abiError) Error() string { return string(e) }

// exchange hands the event to the guest (wisp_alloc, then the event
// written where it said) and calls wisp_handle on it. It returns where
// the answer is, and whether the guest flagged it as an error.
func (w *warm) exchange(ctx context.Context, event []byte) (ptr, n uint32, isErr bool, err error) {
	res, err := w.alloc.Call(ctx, uint64(len(event)))
	if err != nil {
		return 0, 0, false, err
	}
	ptr = uint32(res[0])
	if !w.mod.Memory().Write(ptr, event) {
		return 0, 0, false, abiError(fmt.Sprintf("wisp_alloc(%d) returned %#x: the event does not fit in the module's %d bytes of memory there",
			len(event), ptr, w.mod.Memory().Size()))
	}
	if res, err = w.handle.Call(ctx, uint64(ptr), uint64(len(event))); err != nil {
		return 0, 0, false, err
	}
	return uint32(res[0] >> 32), uint32(res[0]) &^ errorBit, res[0]&errorBit != 0, nil
}

// answer says how a call that returned the answer at ptr, n bytes long,
// or err, ended.
func (i *instance) answer(ctx context.Context, inv runtime.Invocation, ptr, n uint32, isErr bool, err error) runtime.Result {
	w := i.warm
	broken := func(msg string) runtime.Result {
		return runtime.Result{ErrorType: ErrTypeTrap, Payload: runtime.ErrorPayload(ErrTypeTrap,
			fmt.Sprintf("RequestId: %s Error: wasm trap: %s", inv.RequestID, msg))}
	}
	if abi, ok := errors.AsType[abiError](err); ok {
		return broken(abi.Error())
	}
	if err != nil {
		res := i.failure(ctx, inv, err, w.stderr, w.mem)
		res.Reusable = false
		return res
	}
	if n > runtime.MaxResponseBytes {
		return responseTooLarge()
	}
	answer, ok := w.mod.Memory().Read(ptr, n)
	if !ok {
		return broken(fmt.Sprintf("wisp_handle answered %d bytes at %#x, outside the module's %d bytes of memory",
			n, ptr, w.mod.Memory().Size()))
	}
	if isErr {
		typ, payload := guestError(answer)
		return runtime.Result{ErrorType: typ, Payload: payload, Reusable: true}
	}
	// A copy: the guest may reuse the bytes at its next call.
	return answered(bytes.Clone(answer))
}

// guestError is the invocation error a guest answered: Lambda's error
// document, {"errorMessage": …, "errorType": …, "stackTrace": …}, or any
// other bytes, taken as the errorMessage. With no type it is Unhandled.
func guestError(answer []byte) (string, []byte) {
	var doc struct {
		Message *string         `json:"errorMessage"`
		Type    string          `json:"errorType"`
		Stack   json.RawMessage `json:"stackTrace,omitempty"`
	}
	if json.Unmarshal(answer, &doc) != nil || doc.Message == nil {
		typ := runtime.ErrTypeUnknown
		return typ, runtime.ErrorPayload(typ, strings.TrimSpace(string(answer)))
	}
	doc.Type = cmp.Or(doc.Type, runtime.ErrTypeUnknown)
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // what was unmarshalled marshals
	}
	return doc.Type, b
}

// closeWarmLocked closes the module instance of reuse mode, if it is
// still open, which ends the instance. invokeMu must be held.
func (i *instance) closeWarmLocked() {
	if w := i.warm; w.mod != nil {
		if err := w.mod.Close(context.Background()); err != nil {
			i.d.log.Debug("wasm: closing a module instance", "instance", i.spec.InstanceID, "err", err)
		}
		w.mod = nil
	}
	i.end()
}
