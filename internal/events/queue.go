package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// QueueConfig is what a Queue needs. JS, Invoker, Registry and Bus are
// required.
type QueueConfig struct {
	JS       jetstream.JetStream
	Invoker  Invoker
	Registry Registry
	// Bus takes the outcomes sent to topics and the dead letters, and is
	// told which topics those are.
	Bus     *Bus
	Logs    LogSink // nil: none
	Metrics Metrics // nil: none
	Logger  *slog.Logger
	// Now is the clock of event ages; default time.Now.
	Now func() time.Time
	// Region and Account go into the ARNs of destination records;
	// defaults us-east-1 and 000000000000.
	Region, Account string
	// RetryBase is the wait before a failed event's first retry; each
	// retry waits twice the one before, up to RetryMax, with jitter.
	// Defaults 1 minute and 5 minutes, as Lambda.
	RetryBase, RetryMax time.Duration
	// ThrottleBase is the first wait of an event its function had no
	// room for; it grows as RetryBase does. Default 1s.
	ThrottleBase time.Duration
	// AckWait is how long a node may go silent on an event before
	// another takes it over; default 30s. Busy events are kept alive.
	AckWait time.Duration
	// Workers bounds the events of one function a node runs at once;
	// default 32, and never more than the function's reserved concurrency.
	Workers int
	// Requests, if set, counts the calls the node has taken whose callers
	// wait for the answer (sync invocations, function URLs), so far: while
	// there are such and the CPU is saturated, the node runs fewer events
	// at once (see pace). Nil: events run as their workers allow.
	Requests func() uint64
	// Limits bound the queues (MaxQueuedEvents, MaxQueuedBytes and their
	// headroom); zero fields take their defaults.
	Limits Limits
}

// Queue is the node's part of the async queue: each function's events, in
// a stream of its own, and this node's workers of them, which run them
// with retries and send their outcomes where the function says.
type Queue struct {
	cfg  QueueConfig
	lim  Limits
	log  *slog.Logger
	stop context.CancelFunc
	wg   sync.WaitGroup // the loops
	// pace bounds the events this node runs at once, with its CPU.
	pace   *pace
	mu     sync.Mutex
	groups map[string]*group // guarded by mu; the running worker groups, by function
	// retired are groups stopped while their last events may still run;
	// Close waits for them too. Guarded by mu.
	retired []*group
	closed  bool // guarded by mu
	// emptyQueues are deleted functions whose queue was empty when last
	// looked at; only the workers' supervisor uses it.
	emptyQueues map[string]bool

	qmu    sync.Mutex
	queues map[string]*queue // guarded by qmu; the queues opened, by function
}

// OpenQueue starts the node's workers and the move of the old layout's
// events; Close stops them.
func OpenQueue(ctx context.Context, cfg QueueConfig) (*Queue, error) {
	clockAndLogger(&cfg.Now, &cfg.Logger)
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = time.Minute
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.ThrottleBase == 0 {
		cfg.ThrottleBase = time.Second
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 32
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.Account == "" {
		cfg.Account = arn.DefaultAccount
	}
	e := &Queue{cfg: cfg, lim: cfg.Limits.withDefaults(), log: cfg.Logger, groups: map[string]*group{}, pace: newPace(),
		emptyQueues: map[string]bool{}, queues: map[string]*queue{}}
	cfg.Bus.syncOutcomeTopics(cfg.Registry.Functions())
	lctx, cancel := context.WithCancel(context.Background())
	changes, err := cfg.Registry.Watch(lctx)
	if err != nil {
		cancel()
		return nil, err
	}
	e.stop = cancel
	goLoop(&e.wg, func() { e.pace.follow(lctx, machineCPU, cfg.Requests) })
	goLoop(&e.wg, func() { e.superviseWorkers(lctx, changes) })
	goLoop(&e.wg, func() { moveUntilGone(lctx, e.log, "queue", e.moveLegacyQueue) })
	return e, nil
}

// Close stops taking events and waits, until ctx ends, for the events
// being run to finish; an event cut off is run again, here after a restart
// or on another node.
func (e *Queue) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	groups := e.retired
	for _, g := range e.groups {
		groups = append(groups, g)
	}
	e.groups, e.retired = map[string]*group{}, nil
	e.mu.Unlock()
	e.stop()
	for _, g := range groups {
		g.stop()
	}
	wait := func() {
		for _, g := range groups {
			g.wait()
		}
		e.wg.Wait()
	}
	if !waitUntil(ctx, wait) {
		return errors.New("events: events still running at shutdown will run again")
	}
	return nil
}

