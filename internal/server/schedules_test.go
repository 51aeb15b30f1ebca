package server_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/server"
)

// toNextTick moves the clock just past the next multiple of period.
func toNextTick(c *clock, period time.Duration) time.Time {
	now := c.Now()
	tick := now.Truncate(period).Add(period)
	c.Advance(tick.Sub(now) + 500*time.Millisecond)
	return tick
}

// scheduledEvent is EventBridge's Scheduled Event.
type scheduledEvent struct {
	Version    string         `json:"version"`
	ID         string         `json:"id"`
	DetailType string         `json:"detail-type"`
	Source     string         `json:"source"`
	Time       time.Time      `json:"time"`
	Resources  []string       `json:"resources"`
	Detail     map[string]any `json:"detail"`
}

// TestSchedules: on a test clock, each tick fires once with an event
// shaped like EventBridge's; ticks missed while no node ran are skipped,
// or caught up once.
func TestSchedules(t *testing.T) {
	needTool(t, "node")
	clock := newClock()
	n := startNode(t, server.Config{RetryBase: fastRetry, Now: clock.Now})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "ticker", apitype.Config{Schedules: &[]apitype.Schedule{{Name: "five", Expression: "rate(5 minutes)"}}})
	n.deployRecorder(t, rec, "catcher", apitype.Config{Schedules: &[]apitype.Schedule{{Expression: "*/5 * * * *", Timezone: "Asia/Kolkata", CatchUp: true}}})
	ctx := context.Background()
	check := func() {
		t.Helper()
		if err := n.Events().CheckSchedules(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check() // the schedules start now: nothing was missed

	tick := toNextTick(clock, 5*time.Minute)
	check()
	check() // a second look at the same tick fires nothing
	waitUntil(t, 20*time.Second, "both schedules fire", func() bool { return len(rec.of("ticker")) == 1 && len(rec.of("catcher")) == 1 })
	var ev scheduledEvent
	c := rec.of("ticker")[0]
	if err := json.Unmarshal(c.Event, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Source != "aws.events" || ev.DetailType != "Scheduled Event" || !ev.Time.Equal(tick) || ev.ID != c.ID ||
		len(ev.Resources) != 1 || ev.Resources[0] != "arn:aws:events:us-east-1:000000000000:rule/ticker-five" {
		t.Errorf("scheduled event %+v (request id %s, tick %s)", ev, c.ID, tick)
	}

	// An hour with no node: ticker skips the 12 ticks, catcher fires the
	// latest once.
	clock.Advance(time.Hour + 3*time.Minute)
	check()
	check()
	waitUntil(t, 20*time.Second, "catcher catches up", func() bool { return len(rec.of("catcher")) == 2 })
	time.Sleep(500 * time.Millisecond)
	if got := len(rec.of("ticker")); got != 1 {
		t.Errorf("ticker ran %d times after missed ticks, want them skipped", got)
	}
	if got := len(rec.of("catcher")); got != 2 {
		t.Errorf("catcher ran %d times, want one catch-up", got)
	}
	toNextTick(clock, 5*time.Minute)
	check()
	waitUntil(t, 20*time.Second, "the next tick fires", func() bool { return len(rec.of("ticker")) == 2 })

	list, err := n.c.Schedules(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Function != "catcher" || list[0].Name != "schedule-1" || list[1].Name != "five" ||
		list[1].Next.Sub(clock.Now()) > 5*time.Minute || list[1].Next.Before(clock.Now()) {
		t.Errorf("schedules %+v", list)
	}
}

// TestScheduleTicksOnceAcrossNodes: two nodes sharing one NATS, checking
// the same schedules at the same moments, fire every tick exactly once.
func TestScheduleTicksOnceAcrossNodes(t *testing.T) {
	needTool(t, "node")
	clock := newClock()
	a := startNode(t, server.Config{RetryBase: fastRetry, Now: clock.Now, NATSListen: "127.0.0.1:0"})
	b := startNode(t, server.Config{RetryBase: fastRetry, Now: clock.Now, NATSURL: a.NATSURL()})
	rec := newRecorder(t)
	a.deployRecorder(t, rec, "tick", apitype.Config{Schedules: &[]apitype.Schedule{{Expression: "rate(1 minute)"}}})
	waitUntil(t, 5*time.Second, "node b sees the function", func() bool { return len(b.Registry().Functions()) == 1 })
	ctx := context.Background()
	checkBoth := func() {
		var wg sync.WaitGroup
		for _, n := range []funcNode{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.Events().CheckSchedules(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	checkBoth()
	const ticks = 10
	want := map[int64]bool{}
	for range ticks {
		want[toNextTick(clock, time.Minute).Unix()] = true
		checkBoth()
	}
	waitUntil(t, 30*time.Second, "every tick runs", func() bool { return len(rec.of("tick")) >= ticks })
	time.Sleep(time.Second) // a duplicate would come now
	calls := rec.of("tick")
	if len(calls) != ticks {
		t.Errorf("%d runs for %d ticks", len(calls), ticks)
	}
	for _, c := range calls {
		var ev scheduledEvent
		if err := json.Unmarshal(c.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if !want[ev.Time.Unix()] {
			t.Errorf("tick %s ran but was not due, or ran twice", ev.Time)
		}
		delete(want, ev.Time.Unix())
	}
}
