// Package invoke owns the invocation of functions: it resolves a name and
// qualifier to what runs, borrows an instance from that version's pool,
// runs the invocation, and reports it (Lambda's START, END and REPORT log
// lines, and what the caller is told).
package invoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// Errors the gateway maps to Lambda's error types.
var (
	ErrInvalidContent = errors.New("invoke: request payload is not JSON")
	ErrTooLarge       = errors.New("invoke: request payload is too large")
)

// TailBytes is how much of an invocation's log a caller asking for the
// tail gets, as Lambda's X-Amz-Log-Result.
const TailBytes = 4096

// Registry resolves what an invocation runs.
type Registry interface {
	Resolve(name, qualifier string, pick func() float64) (registry.Target, error)
}

// CodeDirs hands out the unpacked code of a sha256.
type CodeDirs interface {
	Dir(ctx context.Context, sha string) (string, error)
}

// LogSink stores log records.
type LogSink interface {
	Append(telemetry.Record)
}

// Config is what an Invoker needs.
type Config struct {
	Registry Registry
	Driver   runtime.Driver
	Code     CodeDirs
	Logs     LogSink
	Logger   *slog.Logger
	// Region and Account make the function ARNs handed to functions.
	Region, Account string
	Now             func() time.Time
	// Pick draws a number in [0, 1) for alias weights; default math/rand.
	Pick func() float64
}

// Invoker runs invocations.
type Invoker struct {
	cfg Config

	mu     sync.Mutex
	pools  map[string]*versionPool // guarded by mu; by function@version
	closed bool                    // guarded by mu
	seq    uint64                  // guarded by mu; instance ids

	tails sync.Map // request id → *tailBuffer, for callers that asked for the log tail
}

type versionPool struct {
	key  string // registry.Target.Key it was made for
	pool *pool.Pool
}

// New returns an Invoker.
func New(cfg Config) *Invoker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
	return &Invoker{cfg: cfg, pools: map[string]*versionPool{}}
}

// Request is one synchronous invocation.
type Request struct {
	Function  string
	Qualifier string // "", "$LATEST", a version number or an alias
	Payload   []byte
	// Tail asks for the last TailBytes of the invocation's log.
	Tail            bool
	ClientContext   string
	CognitoIdentity string
	TraceID         string
	// RequestID, if set, is used instead of a new one.
	RequestID string
}

// Response is how an invocation went. A function error is a Response too,
// with FunctionError set, as Lambda answers it.
type Response struct {
	RequestID string
	Version   string // the version that ran
	Payload   []byte
	// FunctionError is "Unhandled" when the function failed; ErrorType
	// says how.
	FunctionError string
	ErrorType     string
	LogTail       []byte
	Duration      time.Duration
	InitDuration  time.Duration // 0 when warm
	Cold          bool
	MemoryMB      int
	MaxMemoryMB   int
}

// NewRequestID returns a request id in the UUID form Lambda uses.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Check validates a payload as Lambda does: at most 6 MB of JSON (an empty
// payload counts as null).
func Check(payload []byte) error {
	if len(payload) > runtime.MaxRequestBytes {
		return fmt.Errorf("%d bytes is over the %d byte limit: %w", len(payload), runtime.MaxRequestBytes, ErrTooLarge)
	}
	if len(bytes.TrimSpace(payload)) > 0 && !json.Valid(payload) {
		return ErrInvalidContent
	}
	return nil
}

// Resolve says what name and qualifier run, without running it.
func (iv *Invoker) Resolve(name, qualifier string) (registry.Target, error) {
	return iv.cfg.Registry.Resolve(name, qualifier, iv.cfg.Pick)
}