// MaxPayload is the largest event payload, as Lambda's async invocations.
const MaxPayload = 256 << 10

// ErrTooLarge is an event over MaxPayload.
var ErrTooLarge = errors.New("events: the payload is too large")

// dedupWindow is how long JetStream remembers an event's dedup id: a tick
// or a fan-out stored twice within it is stored once.
const dedupWindow = 2 * time.Minute

// Headers of a queued event.
const (
	hRequestID = "Wisp-Request-Id"
	hFunction  = "Wisp-Function"
	hQualifier = "Wisp-Qualifier"
	hTrigger   = "Wisp-Trigger"
	hEnqueued  = "Wisp-Enqueued"   // unix nanos of the first enqueue
	hAttempt   = "Wisp-Attempt"    // attempts made before this one
	hNotBefore = "Wisp-Not-Before" // unix nanos; a retry waits for it
	// An outcome whose record could not be sent at once is stored as an
	// event of its own, which sends the record and runs nothing.
	hRecordTo   = "Wisp-Record-To" // the destination, "" for the dead-letter topic
	hRecordKind = "Wisp-Record-Kind"
)

// maxInternal bounds what the platform itself stores (destination records
// hold a request and a response): under the streams' 1 MiB messages.
const maxInternal = 1<<20 - 64<<10

// Triggers: what put an event in the queue.
const (
	TriggerEvent       = "event" // an Invoke API call with InvocationType Event
	TriggerSchedule    = "schedule"
	TriggerTopic       = "topic"
	TriggerDestination = "destination"
)

// Async is an event for a function.
type Async struct {
	Function, Qualifier string
	Payload             []byte
	// RequestID stays the event's across retries; default a new one.
	RequestID string
	Trigger   string // default TriggerEvent
	// DedupID, when set, makes a second enqueue with the same id within
	// two minutes a no-op.
	DedupID string
}

// Enqueue checks an event and stores it durably; it returns the request id
// once the event cannot be lost. The function (and qualifier) must exist,
// and its queue have room: past its bound the error wraps ErrQueueFull.
func (e *Queue) Enqueue(ctx context.Context, a Async) (string, error) {
	if len(a.Payload) > MaxPayload {
		return "", fmt.Errorf("%d bytes is over the %d byte limit of an event: %w", len(a.Payload), MaxPayload, ErrTooLarge)
	}
	if err := invoke.Check(a.Payload); err != nil {
		return "", err
	}
	if _, err := e.cfg.Invoker.Resolve(a.Function, a.Qualifier); err != nil {
		return "", err
	}
	if a.RequestID == "" {
		a.RequestID = invoke.NewRequestID()
	}
	if a.Trigger == "" {
		a.Trigger = TriggerEvent
	}
	return a.RequestID, e.storeNew(ctx, a)
}

// storeNew stores a new event (an Invoke API call, a topic's delivery, a
// schedule's tick), which its function's queue refuses past its bound
// with ErrQueueFull.
func (e *Queue) storeNew(ctx context.Context, a Async) error {
	return e.publishAsync(ctx, a, e.cfg.Now(), 0, time.Time{}, nil, true)
}

// store writes what an accepted event still needs to the queue (a retry,
// a destination record): never refused at the bound, only past the
// headroom above it, and waits for JetStream to hold it.
func (e *Queue) store(ctx context.Context, a Async, enqueued time.Time, attempt int, notBefore time.Time) error {
	return e.publishAsync(ctx, a, enqueued, attempt, notBefore, nil, false)
}

