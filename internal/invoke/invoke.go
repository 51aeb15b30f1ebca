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
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/meter"
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

// Registry resolves what an invocation runs and says when that changes.
type Registry interface {
	Resolve(name, qualifier string, pick func() float64) (registry.Target, error)
	Provisioned(name string) []registry.Target
	Watch(ctx context.Context) (<-chan registry.Change, error)
}

// Metrics hears of every invocation.
type Metrics interface {
	Invoked(function, version, outcome string, d time.Duration)
	ColdStart(function, version string, init time.Duration)
	Throttled(function, reason string)
}

// CodeDirs hands out the unpacked code of a sha256.
type CodeDirs interface {
	Dir(ctx context.Context, sha string) (string, error)
}

// LogSink stores log records: Append without waiting, AppendWait
// waiting while the logs are full until done is closed.
type LogSink interface {
	Append(telemetry.Record)
	AppendWait(done <-chan struct{}, rec telemetry.Record)
}

// Usage meters invocations: it admits a call under its quotas, or
// refuses it, and records each that ran; a call admitted that did not run
// is released.
type Usage interface {
	Admit(f registry.Function) (*meter.Ticket, error)
	Release(*meter.Ticket)
	Record(meter.Record, *meter.Ticket)
	// RecordStored records and waits until the record is stored.
	RecordStored(context.Context, meter.Record, *meter.Ticket) error
}

// recordWait bounds how long a call with AwaitRecord waits for its record.
const recordWait = 20 * time.Second

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
	// Budget is the node's instance memory; default: no limit.
	Budget *pool.Budget
	// KeepWarm is how long an idle instance stays, unless its function
	// says otherwise; default 10 minutes.
	KeepWarm time.Duration
	// MaxLifetime recycles instances this old; default 2 hours.
	MaxLifetime time.Duration
	// TickEvery is how often pools scale down and keep their minimum;
	// default 1s.
	TickEvery time.Duration
	Metrics   Metrics // nil: none
	Usage     Usage   // nil: no metering
}

// Invoker runs invocations.
type Invoker struct {
	cfg Config

	mu    sync.Mutex
	pools map[string]*versionPool // guarded by mu; by function@version
	// draining are pools replaced or deleted, until their last instance
	// is gone. Guarded by mu.
	draining map[*pool.Pool]struct{}
	closed   bool   // guarded by mu
	seq      uint64 // guarded by mu; instance ids
	// calls are the invocations under way, so that Close can wait for
	// their records; one is added under callsMu's read lock while
	// callsClosed is false.
	calls       sync.WaitGroup
	callsMu     sync.RWMutex
	callsClosed bool // guarded by callsMu

	tails sync.Map // request id → *tailBuffer, for callers that asked for the log tail

	// requests counts the invocations whose callers wait for them (sync
	// calls and function URLs), for the events' pace.
	requests atomic.Uint64

	stop context.CancelFunc // ends the scaler
	done chan struct{}      // closed when the scaler has ended
}

type versionPool struct {
	function, version string
	key               string // registry.Target.Key it was made for
	rev               uint64 // and its Revision
	pool              *pool.Pool
}