// Invoke runs one invocation and waits for its end.
func (iv *Invoker) Invoke(ctx context.Context, req Request) (*Response, error) {
	if err := Check(req.Payload); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(req.Payload)) == 0 {
		req.Payload = []byte("null")
	}
	t, err := iv.Resolve(req.Function, req.Qualifier)
	if err != nil {
		return nil, err
	}
	p, err := iv.poolFor(t)
	if err != nil {
		return nil, err
	}
	id := req.RequestID
	if id == "" {
		id = NewRequestID()
	}
	timeout := time.Duration(t.Timeout) * time.Second
	res := &Response{RequestID: id, Version: t.Version, MemoryMB: t.MemoryMB}
	var tail *tailBuffer
	if req.Tail {
		tail = iv.watchTail(id)
		defer iv.unwatchTail(id)
	}

	start := iv.cfg.Now()
	lease, err := p.Acquire(ctx)
	if err != nil {
		var ie *runtime.InitError
		if !errors.As(err, &ie) {
			return nil, err
		}
		// Lambda answers a failed init as the function's error.
		res.Duration = iv.cfg.Now().Sub(start)
		res.Payload, res.FunctionError, res.ErrorType = ie.Payload, "Unhandled", ie.Type
		iv.platformLog(t, "", id, telemetry.StartLine(id, t.Version))
		iv.platformLog(t, "", id, fmt.Sprintf("INIT_REPORT Init Duration: %.2f ms\tPhase: init\tStatus: error\tError Type: %s",
			float64(res.Duration.Microseconds())/1000, ie.Type))
		iv.finish(t, "", res, tail)
		return res, nil
	}
	inst := lease.Instance
	if lease.Cold {
		res.Cold, res.InitDuration = true, inst.InitDuration()
	}
	instID := instanceID(inst)
	iv.platformLog(t, instID, id, telemetry.StartLine(id, t.Version))
	invStart := iv.cfg.Now()
	r := inst.Invoke(ctx, runtime.Invocation{
		RequestID: id, Payload: req.Payload, Deadline: invStart.Add(timeout),
		FunctionARN: iv.arn(req.Function, req.Qualifier), TraceID: req.TraceID,
		ClientContext: req.ClientContext, CognitoIdentity: req.CognitoIdentity,
	})
	res.Duration = iv.cfg.Now().Sub(invStart)
	lease.Release(r.Reusable)
	res.Payload, res.MaxMemoryMB = r.Payload, r.MaxMemoryMB
	if r.Failed() {
		res.FunctionError, res.ErrorType = "Unhandled", r.ErrorType
		if r.ErrorType == runtime.ErrTypeTimeout {
			iv.platformLog(t, instID, id, fmt.Sprintf("%s %s Task timed out after %.2f seconds",
				iv.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"), id, timeout.Seconds()))
		}
	}
	iv.finish(t, instID, res, tail)
	return res, nil
}

// finish writes the END and REPORT lines and collects the tail.
func (iv *Invoker) finish(t registry.Target, instID string, res *Response, tail *tailBuffer) {
	iv.platformLog(t, instID, res.RequestID, telemetry.EndLine(res.RequestID))
	iv.platformLog(t, instID, res.RequestID, telemetry.ReportLine(res.RequestID, res.Duration, res.MemoryMB, res.MaxMemoryMB, res.InitDuration))
	if tail != nil {
		res.LogTail = tail.bytes()
	}
}

func (iv *Invoker) arn(name, qualifier string) string {
	a := "arn:aws:lambda:" + iv.cfg.Region + ":" + iv.cfg.Account + ":function:" + name
	if qualifier != "" {
		a += ":" + qualifier
	}
	return a
}

// poolFor returns the pool of a target, replacing (and draining) a pool
// made for what the same version ran before an update.
func (iv *Invoker) poolFor(t registry.Target) (*pool.Pool, error) {
	slot := t.Name + "@" + t.Version
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.closed {
		return nil, pool.ErrClosed
	}
	vp := iv.pools[slot]
	if vp != nil && vp.key == t.Key {
		return vp.pool, nil
	}
	if vp != nil {
		iv.drainLater(vp.pool)
	}
	vp = &versionPool{key: t.Key, pool: pool.New(pool.Config{Now: iv.cfg.Now, Start: func(ctx context.Context) (runtime.Instance, error) {
		return iv.start(ctx, t)
	}})}
	iv.pools[slot] = vp
	return vp.pool, nil
}

// drainLater drains a replaced pool: its idle instances stop now, its busy
// ones when their invocations end.
func (iv *Invoker) drainLater(p *pool.Pool) {
	go func() {
		if err := p.Close(context.Background()); err != nil {
			iv.cfg.Logger.Warn("invoke: draining an old pool", "err", err)
		}
	}()
}

// start starts an instance of t.
func (iv *Invoker) start(ctx context.Context, t registry.Target) (runtime.Instance, error) {
	dir, err := iv.cfg.Code.Dir(ctx, t.CodeSHA256)
	if err != nil {
		return nil, fmt.Errorf("invoke: code of %s: %w", t.Name, err)
	}
	iv.mu.Lock()
	iv.seq++
	instID := fmt.Sprintf("%x%06d", iv.cfg.Now().UnixNano()&0xffffff, iv.seq)
	iv.mu.Unlock()
	return iv.cfg.Driver.Start(ctx, runtime.Spec{
		Function: t.Name, Version: t.Version, Runtime: t.Runtime, Handler: t.Handler,
		MemoryMB: t.MemoryMB, Timeout: time.Duration(t.Timeout) * time.Second, Env: t.Env,
		CodeDir: dir, InstanceID: instID,
		Log: func(l runtime.Line) { iv.log(t, instID, l) },
	})
}

// instanceID is the instance's id for logs, where the driver tells it.
func instanceID(inst runtime.Instance) string {
	if s, ok := inst.(interface{ ID() string }); ok {
		return s.ID()
	}
	return ""
}

func (iv *Invoker) platformLog(t registry.Target, instID, reqID, msg string) {
	iv.log(t, instID, runtime.Line{Time: iv.cfg.Now(), RequestID: reqID, Stream: "platform", Text: msg})
}

// log stores one line and adds it to its invocation's tail if one is
// being collected.
func (iv *Invoker) log(t registry.Target, instID string, l runtime.Line) {
	iv.cfg.Logs.Append(telemetry.Record{Time: l.Time.UTC(), Function: t.Name, Version: t.Version,
		Instance: instID, RequestID: l.RequestID, Stream: l.Stream, Message: l.Text})
	if l.RequestID == "" {
		return
	}
	if tb, ok := iv.tails.Load(l.RequestID); ok {
		tb.(*tailBuffer).add(l.Text)
	}
}

// Close stops every instance of every pool.
func (iv *Invoker) Close(ctx context.Context) error {
	iv.mu.Lock()
	iv.closed = true
	pools := iv.pools
	iv.pools = map[string]*versionPool{}
	iv.mu.Unlock()
	var errs []error
	for _, vp := range pools {
		if err := vp.pool.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (iv *Invoker) watchTail(id string) *tailBuffer {
	tb := &tailBuffer{}
	iv.tails.Store(id, tb)
	return tb
}

func (iv *Invoker) unwatchTail(id string) { iv.tails.Delete(id) }

// tailBuffer keeps the last TailBytes of an invocation's log lines.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte // guarded by mu
}

func (tb *tailBuffer) add(line string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.buf = append(tb.buf, line...)
	tb.buf = append(tb.buf, '\n')
	if over := len(tb.buf) - TailBytes; over > 0 {
		tb.buf = tb.buf[over:]
	}
}

func (tb *tailBuffer) bytes() []byte {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return bytes.Clone(tb.buf)
}