func (e *Queue) publishAsync(ctx context.Context, a Async, enqueued time.Time, attempt int, notBefore time.Time, extra map[string]string, fresh bool) error {
	m := nats.NewMsg(queuePrefix + a.Function)
	for k, v := range extra {
		m.Header.Set(k, v)
	}
	m.Data = a.Payload
	m.Header.Set(hRequestID, a.RequestID)
	m.Header.Set(hFunction, a.Function)
	if a.Qualifier != "" {
		m.Header.Set(hQualifier, a.Qualifier)
	}
	m.Header.Set(hTrigger, a.Trigger)
	m.Header.Set(hEnqueued, strconv.FormatInt(enqueued.UnixNano(), 10))
	if attempt > 0 {
		m.Header.Set(hAttempt, strconv.Itoa(attempt))
	}
	if !notBefore.IsZero() {
		m.Header.Set(hNotBefore, strconv.FormatInt(notBefore.UnixNano(), 10))
	}
	if a.DedupID != "" {
		m.Header.Set(jetstream.MsgIDHeader, a.DedupID)
	}
	return e.put(ctx, a.Function, m, fresh)
}

// queued is an event read back from the queue.
type queued struct {
	Async
	enqueued  time.Time
	attempt   int
	notBefore time.Time
}

func readQueued(m jetstream.Msg) (queued, error) {
	h := m.Headers()
	q := queued{Async: Async{Function: h.Get(hFunction), Qualifier: h.Get(hQualifier), Payload: m.Data(),
		RequestID: h.Get(hRequestID), Trigger: h.Get(hTrigger)}}
	if q.Function == "" || q.RequestID == "" {
		return q, errors.New("the event has no function or request id")
	}
	ns, err := strconv.ParseInt(h.Get(hEnqueued), 10, 64)
	if err != nil {
		return q, fmt.Errorf("the event's %s header: %w", hEnqueued, err)
	}
	q.enqueued = time.Unix(0, ns)
	if s := h.Get(hAttempt); s != "" {
		if q.attempt, err = strconv.Atoi(s); err != nil {
			return q, fmt.Errorf("the event's %s header: %w", hAttempt, err)
		}
	}
	if s := h.Get(hNotBefore); s != "" {
		ns, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("the event's %s header: %w", hNotBefore, err)
		}
		q.notBefore = time.Unix(0, ns)
	}
	return q, nil
}

