package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

const (
	// exitOutputWait bounds how long the message of an init that exited
	// waits for the last of its output.
	exitOutputWait = 100 * time.Millisecond
	// stopOutputWait bounds how long Stop waits for the output pipes to
	// end once the process group is dead: only a process that left the
	// group can hold them open longer.
	stopOutputWait = 200 * time.Millisecond
)

// instance is one running runtime process and its Runtime API server.
//
// An invocation goes: Invoke hands it to the /next handler over invokes,
// the runtime posts its answer, the /response or /error handler puts the
// result in results, Invoke takes it. Nothing polls.
type instance struct {
	spec  runtime.Spec
	log   *slog.Logger
	proc  proc
	start time.Time
	// cleanup runs at the end of Stop: what the instance held beside its
	// process (its API token, its sandbox's API server).
	cleanup []func()
	srv     *http.Server
	// served is closed when srv.Serve has returned.
	served  chan struct{}
	streams [2]*stream // stdout, stderr

	invokes  chan runtime.Invocation // unbuffered: Invoke to a waiting /next
	results  chan runtime.Result     // buffered 1: the runtime's answer to Invoke
	initErrs chan *runtime.InitError // buffered 1: a posted init error
	flushed  chan struct{}           // buffered 2: a stream reached what a flush waits for

	ready     chan struct{} // closed at the runtime's first /next
	readyOnce sync.Once
	isReady   atomic.Bool
	initDur   time.Duration // written before ready is closed

	exited  chan struct{} // closed once the process has exited and been reaped
	exitErr error         // written before exited is closed

	stopping chan struct{} // closed when Stop begins
	stopOnce sync.Once
	// broken is set once an invocation was abandoned (its process killed)
	// or Stop has begun: the instance takes no more invocations.
	broken atomic.Bool

	// invokeMu makes Invoke calls one at a time, as the Instance contract
	// asks of callers anyway; it guards timer and proc's memory reads.
	invokeMu sync.Mutex
	timer    *time.Timer // the deadline of the invocation in progress

	mu      sync.Mutex
	running string // guarded by mu: the request id handed to the runtime and not yet answered
	tagID   string // guarded by mu: the request id output is tagged with

	// hmu and hclosed let Stop wait for every Runtime API handler.
	hmu      sync.RWMutex
	hclosed  bool // guarded by hmu
	handlers sync.WaitGroup
}

func newInstance(spec runtime.Spec, log *slog.Logger) *instance {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &instance{
		spec:     spec,
		log:      log,
		served:   make(chan struct{}),
		invokes:  make(chan runtime.Invocation),
		results:  make(chan runtime.Result, 1),
		initErrs: make(chan *runtime.InitError, 1),
		flushed:  make(chan struct{}, 2),
		ready:    make(chan struct{}),
		exited:   make(chan struct{}),
		stopping: make(chan struct{}),
		timer:    t,
	}
}

// ID returns the instance id the spec gave, for logs.
func (i *instance) ID() string { return i.spec.InstanceID }

// InitDuration is how long the process took from its start to its first
// request for an invocation.
func (i *instance) InitDuration() time.Duration { return i.initDur }

// Done is closed once the process has exited.
func (i *instance) Done() <-chan struct{} { return i.exited }

func (i *instance) setReady() {
	i.initDur = time.Since(i.start)
	i.isReady.Store(true)
	close(i.ready)
}

// waitReady waits for the runtime's first /next. If init fails, it stops
// the instance and returns an *runtime.InitError.
func (i *instance) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var ierr *runtime.InitError
	select {
	case <-i.ready:
		// What init wrote is handed on untagged before the first
		// invocation can tag it.
		i.flushOutput()
		return nil
	case ierr = <-i.initErrs:
	case <-i.exited:
		// The runtime may have got as far as /next, or reported its error,
		// just before it went.
		select {
		case <-i.ready:
			i.flushOutput()
			return nil
		case ierr = <-i.initErrs:
		default:
			ierr = i.exitInitError()
		}
	case <-t.C:
		ierr = runtime.NewInitError(runtime.ErrTypeInit, fmt.Sprintf("init timed out after %v", timeout))
	case <-ctx.Done():
		ierr = runtime.NewInitError(runtime.ErrTypeInit, fmt.Sprintf("init timed out after %v: %v",
			time.Since(i.start).Round(time.Millisecond), ctx.Err()))
	}
	if err := i.Stop(); err != nil {
		i.log.Warn("process: stopping an instance whose init failed", "instance", i.spec.InstanceID, "err", err)
	}
	return ierr
}

