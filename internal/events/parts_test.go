package events

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

// functions is a registry of fixed functions and an invoker that runs
// them by noting their payloads.
type functions struct {
	fns []registry.Function
	mu  sync.Mutex
	ran map[string][][]byte // guarded by mu; payloads by function
}

func newFunctions(fns ...registry.Function) *functions {
	for i := range fns {
		fns[i].Async = registry.AsyncConfig{MaxEventAge: registry.MaxEventAge}
	}
	return &functions{fns: fns, ran: map[string][][]byte{}}
}

func (f *functions) Functions() []registry.Function { return f.fns }

func (f *functions) Watch(context.Context) (<-chan registry.Change, error) {
	return make(chan registry.Change), nil
}

func (f *functions) Resolve(name, _ string) (registry.Target, error) {
	for _, fn := range f.fns {
		if fn.Name == name {
			return registry.Target{Function: fn, Version: registry.Latest}, nil
		}
	}
	return registry.Target{}, registry.ErrNotFound
}

func (f *functions) Invoke(_ context.Context, req invoke.Request) (*invoke.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran[req.Function] = append(f.ran[req.Function], req.Payload)
	return &invoke.Response{Payload: []byte("null"), Version: registry.Latest}, nil
}

// waitRan waits for function fn to have run n events, and returns their
// payloads.
func (f *functions) waitRan(t *testing.T, fn string, n int) [][]byte {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		ran := slices.Clone(f.ran[fn])
		f.mu.Unlock()
		if len(ran) >= n || time.Now().After(deadline) {
			if len(ran) != n {
				t.Fatalf("%s ran %d events, want %d", fn, len(ran), n)
			}
			return ran
		}
	}
}

// registryResolver is what the Bus asks of the registry.
type registryResolver struct{ *functions }

func (r registryResolver) Resolve(name, qualifier string, _ func() float64) (registry.Target, error) {
	return r.functions.Resolve(name, qualifier)
}

func openJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.JS
}

// parts opens the events' parts in the node's order, each with what it
// takes of the ones before, and closes them in reverse at the test's end.
type parts struct {
	fns   *functions
	js    jetstream.JetStream
	cat   *Catalog
	bus   *Bus
	queue *Queue
}

func openParts(t *testing.T, fns *functions, lim Limits) *parts {
	t.Helper()
	ctx := context.Background()
	p := &parts{fns: fns, js: openJS(t)}
	var err error
	if p.cat, err = OpenCatalog(ctx, CatalogConfig{JS: p.js}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cat.Close(ctx) })
	if p.bus, err = OpenBus(BusConfig{JS: p.js, Catalog: p.cat, Registry: registryResolver{fns}, Limits: lim,
		NodeTopics: []string{"node.only"}}); err != nil {
		t.Fatal(err)
	}
	if p.queue, err = OpenQueue(ctx, QueueConfig{JS: p.js, Invoker: fns, Registry: fns, Bus: p.bus, Limits: lim}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.queue.Close(ctx) })
	return p
}

