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
	"strings"
	"sync"
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
	// hundred bytes per function-day) for ever.
	recordMaxAge = 31 * 24 * time.Hour
	hourlyMaxAge = 93 * 24 * time.Hour
	// flushEvery bounds how long a record waits in memory to be stored
	// with others; a node killed loses at most that much.
	flushEvery = 100 * time.Millisecond
	// maxBatchBytes bounds one stored message of records, well under
	// NATS's 1 MiB.
	maxBatchBytes = 256 << 10
	// kickAt is how many pending records make a flush start at once.
	kickAt = 1000
)

// Config is what a Meter needs; JS is required.
type Config struct {
	JS     jetstream.JetStream
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
	Prices *Prices // default LambdaX86
	// Quota caps every function together; nil: none.
	Quota *Quota
	// Publish tells a topic that a cap was reached; nil: no one is told.
	Publish func(ctx context.Context, topic string, capErr *CapError) error
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
	pending map[string][]Record // guarded by mu; by function
	npend   int                 // guarded by mu
	// unsent are batches a flush failed to store, kept whole with their
	// ids so that one stored after all is not stored twice. Guarded by mu.
	unsent []batch
	closed bool // guarded by mu
	kick   chan struct{}

	rmu     sync.RWMutex
	rollups map[string]rollup   // guarded by rmu; by key
	fns     map[string]struct{} // guarded by rmu; the functions with a rollup

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
	m := &Meter{cfg: cfg, log: cfg.Logger, prices: LambdaX86, pending: map[string][]Record{},
		kick: make(chan struct{}, 1), rollups: map[string]rollup{}, fns: map[string]struct{}{},
		caps: capState{local: map[capKey]*localUsage{}, told: map[capKey]bool{}}}
	if cfg.Prices != nil {
		m.prices = *cfg.Prices
	}
	var err error
	if m.stream, err = cfg.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Description: "wisp: a usage record of every invocation",
		Subjects: []string{subjectPre + ">"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: recordMaxAge, MaxMsgSize: 4 << 20,
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
		History: 1, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, fmt.Errorf("meter: rollup bucket: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	for _, kv := range []jetstream.KeyValue{m.hourly, m.daily} {
		ready := make(chan struct{})
		m.goLoop(func() { store.Follow(lctx, kv, m.applyEntry, ready, m.log) })
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

// Record takes an invocation's usage, and gives back its ticket (nil if
// it had none); the record is stored within flushEvery.
func (m *Meter) Record(r Record, t *Ticket) {
	m.recordLocal(r, t)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.log.Error("meter: a usage record came after the meter closed; it is lost", "function", r.Function, "request_id", r.RequestID)
		return
	}
	m.pending[r.Function] = append(m.pending[r.Function], r)
	m.npend++
	full := m.npend == kickAt
	m.mu.Unlock()
	if full {
		select {
		case m.kick <- struct{}{}:
		default:
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
	fn   string
	id   string
	data []byte
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
	m.mu.Lock()
	todo := m.unsent
	for fn, recs := range m.pending {
		var buf bytes.Buffer
		for i, r := range recs {
			line, _ := json.Marshal(r) // a Record always marshals
			buf.Write(line)
			buf.WriteByte('\n')
			if buf.Len() >= maxBatchBytes || i == len(recs)-1 {
				todo = append(todo, batch{fn: fn, id: batchID(), data: bytes.Clone(buf.Bytes())})
				buf.Reset()
			}
		}
	}
	m.pending, m.npend, m.unsent = map[string][]Record{}, 0, nil
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

// rollup is a function's usage in one hour or one day, and the last
// record message counted in it, so a message rolled up twice counts once.
type rollup struct {
	Usage
	Seq uint64 `json:"seq"`
}

// Granularities of rollups.
const (
	Hour = "hour"
	Day  = "day"
)

func rollupKey(granularity, fn string, t time.Time) string {
	t = t.UTC()
	if granularity == Hour {
		return "h." + fn + "." + t.Format("2006010215")
	}
	return "d." + fn + "." + t.Format("20060102")
}

// rollUp adds each stored record message to its rollups, in order, once:
// one durable consumer that every node pulls from, one message at a time.
func (m *Meter) rollUp(ctx context.Context) {
	var cons jetstream.Consumer
	for cons == nil {
		var err error
		cons, err = m.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: rollupName, Description: "wisp: rolls usage records up per hour and day",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1, MaxDeliver: -1,
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Warn("meter: the rollup consumer", "err", err)
			time.Sleep(time.Second)
		}
	}
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			continue // nothing came, or the node is stopping
		}
		if err := m.rollOne(ctx, msg); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("meter: rolling up usage; trying again", "err", err)
			}
			msg.NakWithDelay(time.Second) //nolint:errcheck // redelivered after AckWait if lost
			continue
		}
		msg.Ack() //nolint:errcheck // redelivered and skipped (by Seq) if lost
	}
}