// exitInitError describes a runtime that exited during init, with the last
// line it wrote to stderr.
func (i *instance) exitInitError() *runtime.InitError {
	t := time.NewTimer(exitOutputWait)
	select {
	case <-i.streams[1].finished:
	case <-t.C:
	}
	t.Stop()
	msg := i.exitReason()
	if line := i.streams[1].lastLine(); line != "" {
		msg += "; last stderr line: " + line
	}
	return runtime.NewInitError(runtime.ErrTypeInit, msg)
}

// exitReason says how the process ended, as Lambda does; only after exited
// is closed.
func (i *instance) exitReason() string {
	if i.exitErr == nil {
		return "Runtime exited without providing a reason"
	}
	return "Runtime exited with error: " + i.exitErr.Error()
}

// Invoke runs one invocation. It hands the invocation to the runtime's
// waiting /next and waits for its answer, the deadline, the process's exit
// or ctx, whichever comes first.
func (i *instance) Invoke(ctx context.Context, inv runtime.Invocation) runtime.Result {
	i.invokeMu.Lock()
	defer i.invokeMu.Unlock()
	if i.broken.Load() {
		// Killed already: it is only a matter of the exit being seen.
		<-i.exited
		return undelivered(i.exitResult(inv.RequestID))
	}
	select {
	case <-i.exited:
		return undelivered(i.exitResult(inv.RequestID))
	default:
	}
	if inv.Deadline.IsZero() {
		inv.Deadline = time.Now().Add(i.spec.TimeoutOrDefault())
	}
	// Over before it began: the runtime never sees it.
	left := time.Until(inv.Deadline)
	if left <= 0 {
		return runtime.Result{ErrorType: runtime.ErrTypeTimeout, Reusable: true,
			Payload: runtime.ErrorPayload(runtime.ErrTypeTimeout, runtime.TimeoutMessage(inv.RequestID, i.spec.TimeoutOrDefault()))}
	}
	if ctx.Err() != nil {
		return i.notStarted(ctx, inv.RequestID)
	}
	i.mu.Lock()
	i.tagID = inv.RequestID
	i.mu.Unlock()
	i.timer.Reset(left)

	select {
	case i.invokes <- inv:
	case <-i.exited:
		i.timer.Stop()
		return undelivered(i.endExited(inv.RequestID))
	case <-i.timer.C:
		// The runtime did not come back for an invocation in all that
		// time: it is stuck.
		return i.abandon(inv.RequestID, runtime.ErrTypeTimeout, runtime.TimeoutMessage(inv.RequestID, i.spec.TimeoutOrDefault()))
	case <-ctx.Done():
		// The caller left before the runtime got the invocation: the
		// instance is as good as it was.
		i.timer.Stop()
		i.endInvocation()
		return i.notStarted(ctx, inv.RequestID)
	}

	var res runtime.Result
	select {
	case res = <-i.results:
		i.timer.Stop()
	case <-i.exited:
		i.timer.Stop()
		select {
		case res = <-i.results: // answered, then exited
		default:
			return i.endExited(inv.RequestID)
		}
	case <-i.timer.C:
		return i.abandon(inv.RequestID, runtime.ErrTypeTimeout, runtime.TimeoutMessage(inv.RequestID, i.spec.TimeoutOrDefault()))
	case <-ctx.Done():
		i.timer.Stop()
		return i.abandon(inv.RequestID, runtime.ErrTypeExit, i.abandonMessage(ctx, inv.RequestID))
	}
	res.MaxMemoryMB = i.proc.peakMB()
	if !res.Reusable {
		// Go's runtime client exits after a refused response: do not
		// hand the instance out again to find that out.
		i.broken.Store(true)
		i.kill()
	}
	i.endInvocation()
	return res
}

// undelivered marks a result of an invocation the runtime never received.
func undelivered(r runtime.Result) runtime.Result {
	r.Undelivered = true
	return r
}

// endInvocation waits for the output of the invocation in progress, then
// ends its tagging.
func (i *instance) endInvocation() {
	i.flushOutput()
	i.mu.Lock()
	i.running, i.tagID = "", ""
	i.mu.Unlock()
}

// flushOutput waits, for flushWait at most, until every line written
// before now has been handed to spec.Log. With no output pending it costs
// an ioctl per pipe and does not wait.
func (i *instance) flushOutput() {
	a, b := i.streams[0].flushStart(), i.streams[1].flushStart()
	if !a && !b {
		return
	}
	t := time.NewTimer(flushWait)
	defer t.Stop()
	for {
		select {
		case <-i.flushed:
		case <-t.C:
			i.streams[0].flushCancel()
			i.streams[1].flushCancel()
			return
		}
		if !i.streams[0].flushPending() && !i.streams[1].flushPending() {
			return
		}
	}
}