func (p *parts) openRouter(t *testing.T) *Router {
	t.Helper()
	r, err := OpenRouter(context.Background(), RouterConfig{JS: p.js, Invoker: p.fns, Catalog: p.cat, Bus: p.bus, Queue: p.queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func event(id string) cloudevent.Event {
	return cloudevent.Event{SpecVersion: cloudevent.SpecVersion, ID: id, Source: "test", Type: "test.event"}
}

// The catalog counts publishes in memory and merges them at Close; its
// list joins the topics seen with the subscriptions given.
func TestCatalog(t *testing.T) {
	ctx := context.Background()
	js := openJS(t)
	c, err := OpenCatalog(ctx, CatalogConfig{JS: js})
	if err != nil {
		t.Fatal(err)
	}
	c.saw("orders", "shop", auth.PrincipalAdmin)
	c.saw("orders", "shop", auth.PrincipalAdmin)
	c.saw("orders", "fn", auth.FunctionPrincipal("f"))
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	topics, err := c.list(ctx, []Subscription{{ID: "sub-1", Topic: "users", Function: "g"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(topics) != 2 || topics[0].Topic != "orders" || topics[1].Topic != "users" {
		t.Fatalf("topics %+v, want orders and users", topics)
	}
	if got := topics[0]; got.Events != 3 || len(got.Publishers) != 2 || len(got.Subscribers) != 0 {
		t.Errorf("orders: %+v, want 3 events from 2 publishers", got)
	}
	if got := topics[1]; got.Events != 0 || len(got.Subscribers) != 1 || got.Subscribers[0].Function != "g" {
		t.Errorf("users: %+v, want one subscriber, g", got)
	}
}

// The bus stores what a caller may publish, once per source and id, reads
// it back in order, and refuses the node's own topics and, past the
// bound, new topics.
func TestBus(t *testing.T) {
	ctx := context.Background()
	p := openParts(t, newFunctions(), Limits{MaxTopics: 1})
	for _, id := range []string{"1", "2", "1"} {
		if err := p.bus.Publish(ctx, "orders", event(id), auth.PrincipalAdmin); err != nil {
			t.Fatal(err)
		}
	}
	got, err := p.bus.Read(ctx, "orders", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[0].Principal != auth.PrincipalAdmin {
		t.Fatalf("read %+v, want events 1 and 2 once each, by the admin", got)
	}
	for _, topic := range []string{"node.only", "dlq.f"} {
		if err := p.bus.Publish(ctx, topic, event("1"), auth.PrincipalAdmin); !errors.Is(err, ErrForbidden) {
			t.Errorf("publishing on %s: %v, want ErrForbidden", topic, err)
		}
	}
	if err := p.bus.Publish(ctx, "other", event("1"), auth.PrincipalAdmin); !errors.Is(err, ErrTooManyTopics) {
		t.Errorf("a second topic of one: %v, want ErrTooManyTopics", err)
	}
	if err := p.bus.PublishNode(ctx, "node.only", event("1")); err != nil {
		t.Errorf("the node on its own topic: %v", err)
	}
}

// An event enqueued runs on the function, once, with its payload.
func TestQueue(t *testing.T) {
	fns := newFunctions(registry.Function{Name: "f"})
	p := openParts(t, fns, Limits{})
	if _, err := p.queue.Enqueue(context.Background(), Async{Function: "nope"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("an event for no function: %v, want ErrNotFound", err)
	}
	id, err := p.queue.Enqueue(context.Background(), Async{Function: "f", Payload: []byte(`{"n":1}`)})
	if err != nil || id == "" {
		t.Fatalf("Enqueue: %q, %v", id, err)
	}
	if ran := fns.waitRan(t, "f", 1); string(ran[0]) != `{"n":1}` {
		t.Errorf("ran with %s", ran[0])
	}
}

// A subscription delivers the topic's events that pass its filter to its
// function, from when it is made; unsubscribed, it delivers no more.
func TestRouter(t *testing.T) {
	ctx := context.Background()
	fns := newFunctions(registry.Function{Name: "f"})
	p := openParts(t, fns, Limits{})
	r := p.openRouter(t)
	if _, err := r.Subscribe(ctx, Subscription{Topic: "orders", Function: "nope"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("subscribing no function: %v, want ErrNotFound", err)
	}
	sub, err := r.Subscribe(ctx, Subscription{Topic: "orders", Function: "f",
		Filter: cloudevent.Filter{Exact: map[string]string{"type": "test.event"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Subscriptions("orders", ""); len(got) != 1 || got[0].ID != sub.ID {
		t.Fatalf("subscriptions %+v, want %s", got, sub.ID)
	}
	other := event("2")
	other.Type = "other"
	for _, ev := range []cloudevent.Event{event("1"), other} {
		if err := p.bus.Publish(ctx, "orders", ev, auth.PrincipalAdmin); err != nil {
			t.Fatal(err)
		}
	}
	ran := fns.waitRan(t, "f", 1)
	if ev, err := cloudevent.Parse(ran[0]); err != nil || ev.ID != "1" {
		t.Errorf("delivered %s (%v), want event 1", ran[0], err)
	}
	topics, err := r.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(topics) != 1 || len(topics[0].Subscribers) != 1 || topics[0].Subscribers[0].ID != sub.ID {
		t.Errorf("catalog %+v, want orders with its subscriber", topics)
	}
	if err := r.Unsubscribe(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Unsubscribe(ctx, sub.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("unsubscribing twice: %v, want ErrNotFound", err)
	}
	if got := r.Subscriptions("", ""); len(got) != 0 {
		t.Errorf("subscriptions after unsubscribing: %+v", got)
	}
}

// A schedule's tick fires once, as an event of its function, however
// often it is checked.
func TestScheduler(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 12, 0, 30, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	fns := newFunctions(registry.Function{Name: "f", Schedules: []registry.Schedule{{Name: "every", Expression: "rate(1 minute)"}}})
	p := openParts(t, fns, Limits{})
	s, err := OpenScheduler(ctx, SchedulerConfig{JS: p.js, Registry: fns, Queue: p.queue, Now: clock, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(ctx) })
	if err := s.CheckSchedules(ctx); err != nil { // a new schedule starts now
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	for range 3 {
		if err := s.CheckSchedules(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fns.waitRan(t, "f", 1)
	infos, err := s.Schedules(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || !infos[0].LastTick.Equal(time.Date(2030, 1, 1, 12, 1, 0, 0, time.UTC)) {
		t.Errorf("schedules %+v, want the 12:01 tick fired last", infos)
	}
}
