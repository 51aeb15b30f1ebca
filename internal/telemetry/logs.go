// Package telemetry owns what invocations leave behind for people to read:
// function logs, kept in a JetStream stream per function bounded in size
// and age, the platform lines (START, END, REPORT) Lambda writes around
// each invocation, and the node's metrics.
package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/apitype"
)

// Defaults of LogsConfig, and the limit on one record's message.
const (
	DefaultLogMaxAge   = 7 * 24 * time.Hour
	DefaultLogMaxBytes = 64 << 20
	DefaultLogRate     = 1 << 20
	// DefaultLogBurst is how many seconds of its rate a function may log
	// at once.
	DefaultLogBurst       = 4
	DefaultLogMaxBuffered = 16 << 20
	DefaultLogMaxWait     = 5 * time.Second
	// MaxMessageBytes bounds a record's message, as CloudWatch bounds a log
	// event; Append cuts longer ones.
	MaxMessageBytes = 256 << 10
)

// StreamPlatform is the stream of the lines the platform writes itself:
// START, END, REPORT, and the notes of dropped records.
const StreamPlatform = "platform"

const (
	// ackTimeout bounds how long a record waits for the server to store it,
	// so Flush and Close end even when the server is gone.
	ackTimeout = 10 * time.Second
	// warnEvery spaces out the warnings about lost records.
	warnEvery = 10 * time.Second
	// idleRecheck is how long a Read that does not follow waits for a record
	// it expects before it asks the stream whether that record is still there.
	idleRecheck = 2 * time.Second
	truncated   = " [truncated]"
	// minBuffered is the least MaxBuffered may be: room for the largest
	// record, with the platform's share beside it.
	minBuffered = 4 << 20
)

// LogsConfig bounds the logs. The zero value means the defaults.
type LogsConfig struct {
	// DefaultMaxBytes bounds the stream of a function that does not set
	// logs.max_bytes; the oldest records go first. Default 64 MiB.
	DefaultMaxBytes int64
	// DefaultMaxAge is how long a record is kept when its function does
	// not set logs.max_age; default 7 days.
	DefaultMaxAge time.Duration
	// Rate bounds the bytes of log each function writes per second on
	// this node, and Burst how many it may write at once; past them its
	// records are dropped, counted, and noted in its log. Defaults 1 MiB
	// a second and DefaultLogBurst seconds of Rate.
	Rate, Burst int64
	// MaxBuffered bounds the bytes of records the node holds: queued, or
	// sent and not yet stored. AppendWait waits while it is full. Default
	// 16 MiB, at least 4 MiB.
	MaxBuffered int64
	// MaxWait bounds how long AppendWait waits for room before it drops
	// its record; default 5s.
	MaxWait time.Duration
	// Registry says what each function keeps of its log and when that
	// changes. Nil: every function keeps the defaults, and its stream
	// lives as long as the data.
	Registry Registry
	// CanWrite, if set, says whether the state store takes writes now;
	// while it does not (a full disk), records are dropped (reason
	// "disk") rather than sent to fail.
	CanWrite func() bool
	// Metrics counts the bytes dropped; nil: none.
	Metrics *Metrics
	Logger  *slog.Logger
	// Now is the clock; default time.Now. It stamps records appended without
	// a time, and runs the rates.
	Now func() time.Time
}