// handle runs one event and settles it: acknowledged once its outcome
// (a retry, a destination record, a dead letter) is stored, or handed
// back to the queue to run later. Once the function has run, the event is
// never handed back: its outcome is stored whatever happens. It returns
// how long the worker should rest: a function with no room now is not
// asked again at once (its other events would only be turned away too).
func (e *Queue) handle(ctx context.Context, m jetstream.Msg, keepAlivePeriod time.Duration) (rest time.Duration) {
	q, err := readQueued(m)
	if err != nil {
		// Only a foreign writer makes one; it can never run.
		e.log.Error("events: an unreadable event is dropped", "subject", m.Subject(), "err", err)
		m.Term() //nolint:errcheck // redelivered if the term is lost
		return
	}
	now := e.cfg.Now()
	if wait := q.notBefore.Sub(now); wait > 0 {
		m.NakWithDelay(wait) //nolint:errcheck // redelivered after AckWait if lost
		return
	}
	if ctx.Err() != nil {
		m.Nak() //nolint:errcheck // as above
		return
	}
	stop := keepAlive(m, keepAlivePeriod)
	defer stop()
	// Settling stores things: it must not be cut off by a stopping node.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if kind := m.Headers().Get(hRecordKind); kind != "" {
		e.resend(sctx, m, q, kind)
		return
	}
	t, err := e.cfg.Invoker.Resolve(q.Function, q.Qualifier)
	if err != nil {
		if now.Sub(q.enqueued) < notFoundGrace {
			// A function or version just made may not have reached this
			// node yet.
			m.NakWithDelay(e.cfg.ThrottleBase) //nolint:errcheck // as above
			return
		}
		e.settle(sctx, m, q, t.Function, outcome{condition: conditionNotFound, err: err, attempts: q.attempt})
		return
	}
	f := t.Function
	age := now.Sub(q.enqueued)
	if age > time.Duration(f.Async.MaxEventAge)*time.Second {
		e.settle(sctx, m, q, f, outcome{condition: conditionAgeExceeded, attempts: q.attempt})
		return
	}
	// The event is acknowledged only once the run's usage record is
	// stored: what the queue let go of is billed.
	res, err := e.cfg.Invoker.Invoke(ctx, invoke.Request{Function: q.Function, Qualifier: q.Qualifier,
		Payload: q.Payload, RequestID: q.RequestID, Trigger: q.Trigger, AwaitRecord: true})
	var (
		te *pool.ThrottleError
		ce *meter.CapError
	)
	switch {
	case err == nil && res.Unrecorded != nil:
		// It ran, but its record is not stored yet: it runs again rather
		// than go unbilled (at least once).
		e.log.Warn("events: an event's usage record is not stored; the event runs again", "function", q.Function,
			"request_id", q.RequestID, "err", res.Unrecorded)
		m.NakWithDelay(e.cfg.ThrottleBase) //nolint:errcheck // redelivered after AckWait if lost
	case errors.Is(err, meter.ErrBacklog):
		// The meter cannot store records now: the event waits.
		e.wait(m, e.cfg.RetryMax)
		return e.cfg.ThrottleBase
	case errors.As(err, &ce) && ce.Async == registry.QuotaFail:
		e.settle(sctx, m, q, f, outcome{condition: meter.ReasonSpendCap, err: err, attempts: q.attempt})
	case errors.As(err, &ce):
		// Used up: the event waits for the next period.
		e.cfg.Metrics.AsyncOutcome(q.Function, "capped")
		e.wait(m, min(e.cfg.RetryMax, max(ce.Until.Sub(e.cfg.Now()), e.cfg.ThrottleBase)))
		return e.cfg.ThrottleBase
	case errors.As(err, &te):
		// No room now: the event waits, without using up a retry.
		e.cfg.Metrics.AsyncOutcome(q.Function, "throttled")
		e.wait(m, e.cfg.RetryMax)
		return e.cfg.ThrottleBase
	case errors.Is(err, invoke.ErrClosed) || errors.Is(err, context.Canceled):
		m.Nak() //nolint:errcheck // it did not run; as above
	case errors.Is(err, registry.ErrNotFound):
		e.settle(sctx, m, q, f, outcome{condition: conditionNotFound, err: err, attempts: q.attempt})
	case err != nil:
		e.cfg.Metrics.AsyncAge(q.Function, age)
		e.failed(sctx, m, q, f, outcome{err: err, attempts: q.attempt + 1})
	case res.FunctionError != "":
		e.cfg.Metrics.AsyncAge(q.Function, age)
		e.failed(sctx, m, q, f, outcome{res: res, attempts: q.attempt + 1})
	default:
		e.cfg.Metrics.AsyncAge(q.Function, age)
		e.settle(sctx, m, q, f, outcome{condition: conditionSuccess, res: res, attempts: q.attempt + 1})
	}
	return 0
}

// notFoundGrace is how long an event of a function this node does not
// know waits for the registry to catch up before it fails.
const notFoundGrace = 30 * time.Second

// wait hands an event back to run after a backoff that grows with its
// deliveries, up to most.
func (e *Queue) wait(m jetstream.Msg, most time.Duration) {
	n := 1
	if md, err := m.Metadata(); err == nil {
		n = int(md.NumDelivered)
	}
	m.NakWithDelay(backoff(e.cfg.ThrottleBase, most, n)) //nolint:errcheck // redelivered after AckWait if lost
}

// failed decides after a failed attempt: retry later or give up.
func (e *Queue) failed(ctx context.Context, m jetstream.Msg, q queued, f registry.Function, o outcome) {
	if o.attempts > f.Async.Retries {
		o.condition = conditionRetriesExhausted
		e.settle(ctx, m, q, f, o)
		return
	}
	wait := backoff(e.cfg.RetryBase, e.cfg.RetryMax, o.attempts)
	retry := q.Async
	retry.DedupID = q.RequestID + ".retry." + strconv.Itoa(o.attempts)
	if err := e.store(ctx, retry, q.enqueued, o.attempts, e.cfg.Now().Add(wait)); err != nil {
		e.log.Warn("events: storing a retry; the event runs again", "function", q.Function, "request_id", q.RequestID, "err", err)
		m.NakWithDelay(wait) //nolint:errcheck // redelivered after AckWait if lost
		return
	}
	e.cfg.Metrics.AsyncOutcome(q.Function, "retry")
	e.platformLog(q, fmt.Sprintf("ASYNC RequestId: %s\tAttempt: %d of %d\tError: %s\tRetry in: %s",
		q.RequestID, o.attempts, f.Async.Retries+1, o.errorText(), wait.Round(time.Millisecond)))
	m.Ack() //nolint:errcheck // a lost ack runs the event again: at least once
}

