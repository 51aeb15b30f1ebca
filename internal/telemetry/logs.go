// Package telemetry owns what invocations leave behind for people to read:
// function logs, kept in a JetStream stream bounded in size and age, and the
// platform lines (START, END, REPORT) Lambda writes around each invocation.
package telemetry

import (
	"bytes"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The logs stream: one subject per function, wisp.logs.<function>.
const (
	LogStream        = "wisp_logs"
	logSubjectPrefix = "wisp.logs."
)

// Defaults of LogsConfig, and the limit on one record's message.
const (
	DefaultLogMaxAge     = 7 * 24 * time.Hour
	DefaultLogMaxBytes   = 1 << 30
	DefaultLogMaxPending = 8192
	// MaxMessageBytes bounds a record's message, as CloudWatch bounds a log
	// event; Append cuts longer ones.
	MaxMessageBytes = 256 << 10
)

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
)

// LogsConfig bounds the logs. The zero value means the defaults.
type LogsConfig struct {
	// MaxAge is how long a record is kept; default 7 days.
	MaxAge time.Duration
	// MaxBytes bounds the stream; the oldest records go first. Default 1 GiB.
	MaxBytes int64
	// MaxPending bounds the records appended and not yet sent to the server;
	// Append drops (and counts) records beyond it rather than wait. Default
	// 8192.
	MaxPending int
	Logger     *slog.Logger
	// Now is the clock; default time.Now. It stamps records appended without
	// a time.
	Now func() time.Time
}