// abandon ends an invocation the runtime did not answer in time, or whose
// caller went away, by killing the process group.
func (i *instance) abandon(id, errType, msg string) runtime.Result {
	i.broken.Store(true)
	mem := i.proc.peakMB()
	i.log.Debug("process: killing an instance with an invocation in progress", "instance", i.spec.InstanceID,
		"request_id", id, "error_type", errType)
	i.kill()
	i.endInvocation()
	return runtime.Result{
		ErrorType:   errType,
		Payload:     runtime.ErrorPayload(errType, msg),
		MaxMemoryMB: mem,
	}
}

// notStarted is the result of an invocation whose caller left before the
// runtime got it. The instance is untouched and can be reused.
func (i *instance) notStarted(ctx context.Context, id string) runtime.Result {
	msg := fmt.Sprintf("RequestId: %s Error: Invocation abandoned before it started: %v", id, context.Cause(ctx))
	return runtime.Result{ErrorType: runtime.ErrTypeExit, Payload: runtime.ErrorPayload(runtime.ErrTypeExit, msg), Reusable: true}
}

// endExited ends an invocation whose process exited.
func (i *instance) endExited(id string) runtime.Result {
	i.broken.Store(true)
	i.endInvocation()
	return i.exitResult(id)
}

// exitResult is the result of an invocation on an exited process.
func (i *instance) exitResult(id string) runtime.Result {
	msg := fmt.Sprintf("RequestId: %s Error: %s", id, i.exitReason())
	typ := runtime.ErrTypeExit
	if i.proc.oomKilled() {
		typ = runtime.ErrTypeOutOfMemory
	}
	return runtime.Result{
		ErrorType:   typ,
		Payload:     runtime.ErrorPayload(typ, msg),
		MaxMemoryMB: i.proc.peakMB(),
	}
}

func (i *instance) abandonMessage(ctx context.Context, id string) string {
	return fmt.Sprintf("RequestId: %s Error: Invocation abandoned, runtime stopped: %v", id, context.Cause(ctx))
}

// tag returns the request id to tag output with now.
func (i *instance) tag() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.tagID
}

// isRunning reports whether id is the invocation the runtime holds.
func (i *instance) isRunning(id string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.running != "" && i.running == id
}

// finish ends the invocation id with res, if it is the one the runtime
// holds, and reports whether it was.
func (i *instance) finish(id string, res runtime.Result) bool {
	i.mu.Lock()
	if i.running == "" || i.running != id {
		i.mu.Unlock()
		return false
	}
	i.running = ""
	i.mu.Unlock()
	// Never blocks: one invocation at a time, and running was set once.
	i.results <- res
	return true
}

// kill kills the process and all it started.
func (i *instance) kill() { i.proc.kill() }

// wait waits for the process to exit, kills whatever it left, and reaps it.
func (i *instance) wait() {
	err := i.proc.wait()
	i.exitErr = err
	i.log.Debug("process: instance exited", "instance", i.spec.InstanceID, "pid", i.proc.pid(), "err", err)
	close(i.exited)
}

// Stop kills the process group and waits until the process, the Runtime
// API server and the output readers are all gone. It may be called more
// than once, and concurrently.
func (i *instance) Stop() error {
	i.stopOnce.Do(i.stop)
	return nil
}

func (i *instance) stop() {
	i.broken.Store(true)
	close(i.stopping)
	i.kill()
	<-i.exited

	i.hmu.Lock()
	i.hclosed = true
	i.hmu.Unlock()
	if err := i.srv.Close(); err != nil {
		i.log.Debug("process: closing the runtime API server", "instance", i.spec.InstanceID, "err", err)
	}
	<-i.served
	i.handlers.Wait()

	t := time.NewTimer(stopOutputWait)
	for _, s := range i.streams {
		select {
		case <-s.finished:
		case <-t.C:
		}
	}
	t.Stop()
	for _, s := range i.streams {
		if err := s.close(); err != nil && !errors.Is(err, syscall.EBADF) {
			i.log.Debug("process: closing output", "instance", i.spec.InstanceID, "err", err)
		}
		<-s.finished
	}
	i.proc.close()
	for _, f := range i.cleanup {
		f()
	}
}