func (cfg LogsConfig) withDefaults() LogsConfig {
	if cfg.DefaultMaxAge <= 0 {
		cfg.DefaultMaxAge = DefaultLogMaxAge
	}
	if cfg.DefaultMaxBytes <= 0 {
		cfg.DefaultMaxBytes = DefaultLogMaxBytes
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultLogRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultLogBurst * cfg.Rate
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = DefaultLogMaxBuffered
	}
	cfg.MaxBuffered = max(cfg.MaxBuffered, minBuffered)
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultLogMaxWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// Record is one line of a function's log.
type Record = apitype.LogRecord

// LogStats counts records since OpenLogs.
type LogStats struct {
	Queued  int64 // accepted by Append
	Dropped int64 // refused by Append: no room, closed, or a bad function name
	Failed  int64 // accepted, but the server did not store them
	// OverRate were dropped for their function's rate, Gone because
	// their function is deleted (its logs with it), DiskFull because the
	// node's disk was: by design, each counted and noted, so they are not
	// lost to Flush and Close.
	OverRate, Gone, DiskFull int64
}

// Logs appends function logs to their streams and reads them back. Append
// never waits for the server and AppendWait only for room: goroutines send
// the records on and count what the server stored.
type Logs struct {
	cfg     LogsConfig
	js      jetstream.JetStream
	pub     jetstream.JetStream // the records' own publisher, so its pending count and completion are theirs alone
	log     *slog.Logger
	now     func() time.Time
	streams *logStreams
	rates   *rates
	room    *budget
	flight  *budget // the bytes of messages sent and not yet stored

	mu     sync.Mutex // guards closed and queue
	closed bool
	queue  []item
	wake   chan struct{} // buffered 1: the queue has items

	sent       chan sent     // the sender's messages, in order, to the acker
	stop       chan struct{} // closed by Close: send what is queued and end
	abort      chan struct{} // closed when Close gives up: drop what is left
	abortOnce  sync.Once
	cancelSend context.CancelFunc // ends the sender's calls to the server, when Close gives up
	done       chan struct{}      // closed when the sender and the acker have ended
	watchDone  chan struct{}      // closed when the registry's follower has ended
	stopWatch  context.CancelFunc

	stopFollow     chan struct{} // closed by StopFollowing
	stopFollowOnce sync.Once

	queued, dropped, failed, overRate, gone, diskFull atomic.Int64
	lastWarn                                          atomic.Int64 // unix nanoseconds of the last warning about lost records

	// lostAtFlush is dropped+failed at the last Flush. The acker owns it;
	// Close reads it once done is closed.
	lostAtFlush int64
}

// item is a record to send, or a Flush waiting for everything before it.
type item struct {
	function string
	line     []byte     // the record's JSON
	cost     int64      // what the record counts for (recordCost)
	held     int64      // the bytes of the budget it holds
	flushed  chan error // non-nil for a Flush
}

// OpenLogs starts sending appended records to their functions' streams,
// and following the registry to keep each stream's limits those of its
// function. It deletes the stream of a function that is gone, and the
// stream every function's logs shared before they had one each. Close
// stops it.
func OpenLogs(ctx context.Context, js jetstream.JetStream, cfg LogsConfig) (*Logs, error) {
	cfg = cfg.withDefaults()
	l := &Logs{
		cfg: cfg, js: js, log: cfg.Logger, now: cfg.Now,
		streams:    newLogStreams(js, cfg),
		rates:      newRates(cfg.Rate, cfg.Burst),
		room:       newBudget(cfg.MaxBuffered),
		flight:     newBudget(maxFlightBytes),
		wake:       make(chan struct{}, 1),
		sent:       make(chan sent, maxPendingMessages),
		stop:       make(chan struct{}),
		abort:      make(chan struct{}),
		done:       make(chan struct{}),
		watchDone:  make(chan struct{}),
		stopFollow: make(chan struct{}),
	}
	if err := l.streams.dropShared(ctx); err != nil {
		return nil, err
	}
	var err error
	if l.pub, err = publisher(js); err != nil {
		return nil, fmt.Errorf("telemetry: logs publisher: %w", err)
	}
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	l.stopWatch = stopWatch
	if cfg.Registry == nil {
		close(l.watchDone)
	} else {
		changes, err := cfg.Registry.Watch(wctx)
		if err != nil {
			stopWatch()
			return nil, fmt.Errorf("telemetry: following the registry: %w", err)
		}
		go func() {
			defer close(l.watchDone)
			l.streams.follow(wctx, changes, l.forget)
		}()
	}
	sctx, cancelSend := context.WithCancel(context.Background())
	l.cancelSend = cancelSend
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		l.ack()
	}()
	go func() {
		defer close(l.done)
		l.send(sctx)
		<-acked
	}()
	return l, nil
}

// publisher is a JetStream context on js's connection and API for the
// records alone.
func publisher(js jetstream.JetStream) (jetstream.JetStream, error) {
	o := js.Options()
	opts := []jetstream.JetStreamOpt{
		jetstream.WithPublishAsyncMaxPending(maxPendingMessages),
		jetstream.WithPublishAsyncTimeout(ackTimeout),
	}
	if o.DefaultTimeout > 0 {
		opts = append(opts, jetstream.WithDefaultTimeout(o.DefaultTimeout))
	}
	switch {
	case o.Domain != "":
		return jetstream.NewWithDomain(js.Conn(), o.Domain, opts...)
	case o.APIPrefix != "":
		return jetstream.NewWithAPIPrefix(js.Conn(), o.APIPrefix, opts...)
	}
	return jetstream.New(js.Conn(), opts...)
}