// Record is one line of a function's log.
type Record struct {
	Time      time.Time `json:"time"`
	Function  string    `json:"function"`
	Version   string    `json:"version"`
	Instance  string    `json:"instance,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	// Stream is where the line came from: stdout, stderr, or "platform" for
	// the START, END and REPORT lines.
	Stream  string `json:"stream,omitempty"`
	Message string `json:"message"`
}

// LogStats counts records since OpenLogs.
type LogStats struct {
	Queued  int64 // accepted by Append
	Dropped int64 // refused by Append: too many pending, closed, or a bad function name
	Failed  int64 // accepted, but the server did not store them
}

// Logs appends function logs to the stream and reads them back. Append is
// cheap and never waits for the server: a goroutine sends the records on.
type Logs struct {
	js     jetstream.JetStream
	pub    jetstream.JetStream // the records' own publisher, so its pending count and completion are theirs alone
	stream jetstream.Stream
	log    *slog.Logger
	now    func() time.Time
	// batchBytes bounds a message of records: maxBatchBytes, or less for
	// a small stream, so a batch never outgrows it.
	batchBytes int

	mu     sync.RWMutex // guards closed; Append holds it while it sends on queue
	closed bool
	queue  chan item

	stop      chan struct{} // closed by Close: send what is queued and end
	abort     chan struct{} // closed when Close gives up: drop what is left
	abortOnce sync.Once
	done      chan struct{} // closed when the sending goroutine has ended

	stopFollow     chan struct{} // closed by StopFollowing
	stopFollowOnce sync.Once

	queued, dropped, failed atomic.Int64
	lastWarn                atomic.Int64 // unix nanoseconds of the last warning about lost records

	// lostAtFlush is dropped+failed at the last Flush. The sending
	// goroutine owns it; Close reads it once done is closed.
	lostAtFlush int64
}

// item is a record to send, or a Flush waiting for everything before it.
type item struct {
	rec     Record
	flushed chan error // non-nil for a Flush
}

// OpenLogs creates the logs stream, or updates its limits, and starts
// sending appended records to it. Close stops it.
func OpenLogs(ctx context.Context, js jetstream.JetStream, cfg LogsConfig) (*Logs, error) {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultLogMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultLogMaxBytes
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultLogMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        LogStream,
		Description: "wisp function logs",
		Subjects:    []string{logSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: logs stream: %w", err)
	}
	l := &Logs{
		js: js, stream: stream, log: cfg.Logger, now: cfg.Now,
		batchBytes: int(min(maxBatchBytes, cfg.MaxBytes/16)),
		queue:      make(chan item, cfg.MaxPending),
		stop:       make(chan struct{}),
		abort:      make(chan struct{}),
		done:       make(chan struct{}),
		stopFollow: make(chan struct{}),
	}
	l.pub, err = publisher(js, cfg.MaxPending, func(_ jetstream.JetStream, _ *nats.Msg, err error) {
		l.lose(&l.failed, "not stored", err)
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: logs publisher: %w", err)
	}
	go l.send()
	return l, nil
}

// publisher is a JetStream context on js's connection and API for the
// records alone.
func publisher(js jetstream.JetStream, maxPending int, onErr jetstream.MsgErrHandler) (jetstream.JetStream, error) {
	o := js.Options()
	opts := []jetstream.JetStreamOpt{
		jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncErrHandler(onErr),
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

// Append queues rec for the stream and returns at once. When MaxPending
// records are already waiting, or the logs are closed, it drops rec and
// counts it (see Stats), logging a warning now and then. A record without
// a time is stamped now; a message over MaxMessageBytes is cut.
func (l *Logs) Append(rec Record) {
	if !validToken(rec.Function) {
		l.lose(&l.dropped, fmt.Sprintf("bad function name %q", rec.Function), nil)
		return
	}
	if rec.Time.IsZero() {
		rec.Time = l.now()
	}
	if len(rec.Message) > MaxMessageBytes {
		rec.Message = cut(rec.Message, MaxMessageBytes-len(truncated)) + truncated
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.lose(&l.dropped, "logs closed", nil)
		return
	}
	select {
	case l.queue <- item{rec: rec}:
		l.queued.Add(1)
	default:
		l.lose(&l.dropped, "too many records pending", nil)
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
	return LogStats{Queued: l.queued.Load(), Dropped: l.dropped.Load(), Failed: l.failed.Load()}
}

// Flush waits until every record appended before it is stored, or ctx
// ends. It fails when records were lost (dropped or not stored) since the
// previous Flush.
func (l *Logs) Flush(ctx context.Context) error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return errors.New("telemetry: logs closed")
	}
	flushed := make(chan error, 1)
	// The queue is never closed; once the goroutine has ended, Close has
	// stored or counted everything.
	select {
	case l.queue <- item{flushed: flushed}:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("telemetry: flushing logs: %w", ctx.Err())
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
		l.pub.CleanupPublisher() // fails what waits for an ack, so done comes soon
		<-l.done
		return fmt.Errorf("telemetry: closing logs: %w (%d records lost since the last flush)", ctx.Err(), l.lost()-l.lostAtFlush)
	}
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

// StopFollowing ends every Read that follows, now and later, as if it had
// caught up. A node calls it as its HTTP server shuts down, so streams
// that would never end let the shutdown finish.
func (l *Logs) StopFollowing() {
	l.stopFollowOnce.Do(func() { close(l.stopFollow) })
}

// send is the goroutine that publishes the queued records, in order. It
// ends after Close, once what was queued is stored or given up on.
func (l *Logs) send() {
	defer close(l.done)
	for {
		select {
		case it := <-l.queue:
			l.handleBatch(l.gather(it))
		case <-l.stop:
			for {
				select {
				case it := <-l.queue:
					l.handle(it)
				default:
					l.waitStored()
					return
				}
			}
		}
	}
}

func (l *Logs) lost() int64 { return l.dropped.Load() + l.failed.Load() }

// Batches: records queued together are stored as one message per function
// (NDJSON), which costs the stream far less than a message per line.
const (
	maxBatchRecords = 256
	maxBatchBytes   = 512 << 10
)

// gather returns it and the records queued behind it, up to a flush.
func (l *Logs) gather(it item) []item {
	items := []item{it}
	for it.flushed == nil && len(items) < maxBatchRecords {
		select {
		case it = <-l.queue:
			items = append(items, it)
		default:
			return items
		}
	}
	return items
}

// handleBatch publishes a batch's records, one message per run of records
// of one function, in order, and then answers a flush at its end.
func (l *Logs) handleBatch(items []item) {
	var (
		fn   string
		data []byte
	)
	publish := func() {
		if len(data) > 0 {
			l.publish(fn, data)
		}
		data = data[:0]
	}
	for _, it := range items {
		if it.flushed != nil {
			publish()
			l.handle(it)
			continue
		}
		line, err := json.Marshal(it.rec)
		if err != nil {
			l.lose(&l.failed, "not encodable", err)
			continue
		}
		if it.rec.Function != fn || len(data)+len(line) > l.batchBytes {
			publish()
			fn = it.rec.Function
		}
		data = append(append(data, line...), '\n')
	}
	publish()
}

func (l *Logs) handle(it item) {
	if it.flushed != nil {
		l.waitStored()
		lost := l.lost()
		it.flushed <- lostError(lost - l.lostAtFlush)
		l.lostAtFlush = lost
		return
	}
	select {
	case <-l.abort:
		l.failed.Add(1)
		return
	default:
	}
	data, err := json.Marshal(it.rec)
	if err != nil {
		l.lose(&l.failed, "not encodable", err)
		return
	}
	l.publish(it.rec.Function, data)
}

// publish sends one message of records of a function.
func (l *Logs) publish(function string, data []byte) {
	select {
	case <-l.abort:
		l.failed.Add(1)
		return
	default:
	}
	// The publisher keeps data until the server answers.
	data = bytes.Clone(data)
	subject := logSubjectPrefix + function
	var err error
	for {
		_, err = l.pub.PublishAsync(subject, data)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			break
		}
		// MaxPending records wait for the server: wait with them (Append
		// drops meanwhile) unless Close gave up.
		select {
		case <-l.abort:
			l.failed.Add(1)
			return
		default:
		}
	}
	if err != nil {
		l.lose(&l.failed, "not sent", err)
	}
}

// waitStored waits until the server has answered for every record sent,
// which ackTimeout bounds, or Close gives up.
func (l *Logs) waitStored() {
	select {
	case <-l.pub.PublishAsyncComplete():
	case <-l.abort:
	}
}

// Read calls fn for the function's records from since on (the zero time:
// all that are kept), oldest first, only those of requestID unless it is
// empty. Without follow it returns once it has caught up with what the
// stream held when it started; with follow it waits for new records until
// ctx ends (returning ctx's error) or StopFollowing is called (returning
// nil). An error from fn ends Read with that error.
func (l *Logs) Read(ctx context.Context, function string, since time.Time, requestID string, follow bool, fn func(Record) error) error {
	if !validToken(function) {
		return fmt.Errorf("telemetry: %q is not a function name", function)
	}
	subject := logSubjectPrefix + function
	var last uint64 // without follow: the last record's sequence when Read started
	if !follow {
		seq, err := l.lastSeq(ctx, subject, since)
		if err != nil || seq == 0 {
			return err
		}
		last = seq
	}

	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
	}
	defer l.deleteConsumer(ctx, cons)
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
	}
	defer msgs.Stop()

	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := false
	if follow {
		stopped = func() bool {
			select {
			case <-l.stopFollow:
				return true
			default:
				return false
			}
		}()
		go func() {
			select {
			case <-l.stopFollow:
				cancel()
			case <-readCtx.Done():
			}
		}()
	}

	var delivered uint64 // the sequence of the last record delivered
	for !stopped {
		nextCtx, cancelNext := readCtx, context.CancelFunc(func() {})
		if !follow {
			nextCtx, cancelNext = context.WithTimeout(readCtx, idleRecheck)
		}
		msg, err := msgs.Next(jetstream.NextContext(nextCtx))
		cancelNext()
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && follow && readCtx.Err() != nil:
			return nil // StopFollowing
		case err != nil && !follow && errors.Is(err, context.DeadlineExceeded):
			// The record awaited may have aged out while Read waited.
			seq, err := l.lastSeq(ctx, subject, since)
			if err != nil {
				return err
			}
			if seq <= delivered {
				return nil
			}
			continue
		case err != nil:
			return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
		}
		delivered = meta.Sequence.Stream
		for line := range bytes.SplitSeq(bytes.TrimRight(msg.Data(), "\n"), []byte("\n")) {
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				l.log.Warn("telemetry: skipping a log record that is not JSON", "function", function, "seq", delivered, "err", err)
				continue
			}
			if requestID != "" && rec.RequestID != requestID {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if !follow && (delivered >= last || meta.NumPending == 0) {
			return nil
		}
	}
	return nil
}

// lastSeq is the sequence of the subject's last record, or 0 when there is
// none or it is older than since.
func (l *Logs) lastSeq(ctx context.Context, subject string, since time.Time) (uint64, error) {
	m, err := l.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("telemetry: reading the logs of %s: %w", strings.TrimPrefix(subject, logSubjectPrefix), err)
	}
	if !since.IsZero() && m.Time.Before(since) {
		return 0, nil
	}
	return m.Sequence, nil
}

// deleteConsumer removes a Read's consumer from the server at once rather
// than leave it to expire.
func (l *Logs) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.js.DeleteConsumer(ctx, LogStream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("telemetry: deleting a log reader's consumer", "consumer", info.Name, "err", err)
	}
}
