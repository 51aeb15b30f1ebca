package server_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/server"
	"github.com/wisp-dev/wisp/internal/store"
)

// The streams of the layout before a stream per function and per topic,
// as nodes of that layout made them.
var (
	legacyQueue = jetstream.StreamConfig{Name: "wisp_async", Subjects: []string{"wisp.async.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew,
		MaxMsgSize: 1 << 20, Duplicates: 2 * time.Minute}
	legacyBus = jetstream.StreamConfig{Name: "wisp_events", Subjects: []string{"wisp.events.>"},
		Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardOld,
		MaxAge: 7 * 24 * time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 1 << 20, Duplicates: 2 * time.Minute}
)

// TestLegacyMigration: events queued in the old shared queue stream all
// run after an upgrade; of the old shared topic stream's events, the one
// its router had not delivered is delivered once and the one it had is
// not delivered again, and both stay readable on their topic; then the old
// streams are gone.
func TestLegacyMigration(t *testing.T) {
	needTool(t, "node")
	ctx := context.Background()
	dir := t.TempDir()
	rec := newRecorder(t)
	n := startNode(t, server.Config{DataDir: dir})
	n.deployRecorder(t, rec, "worker", apitype.Config{Timeout: ptr2(30)})
	if _, err := n.c.Subscribe(ctx, apitype.Subscription{Topic: "shop", Function: "worker"}); err != nil {
		t.Fatal(err)
	}
	n.stop(t)

	// What nodes of the old layout left: five events queued, and two on
	// the topic, the first of them delivered.
	st, err := store.Open(ctx, store.Config{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.JS.CreateStream(ctx, legacyQueue); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)
		ids = append(ids, id)
		m := nats.NewMsg("wisp.async.worker")
		m.Data = []byte(fmt.Sprintf(`{"old": %d}`, i))
		m.Header.Set("Wisp-Request-Id", id)
		m.Header.Set("Wisp-Function", "worker")
		m.Header.Set("Wisp-Trigger", "event")
		m.Header.Set("Wisp-Enqueued", strconv.FormatInt(time.Now().UnixNano(), 10))
		if _, err := st.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	bus, err := st.JS.CreateStream(ctx, legacyBus)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"delivered", "undelivered"} {
		m := nats.NewMsg("wisp.events.shop")
		m.Data = []byte(`{"specversion":"1.0","id":"` + id + `","source":"/shop","type":"t","data":{"was":"` + id + `"}}`)
		m.Header.Set("Wisp-Principal", "admin")
		if _, err := st.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	router, err := bus.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "router", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := router.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, server.Config{DataDir: dir, NATSListen: "127.0.0.1:0", RetryBase: fastRetry})
	waitUntil(t, 60*time.Second, "the old events run", func() bool { return len(rec.of("worker")) >= 6 })
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{legacyQueue.Name, legacyBus.Name} {
		waitUntil(t, 30*time.Second, "the old stream "+name+" is deleted", func() bool {
			_, err := js.Stream(ctx, name)
			return errors.Is(err, jetstream.ErrStreamNotFound)
		})
	}
	waitUntil(t, 10*time.Second, "worker's queue empties", func() bool { return n.Events().Queued()["worker"] == 0 })
	ran := map[string]int{}
	for _, c := range rec.of("worker") {
		ran[c.ID]++
		if ev, err := cloudevent.Parse(c.Event); err == nil {
			ran[ev.ID]++
		}
	}
	for _, id := range append(ids, "undelivered") {
		if ran[id] != 1 {
			t.Errorf("%s ran %d times, want once", id, ran[id])
		}
	}
	if ran["delivered"] != 0 {
		t.Errorf("the event delivered before the upgrade was delivered again")
	}
	list, err := n.Events().Read(ctx, "shop", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, te := range list {
		ev, err := cloudevent.Parse(te.Event)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ev.ID+"/"+te.Principal)
	}
	if fmt.Sprint(seen) != "[delivered/admin undelivered/admin]" {
		t.Errorf("shop holds %v, want both old events, as published by admin", seen)
	}
}
