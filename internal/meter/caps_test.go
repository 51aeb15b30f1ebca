package meter

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
)

// bus keeps what the meter publishes.
type bus struct {
	mu     sync.Mutex
	topics []string
	events []cloudevent.Event
}

func (b *bus) PublishNode(_ context.Context, topic string, ev cloudevent.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.topics = append(b.topics, topic)
	b.events = append(b.events, ev)
	return nil
}

func (b *bus) published() ([]string, []cloudevent.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.topics...), append([]cloudevent.Event(nil), b.events...)
}

// A used-up quota is told on CapTopic once per period, as a CloudEvent
// whose id names the period and whose data is the refusal.
func TestCapIsToldOnce(t *testing.T) {
	b := &bus{}
	// Mid-hour, so that the period cannot end during the test.
	now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
	m := openMeter(t, Config{Bus: b, Now: func() time.Time { return now }})
	f := registry.Function{Name: "f", MemoryMB: 128, Quota: &registry.Quota{Period: registry.PeriodHour, MaxInvocations: 1}}
	tk, err := m.Admit(f)
	if err != nil {
		t.Fatal(err)
	}
	m.Record(Record{Function: "f", Start: now, BilledMs: 1, MemoryMB: 128, Outcome: "success"}, tk)
	for range 3 {
		if _, err := m.Admit(f); err == nil {
			t.Fatal("a call past the cap was admitted")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	topics, events := b.published()
	for len(events) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		topics, events = b.published()
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	topics, events = b.published()
	if len(events) != 1 || topics[0] != CapTopic {
		t.Fatalf("published %v on %v, want one event on %s", events, topics, CapTopic)
	}
	ev := events[0]
	var ce CapError
	if err := json.Unmarshal(ev.Data, &ce); err != nil {
		t.Fatal(err)
	}
	start := now.Truncate(time.Hour)
	if want := "function/f/" + start.Format(time.RFC3339); ev.ID != want {
		t.Errorf("id %q, want %q", ev.ID, want)
	}
	if ev.Type != "wisp.cap.exceeded" || ev.Source != "wisp://meter" || ev.Subject != "f" {
		t.Errorf("type %q, source %q, subject %q", ev.Type, ev.Source, ev.Subject)
	}
	if err := ev.Validate(); err != nil {
		t.Errorf("the event is not valid: %v", err)
	}
	if ce.Function != "f" || ce.Limit != "invocations" || ce.Max != 1 {
		t.Errorf("data %+v", ce)
	}
}