// Append queues rec for its function's stream and returns at once: it is
// for the platform's own lines, and for writers that cannot wait. A
// function's own line over its rate is dropped; so is a record the
// node's buffer has no room for (platform lines have a share of it kept
// for them), or one appended after Close. Drops are counted (see Stats
// and the metric wisp_log_dropped_bytes_total) and noted in the
// function's log. A record without a time is stamped now; a message over
// MaxMessageBytes is cut.
func (l *Logs) Append(rec Record) { l.append(rec, nil, false) }

// AppendWait is Append for a writer that can wait, such as an instance's
// output: while the node's buffer is full it waits, so a function that
// floods its log is slowed down rather than the node filled up. It gives
// up, dropping rec, once done is closed or MaxWait has passed.
func (l *Logs) AppendWait(done <-chan struct{}, rec Record) { l.append(rec, done, true) }

func (l *Logs) append(rec Record, done <-chan struct{}, wait bool) {
	if !validToken(rec.Function) {
		l.lose(&l.dropped, fmt.Sprintf("bad function name %q", rec.Function), nil)
		return
	}
	now := l.now()
	if rec.Time.IsZero() {
		rec.Time = now
	}
	if len(rec.Message) > MaxMessageBytes {
		rec.Message = cut(rec.Message, MaxMessageBytes-len(truncated)) + truncated
	}
	cost := recordCost(rec)
	platform := rec.Stream == StreamPlatform
	if !platform {
		ok, notes := l.rates.take(rec.Function, rec.Version, cost, now)
		for _, n := range notes {
			l.note(n, now)
		}
		if !ok {
			l.drop(rec, DropRate, cost, now)
			return
		}
	}
	if l.cfg.CanWrite != nil && !l.cfg.CanWrite() {
		l.drop(rec, DropDisk, cost, now)
		return
	}
	line, err := encode(rec)
	if err != nil {
		l.lose(&l.dropped, "not encodable", err)
		return
	}
	it := item{function: rec.Function, line: line, cost: cost, held: int64(cap(line)) + itemOverhead}
	var timeout <-chan time.Time
	if wait {
		// The timer only when there is no room now: a flood must not pay
		// for one per line.
		if !l.room.tryTake(it.held, false) {
			t := time.NewTimer(l.cfg.MaxWait)
			defer t.Stop()
			timeout = t.C
			if !l.room.take(it.held, done, timeout) {
				l.drop(rec, DropFull, cost, now)
				return
			}
		}
	} else if !l.room.tryTake(it.held, platform) {
		l.drop(rec, DropFull, cost, now)
		return
	}
	if !l.enqueue(it) {
		l.room.give(it.held)
		l.drop(rec, DropClosed, cost, now)
	}
}

