// Package runtime defines what a runtime driver does: start an instance of a
// function version, run invocations in it one at a time, and stop it. The
// drivers live below (process/, and later wasm/); pools and the invoker use
// only this package's small interface, so they do not know which driver
// they drive.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Size limits Lambda sets on a synchronous invocation.
const (
	MaxRequestBytes  = 6 << 20
	MaxResponseBytes = 6 << 20
)

// Error types the platform reports, as Lambda names them.
const (
	ErrTypeTimeout = "Sandbox.Timedout"
	ErrTypeExit    = "Runtime.ExitError"
	ErrTypeInit    = "Runtime.InitError"
	// ErrTypeInvalidEntrypoint is a bootstrap that is missing, not
	// executable, or not a program.
	ErrTypeInvalidEntrypoint = "Runtime.InvalidEntrypoint"
	ErrTypeResponseTooLarge  = "Function.ResponseSizeTooLarge"
	ErrTypeOutOfMemory       = "Runtime.OutOfMemory"
	ErrTypeUnknown           = "Unhandled" // a function error whose runtime named no type
)

// Spec says which instance to start.
type Spec struct {
	Function   string
	Version    string // "$LATEST" or "1", "2", …
	Runtime    string // provided, go, nodejs, python
	Handler    string
	MemoryMB   int
	Timeout    time.Duration
	Env        map[string]string // the function's own variables
	CodeDir    string            // the unpacked code; the instance must not change it
	Network    string            // "none" (default) or "host"
	Reuse      bool              // wasm: keep one module instance warm between calls
	InstanceID string
	// Log receives each line the instance writes, tagged with the request
	// id of the invocation it wrote it during ("" during init). It is called
	// from one goroutine per stream. It may block while the node's logs
	// are full, which slows the function's writes down, until the line's
	// Done is closed.
	Log func(Line)
}

// Line is one line of an instance's output.
type Line struct {
	Time      time.Time
	RequestID string
	Stream    string // "stdout" or "stderr"
	Text      string
	// Done is closed when the writer can wait no longer for Log to take
	// the line: its instance stopped, or its invocation ended. Nil: Log
	// must not wait.
	Done <-chan struct{}
}

// Driver starts instances.
type Driver interface {
	// Start starts an instance and returns once its runtime has finished
	// init and asked for its first invocation. If init fails, the error is
	// an *InitError and nothing is left running.
	Start(ctx context.Context, spec Spec) (Instance, error)
}

// Instance is one running copy of a function version. It serves one
// invocation at a time.
type Instance interface {
	// Invoke runs one invocation until the function answers or inv.Deadline
	// passes. Everything the function does, errors included, is in the
	// Result.
	Invoke(ctx context.Context, inv Invocation) Result
	// InitDuration is how long the instance took to become ready.
	InitDuration() time.Duration
	// Done is closed once the instance has exited, for whatever reason.
	Done() <-chan struct{}
	// Stop ends the instance and waits until it is gone.
	Stop() error
}

// Invocation is one call, as the Runtime API hands it to the function.
type Invocation struct {
	RequestID       string
	Payload         []byte
	Deadline        time.Time
	FunctionARN     string
	TraceID         string
	ClientContext   string // JSON, or empty
	CognitoIdentity string // JSON, or empty
}

// Result is how an invocation ended.
type Result struct {
	// Payload is the function's response, or on error Lambda's error
	// document {"errorMessage", "errorType", "stackTrace"}.
	Payload []byte
	// ErrorType is empty on success, else the function's error type or one
	// of the ErrType constants.
	ErrorType string
	// Reusable says the instance can take another invocation; it is false
	// after a timeout, a crash or any platform error.
	Reusable bool
	// MaxMemoryMB is the instance's peak memory so far, for the REPORT line.
	MaxMemoryMB int
	// Undelivered says the function never received the invocation (its
	// instance had died): it is safe to run it on another instance.
	Undelivered bool
}

// Failed reports whether the invocation ended in an error.
func (r Result) Failed() bool { return r.ErrorType != "" }

// InitError is an instance that failed to start: its runtime reported an
// init error, or exited, or did not become ready in time.
type InitError struct {
	Type    string // e.g. Runtime.ImportModuleError, or ErrTypeInit
	Message string
	Payload []byte // the error document to hand the caller
}

func (e *InitError) Error() string { return e.Type + ": " + e.Message }

// NewInitError is an InitError with the error document for typ and msg.
func NewInitError(typ, msg string) *InitError {
	return &InitError{Type: typ, Message: msg, Payload: ErrorPayload(typ, msg)}
}

// DefaultTimeout is an invocation's time when a Spec gives none, as on Lambda.
const DefaultTimeout = 3 * time.Second

// TimeoutOrDefault is the time an invocation of the instance may take.
func (s Spec) TimeoutOrDefault() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

// TimeoutMessage is the error message of invocation id cut off after d,
// as Lambda words it.
func TimeoutMessage(id string, d time.Duration) string {
	return fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", id, d.Seconds())
}

// UnwrapPath drops the path from a *fs.PathError: the caller of a function
// has no business with the node's directories.
func UnwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// ErrorPayload builds Lambda's error document for an error the platform
// itself reports.
func ErrorPayload(errType, msg string) []byte {
	b, err := json.Marshal(struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}{msg, errType})
	if err != nil {
		panic(err) // two strings always marshal
	}
	return b
}