// settle sends a final outcome where the function's config says, then
// acknowledges the event. A record that cannot be sent now is stored as
// an event of its own, to be sent later: the function does not run again.
func (e *Queue) settle(ctx context.Context, m jetstream.Msg, q queued, f registry.Function, o outcome) {
	if f.Name == "" { // the function is gone: its events go to its default dead-letter topic
		f = registry.Function{Name: q.Function}
	}
	kind, dest := "failure", f.Async.OnFailure
	if o.condition == conditionSuccess {
		kind, dest = "success", f.Async.OnSuccess
	}
	sent := ""
	if dest != "" || kind == "failure" {
		rec := e.record(q, f, o)
		var err error
		if sent, err = e.deliverRecord(ctx, q, f.Name, kind, dest, rec); err != nil {
			e.log.Warn("events: sending an outcome; it is kept to send later", "function", q.Function,
				"request_id", q.RequestID, "to", sent, "err", err)
			later := q.Async
			later.Payload, later.DedupID = rec, q.RequestID+"."+kind+".record"
			if err := e.storeRecord(ctx, later, kind, dest); err != nil {
				e.log.Error("events: keeping an outcome failed; the event runs again", "function", q.Function,
					"request_id", q.RequestID, "err", err)
				m.NakWithDelay(e.cfg.ThrottleBase) //nolint:errcheck // redelivered after AckWait if lost
				return
			}
		}
	}
	switch o.condition {
	case conditionSuccess:
		e.cfg.Metrics.AsyncOutcome(q.Function, "success")
		if sent != "" {
			e.platformLog(q, fmt.Sprintf("ASYNC RequestId: %s\tCondition: Success\tSent to: %s", q.RequestID, sent))
		}
	case conditionAgeExceeded:
		e.cfg.Metrics.AsyncOutcome(q.Function, "expired")
		e.platformLog(q, fmt.Sprintf("ASYNC RequestId: %s\tCondition: %s\tAge: %s\tSent to: %s",
			q.RequestID, o.condition, e.cfg.Now().Sub(q.enqueued).Round(time.Second), sent))
	default:
		e.cfg.Metrics.AsyncOutcome(q.Function, "failure")
		e.platformLog(q, fmt.Sprintf("ASYNC RequestId: %s\tCondition: %s\tAttempts: %d\tError: %s\tSent to: %s",
			q.RequestID, o.condition, o.attempts, o.errorText(), sent))
	}
	m.Ack() //nolint:errcheck // a lost ack runs the event again: at least once
}

// storeRecord keeps a record to send later, as an event of the function
// that sends it to dest when it comes round.
func (e *Queue) storeRecord(ctx context.Context, a Async, kind, dest string) error {
	return e.publishAsync(ctx, a, e.cfg.Now(), 0, e.cfg.Now().Add(e.cfg.ThrottleBase), map[string]string{hRecordKind: kind, hRecordTo: dest}, false)
}

// resend sends a record kept by settle; until it can, it stays queued.
func (e *Queue) resend(ctx context.Context, m jetstream.Msg, q queued, kind string) {
	sent, err := e.deliverRecord(ctx, q, q.Function, kind, m.Headers().Get(hRecordTo), q.Payload)
	if err != nil {
		e.log.Warn("events: sending an outcome; trying again later", "function", q.Function, "request_id", q.RequestID, "to", sent, "err", err)
		e.wait(m, e.cfg.RetryMax)
		return
	}
	e.platformLog(q, fmt.Sprintf("ASYNC RequestId: %s\tRecord: %s\tSent to: %s", q.RequestID, kind, sent))
	m.Ack() //nolint:errcheck // a lost ack sends it again
}