// New returns an Invoker and starts its scaler, which keeps pools in step
// with the registry and scales them on a tick; Close ends it.
func New(cfg Config) (*Invoker, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Budget == nil {
		cfg.Budget = pool.NewBudget(1 << 30)
	}
	if cfg.KeepWarm == 0 {
		cfg.KeepWarm = 10 * time.Minute
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = 2 * time.Hour
	}
	if cfg.TickEvery == 0 {
		cfg.TickEvery = time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.Account == "" {
		cfg.Account = arn.DefaultAccount
	}
	iv := &Invoker{cfg: cfg, pools: map[string]*versionPool{}, draining: map[*pool.Pool]struct{}{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	changes, err := cfg.Registry.Watch(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	iv.stop = cancel
	go iv.scale(ctx, changes)
	return iv, nil
}

type noMetrics struct{}

func (noMetrics) Invoked(string, string, string, time.Duration) {}
func (noMetrics) ColdStart(string, string, time.Duration)       {}
func (noMetrics) Throttled(string, string)                      {}

// scale keeps pools in step with the registry (a changed or deleted
// function drains its old instances; min_instances start on deploy and
// publish) and ticks every pool, until ctx ends.
func (iv *Invoker) scale(ctx context.Context, changes <-chan registry.Change) {
	defer close(iv.done)
	tick := time.NewTicker(iv.cfg.TickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			iv.reconcile(c.Function)
		case <-tick.C:
			iv.Tick(iv.cfg.Now())
		}
	}
}

// reconcile drains the pools of a function that no longer run what the
// registry says, and makes the pools that must keep instances warm.
func (iv *Invoker) reconcile(name string) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.closed {
		return
	}
	for slot, vp := range iv.pools {
		if vp.function != name {
			continue
		}
		t, err := iv.cfg.Registry.Resolve(name, vp.version, nil)
		if err != nil || t.Key != vp.key {
			delete(iv.pools, slot)
			iv.drainLater(vp.pool)
		}
	}
	for _, t := range iv.cfg.Registry.Provisioned(name) {
		p := iv.poolForLocked(t)
		p.Tick(iv.cfg.Now())
	}
}

// Tick scales every pool at now.
func (iv *Invoker) Tick(now time.Time) {
	iv.mu.Lock()
	pools := make([]*pool.Pool, 0, len(iv.pools))
	for _, vp := range iv.pools {
		pools = append(pools, vp.pool)
	}
	iv.mu.Unlock()
	for _, p := range pools {
		p.Tick(now)
	}
}

// PoolStats returns the instances of every version this node runs.
func (iv *Invoker) PoolStats() []telemetry.PoolStat {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	out := make([]telemetry.PoolStat, 0, len(iv.pools))
	for _, vp := range iv.pools {
		out = append(out, telemetry.PoolStat{Function: vp.function, Version: vp.version, Stats: vp.pool.Stats()})
	}
	return out
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
	// Trigger is what invoked it, for the usage record: sync (default),
	// url, or an event's trigger.
	Trigger string
	// AwaitRecord makes Invoke return only once the usage record is
	// stored (the END and REPORT lines are written after it), for a
	// caller that acknowledges what ran, as an event's worker does: what
	// it acknowledges is billed, and every REPORT line has its record.
	AwaitRecord bool
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
	// Unrecorded, for a request with AwaitRecord, says why its usage
	// record is not stored yet (it stays to be stored later).
	Unrecorded error
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
// payload counts as null), in UTF-8 as JSON must be: json.Valid lets
// invalid bytes through, which a function's JSON parser would turn into
// U+FFFD or refuse.
func Check(payload []byte) error {
	if len(payload) > runtime.MaxRequestBytes {
		return fmt.Errorf("%d bytes is over the %d byte limit: %w", len(payload), runtime.MaxRequestBytes, ErrTooLarge)
	}
	if len(bytes.TrimSpace(payload)) > 0 && (!utf8.Valid(payload) || !json.Valid(payload)) {
		return ErrInvalidContent
	}
	return nil
}

// Requests counts, so far, the invocations whose callers wait for them:
// sync calls and function URLs.
func (iv *Invoker) Requests() uint64 { return iv.requests.Load() }

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
	iv.callsMu.RLock()
	if iv.callsClosed {
		iv.callsMu.RUnlock()
		return nil, ErrClosed
	}
	iv.calls.Add(1)
	iv.callsMu.RUnlock()
	defer iv.calls.Done()
	if req.Trigger == "" || req.Trigger == "url" {
		iv.requests.Add(1)
	}
	id := req.RequestID
	if id == "" {
		id = NewRequestID()
	}
	var tail *tailBuffer
	if req.Tail {
		tail = iv.watchTail(id)
		defer iv.unwatchTail(id)
	}
	start := iv.cfg.Now()
	ticket, err := iv.admit(req)
	if err != nil {
		var ce *meter.CapError
		if errors.As(err, &ce) {
			iv.cfg.Metrics.Throttled(req.Function, meter.ReasonSpendCap)
		}
		return nil, err
	}
	t, lease, err := iv.acquire(ctx, req)
	var ie *runtime.InitError
	if err != nil && !errors.As(err, &ie) {
		if iv.cfg.Usage != nil {
			iv.cfg.Usage.Release(ticket)
		}
		var te *pool.ThrottleError
		if errors.As(err, &te) {
			iv.cfg.Metrics.Throttled(req.Function, te.Reason)
		}
		return nil, err
	}
	res := &Response{RequestID: id, Version: t.Version, MemoryMB: t.MemoryMB}
	if ie != nil {
		// Lambda answers a failed init as the function's error.
		res.Duration = iv.cfg.Now().Sub(start)
		res.Cold = true // it failed starting an instance
		res.Payload, res.FunctionError, res.ErrorType = ie.Payload, "Unhandled", ie.Type
		iv.platformLog(t, "", id, telemetry.StartLine(id, t.Version))
		iv.platformLog(t, "", id, fmt.Sprintf("INIT_REPORT Init Duration: %.2f ms\tPhase: init\tStatus: error\tError Type: %s",
			float64(res.Duration.Microseconds())/1000, ie.Type))
		iv.finish(ctx, t, "", req, start, "error", res, tail, ticket)
		iv.cfg.Metrics.Invoked(t.Name, t.Version, "error", res.Duration)
		return res, nil
	}
	var (
		r        runtime.Result
		instID   string
		invStart time.Time
		timeout  time.Duration
	)
	for tries := 1; ; tries++ {
		// A retry may land on another version's instance (the function
		// changed meanwhile): what runs is what the answer says.
		timeout = time.Duration(t.Timeout) * time.Second
		res.Version, res.MemoryMB = t.Version, t.MemoryMB
		inst := lease.Instance
		if lease.Cold {
			res.Cold, res.InitDuration = true, inst.InitDuration()
			iv.cfg.Metrics.ColdStart(t.Name, t.Version, res.InitDuration)
		}
		instID = instanceID(inst)
		if tries == 1 {
			iv.platformLog(t, instID, id, telemetry.StartLine(id, t.Version))
		}
		invStart = iv.cfg.Now()
		// The invocation runs to its end or deadline even if the caller
		// leaves, as on Lambda: a function cut off halfway could leave
		// work half done.
		r = inst.Invoke(context.WithoutCancel(ctx), runtime.Invocation{
			RequestID: id, Payload: req.Payload, Deadline: invStart.Add(timeout),
			FunctionARN: iv.arn(req.Function, req.Qualifier), TraceID: req.TraceID,
			ClientContext: req.ClientContext, CognitoIdentity: req.CognitoIdentity,
		})
		res.Duration = iv.cfg.Now().Sub(invStart)
		lease.Release(r.Reusable)
		// An idle instance can die just before it is handed a call; the
		// call never reached it, so it goes to another instance.
		if !r.Undelivered || tries == 3 {
			break
		}
		next, nextLease, err := iv.acquire(ctx, req)
		if err != nil {
			break // the caller hears of the dead instance
		}
		t, lease = next, nextLease
	}
	res.Payload, res.MaxMemoryMB = r.Payload, r.MaxMemoryMB
	if r.Failed() {
		res.FunctionError, res.ErrorType = "Unhandled", r.ErrorType
		if r.ErrorType == runtime.ErrTypeTimeout {
			iv.platformLog(t, instID, id, fmt.Sprintf("%s %s Task timed out after %.2f seconds",
				iv.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"), id, timeout.Seconds()))
		}
	}
	iv.finish(ctx, t, instID, req, invStart, outcome(r), res, tail, ticket)
	iv.cfg.Metrics.Invoked(t.Name, t.Version, outcome(r), res.Duration)
	return res, nil
}

func outcome(r runtime.Result) string {
	switch r.ErrorType {
	case "":
		return "success"
	case runtime.ErrTypeTimeout:
		return "timeout"
	}
	return "error"
}

// admit asks the meter to let the call run under its function's quota
// (its $LATEST's, whatever version runs). A function that does not exist
// is left for acquire to refuse.
func (iv *Invoker) admit(req Request) (*meter.Ticket, error) {
	if iv.cfg.Usage == nil {
		return nil, nil
	}
	latest, err := iv.Resolve(req.Function, "")
	if err != nil {
		return nil, nil
	}
	return iv.cfg.Usage.Admit(latest.Function)
}

// InitTimeout is how long an instance may take to start, as Lambda's init
// phase; a caller waits in the queue at most that plus the function's
// timeout, which covers a cold start made for it.
const InitTimeout = 10 * time.Second

// acquire resolves the request and borrows an instance of what it runs,
// waiting in the queue at most the function's timeout plus InitTimeout. A pool drained
// meanwhile (the function changed) sends the caller to its successor.
func (iv *Invoker) acquire(ctx context.Context, req Request) (registry.Target, *pool.Lease, error) {
	for {
		t, err := iv.Resolve(req.Function, req.Qualifier)
		if err != nil {
			return t, nil, err
		}
		p, err := iv.poolFor(t)
		if err != nil {
			return t, nil, err
		}
		qctx, cancel := context.WithTimeout(ctx, time.Duration(t.Timeout)*time.Second+InitTimeout)
		lease, err := p.Acquire(qctx)
		cancel()
		if errors.Is(err, pool.ErrClosed) {
			if ctx.Err() != nil {
				return t, nil, ctx.Err()
			}
			continue
		}
		return t, lease, err
	}
}

// finish stores the usage record (billed as the REPORT line says), writes
// the END and REPORT lines, and collects the tail. The record comes first:
// for a call that awaits it, a REPORT line that was written is a call
// that was billed.
func (iv *Invoker) finish(ctx context.Context, t registry.Target, instID string, req Request, start time.Time, outcome string, res *Response, tail *tailBuffer, ticket *meter.Ticket) {
	if iv.cfg.Usage != nil {
		trigger := req.Trigger
		if trigger == "" {
			trigger = "sync"
		}
		rec := meter.Record{Function: t.Name, Version: t.Version, RequestID: res.RequestID,
			Trigger: trigger, Start: start.UTC(), DurationUs: res.Duration.Microseconds(),
			BilledMs: telemetry.BilledMs(res.Duration), MemoryMB: res.MemoryMB, Cold: res.Cold,
			InitUs: res.InitDuration.Microseconds(), Outcome: outcome}
		if req.AwaitRecord {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWait)
			res.Unrecorded = iv.cfg.Usage.RecordStored(rctx, rec, ticket)
			cancel()
		} else {
			iv.cfg.Usage.Record(rec, ticket)
		}
	}
	iv.platformLog(t, instID, res.RequestID, telemetry.EndLine(res.RequestID))
	iv.platformLog(t, instID, res.RequestID, telemetry.ReportLine(res.RequestID, res.Duration, res.MemoryMB, res.MaxMemoryMB, res.InitDuration))
	if tail != nil {
		res.LogTail = tail.bytes()
	}
}

func (iv *Invoker) arn(name, qualifier string) string {
	return arn.Function(iv.cfg.Region, iv.cfg.Account, name, qualifier)
}

// poolFor returns the pool of a target, replacing (and draining) a pool
// made for what the same version ran before an update.
func (iv *Invoker) poolFor(t registry.Target) (*pool.Pool, error) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.closed {
		return nil, ErrClosed
	}
	return iv.poolForLocked(t), nil
}

// ErrClosed is an invocation refused because the node is shutting down.
var ErrClosed = errors.New("invoke: the node is shutting down")

func (iv *Invoker) poolForLocked(t registry.Target) *pool.Pool {
	slot := t.Name + "@" + t.Version
	vp := iv.pools[slot]
	// A caller that resolved just before an update is served by the new
	// pool: only a newer target replaces a pool.
	if vp != nil && (vp.key == t.Key || vp.rev > t.Revision) {
		return vp.pool
	}
	if vp != nil {
		iv.drainLater(vp.pool)
	}
	keepWarm := iv.cfg.KeepWarm
	if t.KeepWarm > 0 {
		keepWarm = time.Duration(t.KeepWarm) * time.Second
	}
	max := -1
	if t.Concurrency != nil {
		max = *t.Concurrency
	}
	vp = &versionPool{function: t.Name, version: t.Version, key: t.Key, rev: t.Revision, pool: pool.New(pool.Config{
		Start:    func(ctx context.Context) (runtime.Instance, error) { return iv.start(ctx, t) },
		MemoryMB: t.MemoryMB, Budget: iv.cfg.Budget, Now: iv.cfg.Now,
		Limits: pool.Limits{Max: max, Min: t.MinInstances, KeepWarm: keepWarm, MaxLifetime: iv.cfg.MaxLifetime},
	})}
	iv.pools[slot] = vp
	return vp.pool
}

// drainLater drains a replaced pool: its idle instances stop now, its busy
// ones when their invocations end. iv.mu is held.
func (iv *Invoker) drainLater(p *pool.Pool) {
	iv.draining[p] = struct{}{}
	go func() {
		defer func() {
			iv.mu.Lock()
			delete(iv.draining, p)
			iv.mu.Unlock()
		}()
		// Busy instances finish their invocations, which are bounded by
		// the function's timeout.
		if err := p.Drain(context.Background()); err != nil {
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
		CodeDir: dir, InstanceID: instID, Network: t.Network, Reuse: t.Reuse,
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
	rec := telemetry.Record{Time: l.Time.UTC(), Function: t.Name, Version: t.Version,
		Instance: instID, RequestID: l.RequestID, Stream: l.Stream, Message: l.Text}
	if l.Done != nil {
		iv.cfg.Logs.AppendWait(l.Done, rec) // the instance's own output: slowed down when the logs are full
	} else {
		iv.cfg.Logs.Append(rec)
	}
	if l.RequestID == "" {
		return
	}
	if tb, ok := iv.tails.Load(l.RequestID); ok {
		tb.(*tailBuffer).add(l.Text)
	}
}

// Close stops the scaler and every instance of every pool: busy ones get
// until ctx ends to finish, then they are killed too.
func (iv *Invoker) Close(ctx context.Context) error {
	iv.stop()
	<-iv.done
	iv.mu.Lock()
	iv.closed = true
	pools := make([]*pool.Pool, 0, len(iv.pools)+len(iv.draining))
	for _, vp := range iv.pools {
		pools = append(pools, vp.pool)
	}
	for p := range iv.draining {
		pools = append(pools, p)
	}
	iv.pools = map[string]*versionPool{}
	iv.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Drain(ctx); err != nil {
				p.Kill()
			}
		}()
	}
	wg.Wait()
	// The calls cut off end now; their records and log lines are written
	// before the meter and the logs close.
	iv.callsMu.Lock()
	iv.callsClosed = true
	iv.callsMu.Unlock()
	iv.calls.Wait()
	return nil
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
