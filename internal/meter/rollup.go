package meter

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

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

// What a node keeps of the rollups in memory: the spans quotas need (an
// hour, a day, a month) and recent queries read. Older rollups stay in
// their buckets, read when a query asks for them; so memory does not grow
// with the node's age.
const (
	keepHours = 48 * time.Hour
	keepDays  = 40 * 24 * time.Hour
)

func rollupKey(granularity, fn string, t time.Time) string {
	t = t.UTC()
	if granularity == Hour {
		return "h." + fn + "." + t.Format("2006010215")
	}
	return "d." + fn + "." + t.Format("20060102")
}

// parseKey splits a rollup key into its granularity, function and
// bucket start.
func parseKey(key string) (granularity, fn string, start time.Time, ok bool) {
	g, rest, ok1 := strings.Cut(key, ".")
	i := strings.LastIndexByte(rest, '.')
	if !ok1 || i <= 0 {
		return "", "", time.Time{}, false
	}
	fn, stamp := rest[:i], rest[i+1:]
	var err error
	switch g {
	case "h":
		granularity = Hour
		start, err = time.Parse("2006010215", stamp)
	case "d":
		granularity = Day
		start, err = time.Parse("20060102", stamp)
	default:
		return "", "", time.Time{}, false
	}
	return granularity, fn, start, err == nil
}

// rollups is this node's copy of the recent rollups.
type rollups struct {
	now   func() time.Time
	mu    sync.RWMutex
	byKey map[string]rollup // guarded by mu
}

// recent says whether a bucket is one the node keeps in memory.
func (r *rollups) recent(granularity string, start, now time.Time) bool {
	if granularity == Hour {
		return !start.Before(now.Add(-keepHours).Truncate(time.Hour))
	}
	return !start.Before(BucketStart(Day, now.Add(-keepDays)))
}

func (r *rollups) applyEntry(entry jetstream.KeyValueEntry) {
	var v rollup
	if entry.Operation() == jetstream.KeyValuePut && json.Unmarshal(entry.Value(), &v) == nil {
		r.apply(entry.Key(), v)
	}
}

// apply keeps the newest of what this node wrote and what the watch saw,
// for a recent bucket.
func (r *rollups) apply(key string, v rollup) {
	g, _, start, ok := parseKey(key)
	if !ok || !r.recent(g, start, r.now()) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byKey[key]; !ok || v.Seq > old.Seq {
		r.byKey[key] = v
	}
}

// prune forgets buckets that are no longer recent.
func (r *rollups) prune() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for key := range r.byKey {
		if g, _, start, ok := parseKey(key); !ok || !r.recent(g, start, now) {
			delete(r.byKey, key)
		}
	}
}

func (r *rollups) of(key string) Usage {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byKey[key].Usage
}

// functions lists every function with a recent rollup.
func (r *rollups) functions() []string {
	r.mu.RLock()
	seen := map[string]bool{}
	for key := range r.byKey {
		if _, fn, _, ok := parseKey(key); ok && fn != nodeScope {
			seen[fn] = true
		}
	}
	r.mu.RUnlock()
	out := make([]string, 0, len(seen))
	for fn := range seen {
		out = append(out, fn)
	}
	slices.Sort(out)
	return out
}

// rollupOf is a recent rollup's usage (quotas ask only for recent ones).
func (m *Meter) rollupOf(key string) Usage { return m.rollups.of(key) }

// load reads the rollups of a span that is not all recent from their
// bucket: those of fns (all functions when empty) at one granularity.
func (m *Meter) load(ctx context.Context, granularity string, fns []string, from, to time.Time) (map[string]Usage, error) {
	kv, g := m.daily, "d"
	if granularity == Hour {
		kv, g = m.hourly, "h"
	}
	filters := []string{g + ".*.*"}
	if len(fns) > 0 {
		filters = filters[:0]
		for _, fn := range fns {
			filters = append(filters, g+"."+fn+".*")
		}
	}
	w, err := kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop() //nolint:errcheck // read to its end
	out := map[string]Usage{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case entry, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("meter: the rollup watch ended early")
			}
			if entry == nil {
				return out, nil // caught up
			}
			_, _, start, ok := parseKey(entry.Key())
			var v rollup
			if ok && !start.Before(from) && start.Before(to) && json.Unmarshal(entry.Value(), &v) == nil {
				out[entry.Key()] = v.Usage
			}
		}
	}
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
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
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
		m.rollups.apply(key, r)
	}
	return err
}

// bucket is the bucket of a rollup key.
func (m *Meter) bucket(key string) jetstream.KeyValue {
	if strings.HasPrefix(key, "h.") {
		return m.hourly
	}
	return m.daily
}
