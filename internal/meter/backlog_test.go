package meter

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

func rec(fn string, i int, start time.Time) Record {
	return Record{Function: fn, Version: "$LATEST", RequestID: fmt.Sprintf("req-%06d", i), Trigger: "event",
		Start: start, DurationUs: 1500, BilledMs: 2, MemoryMB: 128, Outcome: "success"}
}

// RecordStored returns once the record can be read back, not a flush
// interval later.
func TestRecordStored(t *testing.T) {
	m := openMeter(t, Config{})
	ctx := context.Background()
	start := time.Now().UTC()
	for i := range 20 {
		if err := m.RecordStored(ctx, rec("f", i, start), nil); err != nil {
			t.Fatal(err)
		}
		recs, err := m.Records(ctx, "f", start.Add(-time.Second), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != i+1 {
			t.Fatalf("after RecordStored of record %d, %d records are stored", i, len(recs))
		}
	}
}

// While the records cannot be stored, the meter holds them up to its
// backlog and refuses calls past it; once they can be stored, they are,
// and calls run again. Nothing is lost.
func TestBacklogIsBounded(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const backlog = 64 * recordBytes
	m, err := Open(context.Background(), Config{JS: st.JS, MaxBacklog: backlog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx := context.Background()
	f := registry.Function{Name: "f", MemoryMB: 128}

	// The records' stream is gone: no record can be stored.
	cfg := m.stream.CachedInfo().Config
	if err := st.JS.DeleteStream(ctx, streamName); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC()
	admitted := 0
	for i := range 1000 {
		tk, err := m.Admit(f)
		if errors.Is(err, ErrBacklog) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		admitted++
		m.Record(rec("f", i, start), tk)
		if i%16 == 0 {
			m.flush(ctx) //nolint:errcheck // fails: the stream is gone
		}
	}
	if admitted < 32 || admitted > 80 {
		t.Fatalf("%d calls admitted with a backlog of %d records", admitted, backlog/recordBytes)
	}
	if _, err := m.Admit(f); !errors.Is(err, ErrBacklog) {
		t.Fatalf("a call with the backlog full: %v", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := m.RecordStored(waitCtx, rec("f", 10000, start), nil); err == nil {
		t.Fatal("RecordStored returned while nothing can be stored")
	}
	cancel()

	if _, err := st.JS.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := m.Admit(f); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("calls are still refused once records can be stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	recs, err := m.Records(ctx, "f", start.Add(-time.Second), 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != admitted+1 {
		t.Fatalf("%d records stored, want %d (every admitted call's, and the one waited for)", len(recs), admitted+1)
	}
}

// The node keeps only recent rollups in memory, however long it runs,
// and answers for older spans from the buckets.
func TestRollupsInMemoryAreRecent(t *testing.T) {
	now := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m := openMeter(t, Config{Now: clock})
	ctx := context.Background()
	// A record a day for 100 days, stored as they came.
	for d := range 100 {
		m.Record(rec("f", d, now.AddDate(0, 0, -99+d)), nil)
	}
	if err := m.flush(ctx); err != nil {
		t.Fatal(err)
	}
	from := BucketStart(Day, now.AddDate(0, 0, -99))
	q := Query{From: from, To: now.Add(time.Hour), Granularity: Day}
	deadline := time.Now().Add(20 * time.Second)
	for {
		u, err := m.Usage(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(u) == 1 && u[0].Invocations == 100 {
			if len(u[0].Buckets) != 100 || u[0].Buckets[0].Invocations != 1 {
				t.Fatalf("buckets %+v", u[0].Buckets[:3])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage over 100 days: %+v", u)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.rollups.prune()
	m.rollups.mu.RLock()
	held := len(m.rollups.byKey)
	m.rollups.mu.RUnlock()
	// 41 days and 49 hours of f and of the node, at most.
	if held > 2*(41+49) {
		t.Errorf("%d rollups held in memory after 100 days of use", held)
	}
	// Quotas still see the recent ones.
	if u := m.rollupOf(rollupKey(Day, "f", now)); u.Invocations != 1 {
		t.Errorf("today's rollup in memory: %+v", u)
	}
	// And a span of old days only, from the buckets.
	u, err := m.Usage(ctx, Query{Functions: []string{"f"}, From: from, To: from.AddDate(0, 0, 10), Granularity: Day})
	if err != nil || len(u) != 1 || u[0].Invocations != 10 {
		t.Fatalf("10 old days: %+v %v", u, err)
	}
	_ = jetstream.KeyValuePut
}
