package events

import (
	"context"
	"testing"
	"time"
)

// TestGauge: the gauge admits new events up to the bound from what the
// stream held when read plus what was stored since, reads again when it
// says full, and never says there is room that was not there.
func TestGauge(t *testing.T) {
	var g gauge
	b := queueBound{events: 3, bytes: 1000}
	held, heldBytes, reads := int64(0), int64(0), 0
	read := func(context.Context) (int64, int64, error) {
		reads++
		return held, heldBytes, nil
	}
	now := time.Unix(1000, 0)
	admit := func(size int64) bool {
		ok, _, _ := g.admit(context.Background(), read, now, b, size)
		if ok {
			g.stored(size, true, true)
			held++
			heldBytes += size
		}
		return ok
	}
	for i := range 3 {
		if !admit(100) {
			t.Fatalf("event %d refused under the bound", i)
		}
	}
	if reads != 1 {
		t.Errorf("%d reads for three events in an instant, want 1", reads)
	}
	if admit(100) {
		t.Fatal("a fourth event admitted at a bound of 3")
	}
	// One ran: the stream shrank, which the gauge learns only by reading,
	// and it reads again when it says full (not more than every 20ms).
	held--
	heldBytes -= 100
	if admit(100) {
		t.Error("admitted in the same instant as a read that said full")
	}
	now = now.Add(gaugeMinGap)
	if !admit(100) {
		t.Error("refused after an event ran and the gauge read again")
	}
	// Bytes: 300 held, 1000 at most.
	g = gauge{}
	held, heldBytes = 0, 300
	if ok, _, _ := g.admit(context.Background(), read, now, b, 701); ok {
		t.Error("admitted 701 bytes onto 300 in 1000")
	}
	if ok, _, _ := g.admit(context.Background(), read, now, b, 700); !ok {
		t.Error("refused 700 bytes onto 300 in 1000")
	}
	// An event admitted and being stored counts, so two callers cannot
	// both take the last room.
	g = gauge{}
	held, heldBytes = 2, 0
	if ok, _, _ := g.admit(context.Background(), read, now, b, 1); !ok {
		t.Fatal("the last room refused")
	}
	if ok, _, _ := g.admit(context.Background(), read, now, b, 1); ok {
		t.Error("the last room given twice while the first was being stored")
	}
	g.stored(1, true, false) // the first failed to store: its room is free again
	if ok, _, _ := g.admit(context.Background(), read, now.Add(time.Second), b, 1); !ok {
		t.Error("the room of a failed store was not given back")
	}
}
