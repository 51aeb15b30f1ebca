package meter

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

func openMeter(t *testing.T, cfg Config) *Meter {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.JS = st.JS
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// Many records of one function at once are stored in messages NATS takes,
// every one once, and rolled up.
func TestManyRecordsAreStored(t *testing.T) {
	m := openMeter(t, Config{})
	start := time.Now().UTC()
	const n = 12000 // about 3 MB of records
	for i := range n {
		m.Record(Record{Function: "busy", Version: "$LATEST", RequestID: fmt.Sprintf("req-%06d", i), Trigger: "sync",
			Start: start, DurationUs: 1500, BilledMs: 2, MemoryMB: 128, Outcome: "success"}, nil)
	}
	if err := m.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := m.Records(context.Background(), "busy", start.Add(-time.Second), 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d records stored, want %d", len(recs), n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, err := m.Usage(context.Background(), Query{Functions: []string{"busy"}, From: start, To: start.Add(time.Hour), Granularity: Hour})
		if err != nil {
			t.Fatal(err)
		}
		if u[0].Invocations == n && u[0].MBms == n*256 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollup %+v, want %d invocations", u[0].Usage, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Calls admitted at once never pass a cap, and a call that did not run
// gives its place back.
func TestAdmitIsExact(t *testing.T) {
	m := openMeter(t, Config{Quota: &registry.Quota{Period: registry.PeriodDay, MaxInvocations: 50}})
	f := registry.Function{Name: "f", MemoryMB: 128, Quota: &registry.Quota{Period: registry.PeriodHour, MaxInvocations: 5}}
	var (
		mu      sync.Mutex
		tickets []*Ticket
		wg      sync.WaitGroup
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tk, err := m.Admit(f); err == nil {
				mu.Lock()
				tickets = append(tickets, tk)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(tickets) != 5 {
		t.Fatalf("%d calls admitted under a cap of 5", len(tickets))
	}
	// Two did not run: their places come back.
	m.Release(tickets[0])
	m.Release(tickets[1])
	for _, tk := range tickets[2:] {
		m.Record(Record{Function: "f", Start: time.Now(), BilledMs: 1, MemoryMB: 128, Outcome: "success"}, tk)
	}
	for i := range 2 {
		if _, err := m.Admit(f); err != nil {
			t.Fatalf("call %d after two released: %v", i, err)
		}
	}
	_, err := m.Admit(f)
	ce, ok := err.(*CapError)
	if !ok || ce.Scope != "function" || ce.Limit != "invocations" || ce.Used != 5 || ce.Max != 5 {
		t.Fatalf("the sixth call: %v", err)
	}
	// The node's cap counts every function.
	g := registry.Function{Name: "g", MemoryMB: 128}
	admitted := 0
	for range 100 {
		if _, err := m.Admit(g); err == nil {
			admitted++
		}
	}
	if admitted != 50-5 {
		t.Errorf("%d calls of g admitted under the node's cap of 50 with 5 of f", admitted)
	}
}