func (m *Meter) rollOne(ctx context.Context, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return err
	}
	recs, err := decodeRecords(msg.Data())
	if err != nil {
		m.log.Error("meter: an unreadable usage message is not rolled up", "seq", md.Sequence.Stream, "err", err)
		return nil
	}
	sums := map[string]Usage{}
	for _, r := range recs {
		for _, g := range []string{Hour, Day} {
			for _, fn := range []string{r.Function, nodeScope} {
				k := rollupKey(g, fn, r.Start)
				u := sums[k]
				u.Add(r)
				sums[k] = u
			}
		}
	}
	for k, u := range sums {
		if err := m.addRollup(ctx, k, u, md.Sequence.Stream); err != nil {
			return err
		}
	}
	return nil
}

// addRollup adds u to a rollup, unless message seq was counted in it.
func (m *Meter) addRollup(ctx context.Context, key string, u Usage, seq uint64) error {
	r, err := store.UpdateJSON(ctx, m.bucket(key), key, func(r *rollup, _ bool) (bool, error) {
		if r.Seq >= seq {
			return false, nil // counted before
		}
		r.Usage, r.Seq = r.Usage.Plus(u), seq
		return true, nil
	})
	if err == nil {
		m.apply(key, r)
	}
	return err
}

func (m *Meter) applyEntry(entry jetstream.KeyValueEntry) {
	var r rollup
	if entry.Operation() == jetstream.KeyValuePut && json.Unmarshal(entry.Value(), &r) == nil {
		m.apply(entry.Key(), r)
	}
}

// apply keeps the newest of what this node wrote and what the watch saw.
func (m *Meter) apply(key string, r rollup) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	if old, ok := m.rollups[key]; !ok || r.Seq > old.Seq {
		m.rollups[key] = r
	}
	// h.<function>.<hour> or d.<function>.<day>
	if i, j := strings.IndexByte(key, '.'), strings.LastIndexByte(key, '.'); i > 0 && j > i {
		if fn := key[i+1 : j]; fn != nodeScope {
			m.fns[fn] = struct{}{}
		}
	}
}

func (m *Meter) rollupOf(key string) Usage {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return m.rollups[key].Usage
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
func (m *Meter) Usage(q Query) ([]FunctionUsage, error) {
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
	fns := q.Functions
	if len(fns) == 0 {
		fns = m.functions()
	}
	out := []FunctionUsage{}
	for _, fn := range fns {
		fu := FunctionUsage{Function: fn, Buckets: []Bucket{}}
		for t := from; t.Before(to); t = t.Add(step) {
			u := m.rollupOf(rollupKey(q.Granularity, fn, t))
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

// functions lists every function with a rollup, by name.
func (m *Meter) functions() []string {
	m.rmu.RLock()
	out := make([]string, 0, len(m.fns))
	for fn := range m.fns {
		out = append(out, fn)
	}
	m.rmu.RUnlock()
	slices.Sort(out)
	return out
}

// bucket is the bucket of a rollup key.
func (m *Meter) bucket(key string) jetstream.KeyValue {
	if strings.HasPrefix(key, "h.") {
		return m.hourly
	}
	return m.daily
}