// deliverRecord sends a record to dest, or to the function's dead-letter
// topic when dest is empty or names a function that is gone. It returns
// where the record went.
func (e *Queue) deliverRecord(ctx context.Context, q queued, fn, kind, dest string, rec []byte) (string, error) {
	if dest != "" {
		d, err := registry.ParseDestination(dest)
		if err != nil {
			return dest, err // validated on write; cannot happen
		}
		if d.Topic != "" {
			return dest, e.publishRecord(ctx, d.Topic, q, fn, kind, rec)
		}
		_, err = e.cfg.Invoker.Resolve(d.Function, d.Qualifier)
		if err == nil {
			return dest, e.store(ctx, Async{Function: d.Function, Qualifier: d.Qualifier, Payload: rec,
				RequestID: invoke.NewRequestID(), Trigger: TriggerDestination, DedupID: q.RequestID + "." + kind}, e.cfg.Now(), 0, time.Time{})
		}
		e.log.Warn("events: a destination function is gone; a failure record goes to the dead-letter topic",
			"function", q.Function, "destination", dest)
		if kind == "success" {
			return dest, nil // a success has no dead-letter topic
		}
	}
	f := registry.Function{Name: fn}
	if t, err := e.cfg.Invoker.Resolve(fn, ""); err == nil {
		f = t.Function
	}
	topic := registry.DeadLetterTopic(f)
	return "topic:" + topic, e.publishRecord(ctx, topic, q, fn, kind, rec)
}

// failUnqueued sends the failure record of a new event its function's
// queue refused (a topic's delivery) where the function's failures go:
// its failure destination, or else its dead-letter topic.
func (e *Queue) failUnqueued(ctx context.Context, a Async, cause error) error {
	q := queued{Async: a, enqueued: e.cfg.Now()}
	f := registry.Function{Name: a.Function}
	if t, err := e.cfg.Invoker.Resolve(a.Function, ""); err == nil {
		f = t.Function
	}
	rec := e.record(q, f, outcome{condition: conditionQueueFull, err: cause})
	sent, err := e.deliverRecord(ctx, q, f.Name, "failure", f.Async.OnFailure, rec)
	if err != nil {
		return err
	}
	e.cfg.Metrics.AsyncOutcome(a.Function, "queue_full")
	e.platformLog(q, fmt.Sprintf("ASYNC RequestId: %s\tCondition: %s\tError: %s\tSent to: %s", q.RequestID, conditionQueueFull, cause, sent))
	return nil
}

// outcome is how an event ended, or an attempt of it.
type outcome struct {
	condition string
	res       *invoke.Response // the last attempt's, if it ran
	err       error            // why it could not run, if it did not
	attempts  int
}

func (o outcome) errorText() string {
	switch {
	case o.res != nil && o.res.ErrorType != "":
		return o.res.FunctionError + " (" + o.res.ErrorType + ")"
	case o.res != nil:
		return o.res.FunctionError
	case o.err != nil:
		return o.err.Error()
	}
	return ""
}

// Conditions of a destination record, as Lambda names them, and one of
// ours.
const (
	conditionSuccess          = "Success"
	conditionRetriesExhausted = "RetriesExhausted"
	conditionAgeExceeded      = "EventAgeExceeded"
	conditionNotFound         = "FunctionNotFound"
	conditionQueueFull        = ReasonQueueFull
)

// keepAlive tells JetStream every period that the event is still being
// worked on, until the returned func is called.
func keepAlive(m jetstream.Msg, period time.Duration) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				m.InProgress() //nolint:errcheck // a lost one may cost a duplicate run
			}
		}
	}()
	return func() { close(done) }
}

// backoff is the wait before try n (1 for the first retry): base doubled
// each time, at most max, with jitter over its upper half so that events
// failed together do not come back together.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}

func (e *Queue) platformLog(q queued, msg string) {
	if e.cfg.Logs == nil {
		return
	}
	e.cfg.Logs.Append(telemetry.Record{Time: e.cfg.Now().UTC(), Function: q.Function, Version: q.Qualifier,
		RequestID: q.RequestID, Stream: "platform", Message: msg})
}
