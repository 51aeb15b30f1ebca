package meter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

const (
	streamName   = "wisp_usage"
	subjectPre   = "wisp.usage." // + function
	hourlyBucket = "wisp_usage_hourly"
	dailyBucket  = "wisp_usage_daily"
	rollupName   = "rollup"
	// Records are kept 31 days, hourly rollups 93, daily rollups (a few
	// hundred bytes per function-day) 400, for a year's bills.
	recordMaxAge = 31 * 24 * time.Hour
	hourlyMaxAge = 93 * 24 * time.Hour
	dailyMaxAge  = 400 * 24 * time.Hour
	// flushEvery bounds how long a record waits in memory to be stored
	// with others; a node killed loses at most that much.
	flushEvery = 100 * time.Millisecond
	// maxBatchBytes bounds one stored message of records, well under
	// NATS's 1 MiB.
	maxBatchBytes = 256 << 10
	// kickAt is how many pending records make a flush start at once.
	kickAt = 1000
	// DefaultMaxBacklog bounds the records held in memory, waiting to be
	// stored: 64 MiB is minutes of a busy node's records while NATS
	// cannot take them.
	DefaultMaxBacklog = 64 << 20
	// recordBytes is what a record waiting to be stored is counted as.
	recordBytes = 256
)

// ErrBacklog is a call refused because the usage records of earlier calls
// cannot be stored yet and the meter holds all it may: a call that could
// not be metered does not run.
var ErrBacklog = errors.New("meter: usage records cannot be stored now; calls are refused until they are")

// Config is what a Meter needs; JS is required.
type Config struct {
	JS     jetstream.JetStream
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
	Prices *Prices // default LambdaX86
	// Quota caps every function together; nil: none.
	Quota *Quota
	// Bus is told, on CapTopic, that a cap was reached; nil: no one is.
	Bus Bus
	// MaxBacklog bounds the bytes of records held waiting to be stored;
	// past it, Admit refuses calls (ErrBacklog). Default DefaultMaxBacklog.
	MaxBacklog int64
	// MaxBytes bounds the records' stream; the oldest go first (their
	// rollups stay). Default: only their age bounds them.
	MaxBytes int64
}

// Meter records usage and answers for it.
type Meter struct {
	cfg    Config
	log    *slog.Logger
	prices Prices
	stream jetstream.Stream
	hourly jetstream.KeyValue
	daily  jetstream.KeyValue

	mu      sync.Mutex
	pending map[string][]pendingRecord // guarded by mu; by function
	npend   int                        // guarded by mu
	// unsent are batches a flush failed to store, kept whole with their
	// ids so that one stored after all is not stored twice. Guarded by mu.
	unsent []batch
	closed bool // guarded by mu
	kick   chan struct{}
	// backlog is the bytes of pending and unsent records (guarded by
	// mu); full mirrors backlog > MaxBacklog for Admit's fast path.
	backlog int64
	full    atomic.Bool
	// flushMu makes one flush wait for another, so that a flush returns
	// once everything recorded before it is stored (or kept to retry).
	flushMu sync.Mutex

	rollups rollups

	caps capState

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Open creates the stream and bucket if need be and starts the flusher,
// the roll-up and the watch that keeps this node's copy of the rollups.
func Open(ctx context.Context, cfg Config) (*Meter, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = DefaultMaxBacklog
	}
	m := &Meter{cfg: cfg, log: cfg.Logger, prices: LambdaX86, pending: map[string][]pendingRecord{},
		kick: make(chan struct{}, 1), rollups: rollups{byKey: map[string]rollup{}, now: cfg.Now},
		caps: capState{local: map[capKey]*localUsage{}, told: map[capKey]bool{}}}
	if cfg.Prices != nil {
		m.prices = *cfg.Prices
	}
	var err error
	if m.stream, err = cfg.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Description: "wisp: a usage record of every invocation",
		Subjects: []string{subjectPre + ">"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: recordMaxAge, MaxMsgSize: 4 << 20,
		MaxBytes: bytesLimit(cfg.MaxBytes), Discard: jetstream.DiscardOld,
	}); err != nil {
		return nil, fmt.Errorf("meter: usage stream: %w", err)
	}
	if m.hourly, err = cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: hourlyBucket, Description: "wisp: usage per function per hour",
		History: 1, Storage: jetstream.FileStorage, TTL: hourlyMaxAge,
	}); err != nil {
		return nil, fmt.Errorf("meter: rollup bucket: %w", err)
	}
	if m.daily, err = cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: dailyBucket, Description: "wisp: usage per function per day",
		History: 1, Storage: jetstream.FileStorage, TTL: dailyMaxAge,
	}); err != nil {
		return nil, fmt.Errorf("meter: rollup bucket: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	for _, kv := range []jetstream.KeyValue{m.hourly, m.daily} {
		ready := make(chan struct{})
		m.goLoop(func() { store.Follow(lctx, kv, m.rollups.applyEntry, ready, m.log) })
		select {
		case <-ready:
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		case <-time.After(time.Minute):
			cancel()
			return nil, errors.New("meter: rollups did not load within a minute")
		}
	}
	m.goLoop(func() { m.flushLoop(lctx) })
	m.goLoop(func() { m.rollUp(lctx) })
	return m, nil
}

