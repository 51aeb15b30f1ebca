package events

import (
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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

const (
	subscriptionBucket = "wisp_subscriptions"
	// MaxSubscriptionsPerTopic bounds one event's fan-out.
	MaxSubscriptionsPerTopic = 100
)

// Subscription delivers a topic's events that pass its filter to a
// function, as events with the function's retries and destinations.
type Subscription struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Function  string `json:"function"`
	Qualifier string `json:"qualifier,omitempty"`
	cloudevent.Filter
	CreatedAt time.Time `json:"created_at"`
}

// ErrNotFound is a subscription that does not exist.
var ErrNotFound = errors.New("events: not found")

// subscriptions is this node's copy of every subscription, kept current by
// a watch on the bucket.
type subscriptions struct {
	kv jetstream.KeyValue
	// changed is signalled (without blocking) on every change.
	changed chan struct{}
	mu      sync.RWMutex
	applied chan struct{}             // guarded by mu; closed, and made anew, on every change
	byID    map[string]Subscription   // guarded by mu
	byTopic map[string][]Subscription // guarded by mu
}

// openSubscriptions loads the subscriptions and keeps them current until
// follow ends.
func openSubscriptions(ctx, follow context.Context, js jetstream.JetStream, wg *sync.WaitGroup, log *slog.Logger) (*subscriptions, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: subscriptionBucket,
		Description: "wisp: topic subscriptions", History: 1, Storage: jetstream.FileStorage,
		MaxBytes: bucketBytes})
	if err != nil {
		return nil, fmt.Errorf("events: subscription bucket: %w", err)
	}
	s := &subscriptions{kv: kv, changed: make(chan struct{}, 1), applied: make(chan struct{}), byID: map[string]Subscription{}, byTopic: map[string][]Subscription{}}
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		store.Follow(follow, kv, func(e jetstream.KeyValueEntry) { s.apply(e, log) }, ready, log)
	}()
	select {
	case <-ready:
		return s, nil
	case <-time.After(30 * time.Second):
		return nil, errors.New("events: subscriptions did not load within 30s")
	}
}

func (s *subscriptions) apply(entry jetstream.KeyValueEntry, log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		close(s.applied)
		s.applied = make(chan struct{})
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}()
	id := entry.Key()
	// The topic's list is made anew, never changed in place: routers
	// range over the lists forTopic handed out.
	if old, ok := s.byID[id]; ok {
		delete(s.byID, id)
		s.byTopic[old.Topic] = slices.DeleteFunc(slices.Clone(s.byTopic[old.Topic]), func(x Subscription) bool { return x.ID == id })
	}
	if entry.Operation() != jetstream.KeyValuePut {
		return
	}
	var sub Subscription
	if err := json.Unmarshal(entry.Value(), &sub); err != nil {
		log.Error("events: an unreadable subscription is ignored", "id", id, "err", err)
		return
	}
	s.byID[id] = sub
	s.byTopic[sub.Topic] = append(slices.Clone(s.byTopic[sub.Topic]), sub)
}

// topics are the topics that have subscriptions.
func (s *subscriptions) topics() map[string]bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]bool{}
	for t, subs := range s.byTopic {
		if len(subs) > 0 {
			out[t] = true
		}
	}
	return out
}

func (s *subscriptions) forTopic(topic string) []Subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byTopic[topic]
}

// Subscribe binds a topic to a function (which must exist) through a
// filter. It gets the topic's events published from now on.
func (r *Router) Subscribe(ctx context.Context, sub Subscription) (Subscription, error) {
	if err := registry.CheckTopic(sub.Topic); err != nil {
		return Subscription{}, err
	}
	if err := registry.ValidName("function", sub.Function); err != nil {
		return Subscription{}, err
	}
	if err := registry.CheckQualifier(sub.Qualifier); err != nil {
		return Subscription{}, err
	}
	if err := sub.Filter.Validate(); err != nil {
		return Subscription{}, &registry.ValidationError{Msg: err.Error()}
	}
	if _, err := r.cfg.Invoker.Resolve(sub.Function, sub.Qualifier); err != nil {
		return Subscription{}, err
	}
	if n := len(r.subs.forTopic(sub.Topic)); n >= MaxSubscriptionsPerTopic {
		return Subscription{}, &registry.ValidationError{Msg: fmt.Sprintf("topic %q has %d subscriptions; at most %d", sub.Topic, n, MaxSubscriptionsPerTopic)}
	}
	// The topic's router starts from now: it must be there before the
	// caller publishes what it subscribed for.
	if _, err := r.cfg.Bus.openRouter(ctx, sub.Topic, false); err != nil {
		return Subscription{}, err
	}
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	sub.ID = "sub-" + hex.EncodeToString(b[:])
	sub.CreatedAt = r.cfg.Now().UTC()
	data, err := json.Marshal(sub)
	if err != nil {
		return Subscription{}, err
	}
	if _, err := r.subs.kv.Create(ctx, sub.ID, data); err != nil {
		return Subscription{}, fmt.Errorf("events: storing a subscription: %w", err)
	}
	r.subs.waitFor(sub.ID, true)
	return sub, nil
}

// Unsubscribe deletes a subscription.
func (r *Router) Unsubscribe(ctx context.Context, id string) error {
	s, ok := r.subscription(id)
	if !ok {
		return fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	if err := r.subs.kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("events: deleting a subscription: %w", err)
	}
	r.subs.waitFor(id, false)
	if len(r.subs.forTopic(s.Topic)) == 0 {
		// Events published from now on are for nobody.
		if err := r.cfg.Bus.closeRouter(ctx, s.Topic); err != nil {
			r.log.Warn("events: closing the router of a topic nobody subscribes to", "err", err)
		}
	}
	return nil
}

// waitFor waits briefly for this node's copy to show a write it made, so
// the caller reads its own write.
func (s *subscriptions) waitFor(id string, present bool) {
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.RLock()
		_, ok := s.byID[id]
		applied := s.applied
		s.mu.RUnlock()
		if ok == present {
			return
		}
		select {
		case <-applied:
		case <-timeout.C:
			return
		}
	}
}

func (r *Router) subscription(id string) (Subscription, bool) {
	r.subs.mu.RLock()
	defer r.subs.mu.RUnlock()
	s, ok := r.subs.byID[id]
	return s, ok
}

// Subscriptions lists the subscriptions of a topic and of a function (an
// empty one means any), by topic, then id.
func (r *Router) Subscriptions(topic, function string) []Subscription {
	r.subs.mu.RLock()
	out := []Subscription{}
	for _, s := range r.subs.byID {
		if (topic == "" || s.Topic == topic) && (function == "" || s.Function == function) {
			out = append(out, s)
		}
	}
	r.subs.mu.RUnlock()
	slices.SortFunc(out, func(a, b Subscription) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