// enqueue adds it to the queue, unless the logs are closed.
func (l *Logs) enqueue(it item) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, it)
	l.mu.Unlock()
	if it.flushed == nil {
		l.queued.Add(1)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// note appends the platform line that says a function's records were
// dropped.
func (l *Logs) note(n dropNote, now time.Time) {
	rec := Record{Time: now, Function: n.function, Version: n.version, Stream: StreamPlatform, Message: n.message(l.cfg.Rate)}
	line, err := encode(rec)
	if err != nil {
		l.lose(&l.dropped, "not encodable", err)
		return
	}
	it := item{function: rec.Function, line: line, cost: recordCost(rec), held: int64(cap(line)) + itemOverhead}
	if !l.room.tryTake(it.held, true) {
		l.lose(&l.dropped, "no room for a note of dropped records", nil)
		return
	}
	if !l.enqueue(it) {
		l.room.give(it.held)
		l.lose(&l.dropped, "logs closed", nil)
	}
}

// drop counts a record not kept, for the metric and its function's note.
func (l *Logs) drop(rec Record, reason string, cost int64, now time.Time) {
	l.cfg.Metrics.LogDropped(rec.Function, reason, cost)
	if reason != DropClosed {
		l.rates.dropped(rec.Function, rec.Version, reason, cost, now)
	}
	switch reason {
	case DropRate:
		l.overRate.Add(1) // told in the function's log, not the node's
		return
	case DropDisk:
		l.diskFull.Add(1) // the store says so in the node's log
		return
	}
	l.lose(&l.dropped, "dropped: "+reason, nil)
}

// forget drops what telemetry keeps about a deleted function: its rate
// and its metrics' series (its stream goes with it too).
func (l *Logs) forget(function string) {
	l.rates.forget(function)
	l.cfg.Metrics.ForgetFunction(function)
}

// The reasons records are dropped, as the metric labels them.
const (
	DropRate   = "rate"   // the function wrote past its rate
	DropFull   = "full"   // the node's buffer was full: the server took them too slowly
	DropDisk   = "disk"   // the node's disk was full
	DropClosed = "closed" // the logs were closing
	DropFailed = "failed" // sent, but the server did not store them
)

// itemOverhead is what a queued record costs the node beside its JSON.
const itemOverhead = 64

// recordCost is what a record counts for against its function's rate: its
// message and fields, and as much again as a record's JSON adds to them,
// so that a flood of empty lines is bounded too. Records are not encoded
// before the rate lets them in.
func recordCost(rec Record) int64 {
	return int64(len(rec.Message)+len(rec.Function)+len(rec.Version)+len(rec.Instance)+len(rec.RequestID)+len(rec.Stream)) + recordEnvelope
}

// recordEnvelope is about what a record's JSON adds to its fields: names,
// quotes, the time.
const recordEnvelope = 112

// encode is rec's JSON, cut further if escapes made it much longer than
// its message (a line of control characters grows six times).
func encode(rec Record) ([]byte, error) {
	for {
		line, err := json.Marshal(rec)
		if err != nil || len(line) <= 2*MaxMessageBytes || len(rec.Message) < 1024 {
			return line, err
		}
		rec.Message = cut(rec.Message, len(rec.Message)/2) + truncated
	}
}

// cut returns the longest prefix of s of at most n bytes that ends on a
// rune boundary.
func cut(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// validToken reports whether s can be one token of a subject.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// lose counts a lost record and warns, at most every warnEvery.
func (l *Logs) lose(counter *atomic.Int64, why string, err error) {
	counter.Add(1)
	now, last := l.now().UnixNano(), l.lastWarn.Load()
	if now-last < int64(warnEvery) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"why", why, "dropped", l.dropped.Load(), "failed", l.failed.Load()}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	l.log.Warn("telemetry: function log records lost", attrs...)
}

// Stats counts the records queued, dropped and not stored so far.
func (l *Logs) Stats() LogStats {
	return LogStats{Queued: l.queued.Load(), Dropped: l.dropped.Load(), Failed: l.failed.Load(), OverRate: l.overRate.Load(), Gone: l.gone.Load(),
		DiskFull: l.diskFull.Load()}
}

// Buffered is the bytes of records the node holds now: queued, or sent and
// not yet stored.
func (l *Logs) Buffered() int64 { return l.room.held() }

// Flush waits until every record appended before it is stored, or ctx
// ends. It fails when records were lost (dropped, other than for their
// function's rate, or not stored) since the previous Flush.
func (l *Logs) Flush(ctx context.Context) error {
	flushed := make(chan error, 1)
	if !l.enqueue(item{flushed: flushed}) {
		return errors.New("telemetry: logs closed")
	}
	select {
	case err := <-flushed:
		return err
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("telemetry: flushing logs: %w", ctx.Err())
	}
}

// Close stops taking records, stores the ones appended (or gives up on them
// when ctx ends) and ends every Read that follows. It fails when records
// were lost since the last Flush.
func (l *Logs) Close(ctx context.Context) error {
	l.StopFollowing()
	l.stopWatch()
	l.mu.Lock()
	wasClosed := l.closed
	l.closed = true
	l.mu.Unlock()
	if !wasClosed {
		close(l.stop)
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		l.abortOnce.Do(func() { close(l.abort) })
		l.cancelSend()
		l.pub.CleanupPublisher() // fails what waits for an ack, so done comes soon
		<-l.done
		<-l.watchDone
		return fmt.Errorf("telemetry: closing logs: %w (%d records lost since the last flush)", ctx.Err(), l.lost()-l.lostAtFlush)
	}
	<-l.watchDone
	if wasClosed {
		return nil
	}
	return lostError(l.lost() - l.lostAtFlush)
}

func lostError(n int64) error {
	if n == 0 {
		return nil
	}
	return fmt.Errorf("telemetry: %d function log records lost (dropped or not stored)", n)
}

func (l *Logs) lost() int64 { return l.dropped.Load() + l.failed.Load() }

// StopFollowing ends every Read that follows, now and later, as if it had
// caught up. A node calls it as its HTTP server shuts down, so streams
// that would never end let the shutdown finish.
func (l *Logs) StopFollowing() {
	l.stopFollowOnce.Do(func() { close(l.stopFollow) })
}
