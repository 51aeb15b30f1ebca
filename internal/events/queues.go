package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/pool"
)

// Each function's events are a stream of their own, so that JetStream
// bounds each queue exactly and one function's flood cannot fill another's
// room: its limits are the function's bound plus the headroom, and it
// refuses (DiscardNew) what would go past them, atomically across nodes.
// New events are checked against the bound itself (see gauge); what
// accepted events still need to store (retries, destination records,
// records kept to send later) is checked only by JetStream, so the
// headroom is theirs.
const (
	queueStreamPrefix = "wisp_async_" // + function
	queuePrefix       = "wisp.queue." // + function
)

func queueStreamName(fn string) string { return queueStreamPrefix + fn }

// ReasonQueueFull is the reason a new event is refused when its
// function's queue is full: the Invoke API's 429 says it, and so does the
// condition of a topic's delivery that went to the failure destination.
const ReasonQueueFull = "EventQueueFull"

// ErrQueueFull is a new event refused because its function's queue holds
// as many events or bytes as it may. Errors that wrap it also wrap a
// *pool.ThrottleError, which the Invoke API answers with 429.
var ErrQueueFull = errors.New("events: the function's queue is full")

func queueFull(fn string, held, heldBytes int64, b queueBound) error {
	msg := fmt.Sprintf("the queue of function %s holds %d events and %d bytes; at most %d events and %d bytes (async.max_queued_events, async.max_queued_bytes)",
		fn, held, heldBytes, b.events, b.bytes)
	return fmt.Errorf("%w: %w", ErrQueueFull, &pool.ThrottleError{Reason: ReasonQueueFull, Msg: msg})
}

// queueBound is what a function's new events are checked against.
type queueBound struct{ events, bytes int64 }

// queue is this node's handle on one function's queue.
type queue struct {
	stream jetstream.Stream
	bound  queueBound
	gauge  gauge
}

func (e *Queue) queueStreamConfig(fn string, b queueBound) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        queueStreamName(fn),
		Description: "wisp: the events (async invocations) of function " + fn,
		Subjects:    []string{queuePrefix + fn},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     b.events + e.lim.QueueHeadroomEvents,
		MaxBytes:    b.bytes + e.lim.QueueHeadroomBytes,
		// A destination record holds the request and up to 256 KB of
		// the response.
		MaxMsgSize: 1 << 20,
		Duplicates: dedupWindow,
	}
}

// boundOf is the bound of a function's queue, from its config or, for a
// function this node does not know, the node's defaults.
func (e *Queue) boundOf(fn string) queueBound {
	var maxEvents, maxBytes int64
	if t, err := e.cfg.Invoker.Resolve(fn, ""); err == nil {
		maxEvents, maxBytes = t.Function.Async.MaxQueuedEvents, t.Function.Async.MaxQueuedBytes
	}
	n, b := e.lim.queueBounds(maxEvents, maxBytes)
	return queueBound{n, b}
}

// queue returns a function's queue, making its stream if need be, with
// the bound the function's config says now: a changed bound counts at once.
func (e *Queue) queue(ctx context.Context, fn string) (*queue, error) {
	b := e.boundOf(fn)
	e.qmu.Lock()
	q := e.queues[fn]
	e.qmu.Unlock()
	if q != nil && q.bound == b {
		return q, nil
	}
	return e.openQueue(ctx, fn, b)
}

// openQueue makes or updates a function's stream with bound b. Lowering a
// bound under what the queue holds loses nothing: JetStream then refuses
// new events until it drains. A stream already as it should be is left
// alone: every node opens every queue, and an update racing a consumer's
// creation on the same stream is a data race inside nats-server.
func (e *Queue) openQueue(ctx context.Context, fn string, b queueBound) (*queue, error) {
	cfg := e.queueStreamConfig(fn, b)
	s, err := e.cfg.JS.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = e.cfg.JS.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // made meanwhile, with another bound
			s, err = e.cfg.JS.Stream(ctx, cfg.Name)
		}
	}
	if err == nil {
		if c := s.CachedInfo().Config; c.MaxMsgs != cfg.MaxMsgs || c.MaxBytes != cfg.MaxBytes {
			s, err = e.cfg.JS.UpdateStream(ctx, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("events: the queue of %s: %w", fn, err)
	}
	e.qmu.Lock()
	defer e.qmu.Unlock()
	if q := e.queues[fn]; q != nil && q.bound == b {
		return q, nil
	}
	q := &queue{stream: s, bound: b}
	e.queues[fn] = q
	return q, nil
}

// syncQueue makes a function's stream, or gives it the bound its config
// says, if this node has not already.
func (e *Queue) syncQueue(ctx context.Context, fn string) error {
	_, err := e.queue(ctx, fn)
	return err
}

func (e *Queue) forgetQueue(fn string, q *queue) {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	if e.queues[fn] == q {
		delete(e.queues, fn)
	}
}

// put stores a message in a function's queue and waits for JetStream to
// hold it. A new event (fresh) is refused with ErrQueueFull past the
// function's bound; anything else only past the stream's limits.
func (e *Queue) put(ctx context.Context, fn string, m *nats.Msg, fresh bool) error {
	size := storedSize(m)
	for try := 0; ; try++ {
		q, err := e.queue(ctx, fn)
		if err != nil {
			return err
		}
		if fresh {
			read := func(ctx context.Context) (int64, int64, error) {
				info, err := q.stream.Info(ctx)
				if err != nil {
					return 0, 0, err
				}
				return int64(info.State.Msgs), int64(info.State.Bytes), nil
			}
			if ok, held, heldBytes := q.gauge.admit(ctx, read, e.cfg.Now(), q.bound, size); !ok {
				return queueFull(fn, held, heldBytes, q.bound)
			}
		}
		_, err = e.cfg.JS.PublishMsg(ctx, m)
		q.gauge.stored(size, fresh, err == nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrNoStreamResponse) && try == 0:
			e.forgetQueue(fn, q) // its stream went: it is made again
			continue
		case isStreamFull(err) && fresh:
			return queueFull(fn, q.bound.events+e.lim.QueueHeadroomEvents, q.bound.bytes+e.lim.QueueHeadroomBytes, q.bound)
		}
		return fmt.Errorf("events: storing an event for %s: %w", fn, err)
	}
}