func (m *Meter) goLoop(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Close stores what is pending and stops; a record that comes after is
// lost, and logged.
func (m *Meter) Close(ctx context.Context) error {
	m.stop()
	m.wg.Wait()
	err := m.flush(ctx)
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return err
}

// Prices is the node's price table.
func (m *Meter) Prices() Prices { return m.prices }

// bytesLimit is a stream's MaxBytes for n: n, or none (-1) for 0.
func bytesLimit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// pendingRecord is a record waiting to be stored, and who waits for it.
type pendingRecord struct {
	rec    Record
	stored chan error // nil: no one waits
}

// Record takes an invocation's usage, and gives back its ticket (nil if
// it had none); the record is stored within flushEvery, so a node killed
// loses at most that much of its calls' records.
func (m *Meter) Record(r Record, t *Ticket) {
	m.record(r, t, nil)
}

// RecordStored is Record that waits until the record is stored, or ctx
// ends. It starts a flush at once: records waited for together are
// stored together. A record not stored when ctx ends stays, to be stored
// later.
func (m *Meter) RecordStored(ctx context.Context, r Record, t *Ticket) error {
	stored := make(chan error, 1)
	if !m.record(r, t, stored) {
		return errors.New("meter: closed")
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-stored:
		return err
	case <-ctx.Done():
		return fmt.Errorf("meter: the usage record of %s is not stored yet: %w", r.RequestID, ctx.Err())
	}
}

func (m *Meter) record(r Record, t *Ticket, stored chan error) bool {
	m.recordLocal(r, t)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.log.Error("meter: a usage record came after the meter closed; it is lost", "function", r.Function, "request_id", r.RequestID)
		return false
	}
	m.pending[r.Function] = append(m.pending[r.Function], pendingRecord{r, stored})
	m.npend++
	m.addBacklogLocked(recordBytes)
	full := m.npend == kickAt
	m.mu.Unlock()
	if full {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// addBacklogLocked counts n more (or, negative, fewer) bytes of records
// waiting to be stored.
func (m *Meter) addBacklogLocked(n int64) {
	m.backlog += n
	full := m.backlog > m.cfg.MaxBacklog
	if m.full.Swap(full) != full {
		if full {
			m.log.Error("meter: usage records cannot be stored and the backlog is full: calls are refused",
				"backlog_bytes", m.backlog)
		} else {
			m.log.Info("meter: usage records are stored again: calls are let through")
		}
	}
}

func (m *Meter) flushLoop(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.forgetLocal(m.cfg.Now())
			m.rollups.prune()
		case <-m.kick:
		}
		if err := m.flush(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("meter: storing usage records; trying again", "err", err)
		}
	}
}

// batch is one message of records, NDJSON, with the id that makes
// storing it twice store it once.
type batch struct {
	fn     string
	id     string
	data   []byte
	stored []chan error // of the records waited for
	// counted is what the batch's records add to the backlog.
	counted int64
}

