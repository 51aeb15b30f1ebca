package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// MaxPayload is the largest event payload, as Lambda's async invocations.
const MaxPayload = 256 << 10

// ErrTooLarge is an event over MaxPayload.
var ErrTooLarge = errors.New("events: the payload is too large")

const (
	asyncStreamName = "wisp_async"
	asyncPrefix     = "wisp.async." // + function
	// dedupWindow is how long JetStream remembers an event's dedup id: a
	// tick or a fan-out stored twice within it is stored once.
	dedupWindow = 2 * time.Minute
)

// Headers of a queued event.
const (
	hRequestID = "Wisp-Request-Id"
	hFunction  = "Wisp-Function"
	hQualifier = "Wisp-Qualifier"
	hTrigger   = "Wisp-Trigger"
	hEnqueued  = "Wisp-Enqueued"   // unix nanos of the first enqueue
	hAttempt   = "Wisp-Attempt"    // attempts made before this one
	hNotBefore = "Wisp-Not-Before" // unix nanos; a retry waits for it
)

// Triggers: what put an event in the queue.
const (
	TriggerEvent       = "event" // an Invoke API call with InvocationType Event
	TriggerSchedule    = "schedule"
	TriggerTopic       = "topic"
	TriggerDestination = "destination"
)

func asyncStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        asyncStreamName,
		Description: "wisp: events (async invocations) waiting to run",
		Subjects:    []string{asyncPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		// A destination record holds the request and up to 256 KB of
		// the response.
		MaxMsgSize: 1 << 20,
		Duplicates: dedupWindow,
	}
}

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
// once the event cannot be lost. The function (and qualifier) must exist.
func (e *Events) Enqueue(ctx context.Context, a Async) (string, error) {
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
	return a.RequestID, e.store(ctx, a, e.cfg.Now(), 0, time.Time{})
}

// store writes an event to the queue and waits for JetStream to hold it.
func (e *Events) store(ctx context.Context, a Async, enqueued time.Time, attempt int, notBefore time.Time) error {
	m := nats.NewMsg(asyncPrefix + a.Function)
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
	if _, err := e.cfg.JS.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("events: storing an event for %s: %w", a.Function, err)
	}
	return nil
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
// back to the queue to run later.
func (e *Events) handle(ctx context.Context, m jetstream.Msg) {
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
	t, err := e.cfg.Invoker.Resolve(q.Function, q.Qualifier)
	if err != nil {
		e.settle(ctx, m, q, t.Function, outcome{condition: conditionNotFound, err: err})
		return
	}
	f := t.Function
	age := now.Sub(q.enqueued)
	if age > time.Duration(f.Async.MaxEventAge)*time.Second {
		e.settle(ctx, m, q, f, outcome{condition: conditionAgeExceeded})
		return
	}
	e.cfg.Metrics.AsyncAge(q.Function, age)
	stop := keepAlive(m, e.cfg.AckWait/3)
	res, err := e.cfg.Invoker.Invoke(ctx, invoke.Request{Function: q.Function, Qualifier: q.Qualifier,
		Payload: q.Payload, RequestID: q.RequestID})
	stop()
	var te *pool.ThrottleError
	switch {
	case errors.As(err, &te):
		// No room now: the event waits, without using up a retry.
		e.cfg.Metrics.AsyncOutcome(q.Function, "throttled")
		n := 1
		if md, err := m.Metadata(); err == nil {
			n = int(md.NumDelivered)
		}
		m.NakWithDelay(backoff(e.cfg.ThrottleBase, e.cfg.RetryMax, n)) //nolint:errcheck // as above
	case errors.Is(err, invoke.ErrClosed) || ctx.Err() != nil:
		m.Nak() //nolint:errcheck // as above
	case errors.Is(err, registry.ErrNotFound):
		e.settle(ctx, m, q, f, outcome{condition: conditionNotFound, err: err})
	case err != nil:
		e.failed(ctx, m, q, f, outcome{err: err, attempts: q.attempt + 1})
	case res.FunctionError != "":
		e.failed(ctx, m, q, f, outcome{res: res, attempts: q.attempt + 1})
	default:
		e.settle(ctx, m, q, f, outcome{condition: conditionSuccess, res: res, attempts: q.attempt + 1})
	}
}

// failed decides after a failed attempt: retry later or give up.
func (e *Events) failed(ctx context.Context, m jetstream.Msg, q queued, f registry.Function, o outcome) {
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
// acknowledges the event. What cannot be sent now is tried again later:
// the event stays in the queue until its outcome is stored.
func (e *Events) settle(ctx context.Context, m jetstream.Msg, q queued, f registry.Function, o outcome) {
	if f.Name == "" { // the function is gone: its events go to its default dead-letter topic
		f = registry.Function{Name: q.Function}
	}
	dest, sent := "", ""
	switch o.condition {
	case conditionSuccess:
		dest = f.Async.OnSuccess
	default:
		dest = f.Async.OnFailure
	}
	if dest != "" || o.condition != conditionSuccess {
		var err error
		if sent, err = e.deliverRecord(ctx, q, f, o, dest); err != nil {
			e.log.Warn("events: sending an outcome; trying again later", "function", q.Function,
				"request_id", q.RequestID, "to", sent, "err", err)
			m.NakWithDelay(e.cfg.ThrottleBase) //nolint:errcheck // redelivered after AckWait if lost
			return
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
	m.Ack() //nolint:errcheck // as above
}

// deliverRecord sends the outcome's record to dest, or to the function's
// dead-letter topic when dest is empty or names a function that is gone.
// It returns where the record went.
func (e *Events) deliverRecord(ctx context.Context, q queued, f registry.Function, o outcome, dest string) (string, error) {
	rec := e.record(q, f, o)
	kind := "failure"
	if o.condition == conditionSuccess {
		kind = "success"
	}
	if dest != "" {
		d, err := registry.ParseDestination(dest)
		if err != nil {
			return dest, err // validated on write; cannot happen
		}
		if d.Function != "" {
			_, err := e.Enqueue(ctx, Async{Function: d.Function, Qualifier: d.Qualifier, Payload: rec,
				Trigger: TriggerDestination, DedupID: q.RequestID + "." + kind})
			if !errors.Is(err, registry.ErrNotFound) {
				return dest, err
			}
			e.log.Warn("events: a destination function is gone; the record goes to the dead-letter topic",
				"function", q.Function, "destination", dest)
			if kind == "success" {
				return dest, nil // a success record has no dead-letter topic
			}
		} else {
			return dest, e.publishRecord(ctx, d.Topic, q, f, kind, rec)
		}
	}
	topic := registry.DeadLetterTopic(f)
	return "topic:" + topic, e.publishRecord(ctx, topic, q, f, kind, rec)
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

func (e *Events) platformLog(q queued, msg string) {
	if e.cfg.Logs == nil {
		return
	}
	e.cfg.Logs.Append(telemetry.Record{Time: e.cfg.Now().UTC(), Function: q.Function, Version: q.Qualifier,
		RequestID: q.RequestID, Stream: "platform", Message: msg})
}