// isStreamFull reports whether JetStream refused a message because its
// stream is at its limits.
func isStreamFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsStoreFailed &&
		(strings.Contains(apiErr.Description, "maximum messages") || strings.Contains(apiErr.Description, "maximum bytes"))
}

// jsStoreFailed is JetStream's error code for a message it could not
// store (JSStreamStoreFailedF).
const jsStoreFailed = 10077

// storedSize is about what JetStream counts a message as in a stream's
// bytes: subject, headers and data, and its own record overhead.
func storedSize(m *nats.Msg) int64 {
	n := len(m.Subject) + len(m.Data) + 34
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
	}
	return int64(n)
}

// gauge tells whether a queue has room for one more new event. Asking
// JetStream each time would cost a request per event, so it keeps the
// stream's size as last read plus what this node stored since. On one node
// the estimate is never below the truth (events that run only shrink the
// stream; the estimate forgets only what the read counted), and it is read
// again when it is a second old or says the queue is full. Other nodes'
// events show at the next read: across nodes, a queue may pass its bound by
// what they stored meanwhile, into the headroom, where JetStream stops it
// exactly.
type gauge struct {
	mu      sync.Mutex
	msgs    int64     // guarded by mu; the stream's, as last read
	bytes   int64     // guarded by mu
	readAt  time.Time // guarded by mu; zero: never read
	reading bool      // guarded by mu; a read is under way
	// added counts what was stored since the last read began.
	added, addedBytes int64 // guarded by mu
	// pending counts new events admitted and being stored.
	pending, pendingBytes int64 // guarded by mu
}

// How often a gauge reads its stream: when its reading is this old, and,
// when it says the queue is full, at most this often.
const (
	gaugeFresh  = time.Second
	gaugeMinGap = 20 * time.Millisecond
)

// admit reserves room for a new event of size bytes, or returns false with
// what the queue holds.
func (g *gauge) admit(ctx context.Context, read func(context.Context) (int64, int64, error), now time.Time, b queueBound, size int64) (bool, int64, int64) {
	g.mu.Lock()
	full := func() bool {
		return g.msgs+g.added+g.pending+1 > b.events || g.bytes+g.addedBytes+g.pendingBytes+size > b.bytes
	}
	age := now.Sub(g.readAt)
	if !g.reading && (g.readAt.IsZero() || age >= gaugeFresh || (full() && age >= gaugeMinGap)) {
		g.reading = true
		added, addedBytes := g.added, g.addedBytes
		g.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msgs, bytes, err := read(rctx)
		cancel()
		g.mu.Lock()
		g.reading = false
		if err == nil {
			// What was stored before the read began is in it; what was
			// stored during it may be, and is counted again until the
			// next read.
			g.msgs, g.bytes, g.readAt = msgs, bytes, now
			g.added -= added
			g.addedBytes -= addedBytes
		}
	}
	defer g.mu.Unlock()
	if full() {
		return false, g.msgs + g.added + g.pending, g.bytes + g.addedBytes + g.pendingBytes
	}
	g.pending++
	g.pendingBytes += size
	return true, 0, 0
}

// stored counts a store's end: a new event's admission ends, and what was
// stored counts until the next read.
func (g *gauge) stored(size int64, fresh, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fresh {
		g.pending--
		g.pendingBytes -= size
	}
	if ok {
		g.added++
		g.addedBytes += size
	}
}

// queueInfos lists the queues' streams, by function.
func (e *Queue) queueInfos(ctx context.Context) (map[string]*jetstream.StreamInfo, error) {
	out := map[string]*jetstream.StreamInfo{}
	lister := e.cfg.JS.ListStreams(ctx, jetstream.WithStreamListSubject(queuePrefix+">"))
	for info := range lister.Info() {
		if fn, ok := strings.CutPrefix(info.Config.Name, queueStreamPrefix); ok {
			out[fn] = info
		}
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Queued returns the events stored for each function, over every node,
// waiting or running.
func (e *Queue) Queued() map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]uint64{}
	infos, err := e.queueInfos(ctx)
	if err != nil {
		e.log.Warn("events: reading the queues", "err", err)
		return out
	}
	for fn, info := range infos {
		if info.State.Msgs > 0 {
			out[fn] = info.State.Msgs
		}
	}
	return out
}