// batchID is a random id for a batch.
func batchID() string {
	var b [12]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// flush stores the pending records, in messages of one function each of
// at most maxBatchBytes; what fails is kept, whole, for the next flush.
func (m *Meter) flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	m.mu.Lock()
	todo := m.unsent
	for fn, recs := range m.pending {
		var (
			buf    bytes.Buffer
			stored []chan error
			n      int64
		)
		for i, p := range recs {
			line, _ := json.Marshal(p.rec) // a Record always marshals
			buf.Write(line)
			buf.WriteByte('\n')
			n += recordBytes
			if p.stored != nil {
				stored = append(stored, p.stored)
			}
			if buf.Len() >= maxBatchBytes || i == len(recs)-1 {
				todo = append(todo, batch{fn: fn, id: batchID(), data: bytes.Clone(buf.Bytes()), stored: stored, counted: n})
				buf.Reset()
				stored, n = nil, 0
			}
		}
	}
	m.pending, m.npend, m.unsent = map[string][]pendingRecord{}, 0, nil
	m.mu.Unlock()
	var errs []error
	for i, b := range todo {
		if _, err := m.cfg.JS.Publish(ctx, subjectPre+b.fn, b.data, jetstream.WithMsgID(b.id)); err != nil {
			errs = append(errs, err)
			m.mu.Lock()
			m.unsent = append(m.unsent, todo[i:]...)
			m.mu.Unlock()
			break // the next flush tries again
		}
		for _, c := range b.stored {
			c <- nil
		}
		m.mu.Lock()
		m.addBacklogLocked(-b.counted)
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

func decodeRecords(data []byte) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Records returns up to limit usage records of a function that started at
// or after from, oldest first.
func (m *Meter) Records(ctx context.Context, function string, from time.Time, limit int) ([]Record, error) {
	info, err := m.stream.Info(ctx, jetstream.WithSubjectFilter(subjectPre+function))
	if err != nil {
		return nil, err
	}
	out := []Record{}
	if info.State.Subjects[subjectPre+function] == 0 {
		return out, nil
	}
	// Records are stored within moments of their start; a little slack
	// covers long invocations and batching.
	start := from.Add(-16 * time.Minute)
	c, err := m.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjectPre + function}, InactiveThreshold: 10 * time.Second,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
	})
	if err != nil {
		return nil, err
	}
	// Fetch waits for a full batch; the last message says when there is
	// no more.
	for done := false; !done && len(out) < limit; {
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		done = true
		for msg := range batch.Messages() {
			recs, err := decodeRecords(msg.Data())
			if err != nil {
				return nil, fmt.Errorf("meter: a usage message: %w", err)
			}
			for _, r := range recs {
				if !r.Start.Before(from) && len(out) < limit {
					out = append(out, r)
				}
			}
			md, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			if done = md.NumPending == 0; done {
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	}
	return out, nil
}

// Bucket is a function's usage in one hour or day.
type Bucket struct {
	Start time.Time `json:"start"`
	Usage
	GBSeconds float64 `json:"gb_seconds"`
	Cost      float64 `json:"cost"`
}

// FunctionUsage is a function's usage over a query's span, and by bucket.
type FunctionUsage struct {
	Function string `json:"function"`
	Usage
	GBSeconds float64  `json:"gb_seconds"`
	Cost      float64  `json:"cost"`
	Buckets   []Bucket `json:"buckets"`
}

// Report is the answer of GET /v1/usage: the usage of each function over
// [From, To), by hour or day, its cost at the node's prices, and AWS
// Lambda's x86 prices to compare them with.
type Report struct {
	Granularity string          `json:"granularity"`
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Prices      Prices          `json:"prices"`
	LambdaX86   Prices          `json:"lambda_x86_prices"`
	Functions   []FunctionUsage `json:"functions"`
	// Total is every function's usage together; its Start is From.
	Total Bucket `json:"total"`
}

// Query selects usage: functions (all when empty), the buckets that start
// in [From, To), by hour or day.
type Query struct {
	Functions   []string
	From, To    time.Time
	Granularity string
}

// BucketStart is the start of the hour or day (UTC) that holds t.
func BucketStart(granularity string, t time.Time) time.Time {
	if granularity == Hour {
		return t.UTC().Truncate(time.Hour)
	}
	return t.UTC().Truncate(24 * time.Hour)
}

// MaxBuckets bounds the buckets of one query.
const MaxBuckets = 24 * 93

// Usage answers a query from the rollups: every function that used
// anything in the span, by name, each with every bucket of the span.
// Recent buckets are in memory; older ones are read from their bucket.
func (m *Meter) Usage(ctx context.Context, q Query) ([]FunctionUsage, error) {
	step := 24 * time.Hour
	if q.Granularity == Hour {
		step = time.Hour
	} else if q.Granularity != Day {
		return nil, fmt.Errorf("granularity %q must be hour or day", q.Granularity)
	}
	from, to := BucketStart(q.Granularity, q.From), q.To.UTC()
	if !to.After(from) {
		return nil, errors.New("the span is empty: from must be before to")
	}
	if n := to.Sub(from) / step; n > MaxBuckets {
		return nil, fmt.Errorf("%d buckets; at most %d (use day granularity or a shorter span)", n, MaxBuckets)
	}
	of := m.rollupOf
	fns := q.Functions
	if !m.rollups.recent(q.Granularity, from, m.cfg.Now()) {
		old, err := m.load(ctx, q.Granularity, q.Functions, from, to)
		if err != nil {
			return nil, fmt.Errorf("meter: reading rollups: %w", err)
		}
		now := m.cfg.Now()
		of = func(key string) Usage {
			if g, _, start, ok := parseKey(key); ok && m.rollups.recent(g, start, now) {
				return m.rollupOf(key) // this node's copy is the newest
			}
			return old[key]
		}
		if len(fns) == 0 {
			seen := map[string]bool{}
			for key := range old {
				if _, fn, _, ok := parseKey(key); ok && fn != nodeScope {
					seen[fn] = true
				}
			}
			for _, fn := range m.rollups.functions() {
				seen[fn] = true
			}
			for fn := range seen {
				fns = append(fns, fn)
			}
			slices.Sort(fns)
		}
	} else if len(fns) == 0 {
		fns = m.rollups.functions()
	}
	out := []FunctionUsage{}
	for _, fn := range fns {
		fu := FunctionUsage{Function: fn, Buckets: []Bucket{}}
		for t := from; t.Before(to); t = t.Add(step) {
			u := of(rollupKey(q.Granularity, fn, t))
			fu.Usage = fu.Usage.Plus(u)
			fu.Buckets = append(fu.Buckets, Bucket{Start: t, Usage: u, GBSeconds: u.GBSeconds(), Cost: m.prices.Cost(u)})
		}
		if fu.Invocations == 0 && len(q.Functions) == 0 {
			continue
		}
		fu.GBSeconds, fu.Cost = fu.Usage.GBSeconds(), m.prices.Cost(fu.Usage)
		out = append(out, fu)
	}
	return out, nil
}
