package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/store"
)

const (
	catalogBucket = "wisp_catalog"
	// maxPublishers bounds the publishers a topic remembers: the most
	// recently seen stay.
	maxPublishers = 50
)

// Topic is what the catalog knows of a topic: who publishes on it and who
// listens.
type Topic = apitype.Topic

// Publisher is one source seen publishing on a topic, and as whom.
type Publisher = apitype.Publisher

// Subscriber is a subscription, as the catalog lists it.
type Subscriber = apitype.Subscriber

// CatalogConfig is what a Catalog needs; JS is required.
type CatalogConfig struct {
	JS jetstream.JetStream
	// Now stamps when a publisher was last seen; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Catalog remembers, for every topic, who published on it. It counts
// publishes in memory and merges them into its bucket every second, so a
// publish costs no extra write.
type Catalog struct {
	kv      jetstream.KeyValue
	now     func() time.Time
	log     *slog.Logger
	stop    context.CancelFunc
	wg      sync.WaitGroup // the flush loop
	mu      sync.Mutex
	pending map[string]map[[2]string]*Publisher // guarded by mu; topic → (source, principal)
}

// OpenCatalog creates the catalog's bucket if need be and starts merging
// what is counted into it; Close stops that and merges what is left.
func OpenCatalog(ctx context.Context, cfg CatalogConfig) (*Catalog, error) {
	clockAndLogger(&cfg.Now, &cfg.Logger)
	kv, err := cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: catalogBucket,
		Description: "wisp: topics and their publishers", History: 1, Storage: jetstream.FileStorage,
		MaxBytes: bucketBytes})
	if err != nil {
		return nil, fmt.Errorf("events: catalog bucket: %w", err)
	}
	c := &Catalog{kv: kv, now: cfg.Now, log: cfg.Logger, pending: map[string]map[[2]string]*Publisher{}}
	lctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	goLoop(&c.wg, func() { c.flushEvery(lctx, time.Second) })
	return c, nil
}

// Close stops the merging and merges what was counted since the last.
func (c *Catalog) Close(ctx context.Context) error {
	c.stop()
	c.wg.Wait()
	return c.flush(context.WithoutCancel(ctx))
}

func (c *Catalog) saw(topic, source, principal string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sawLocked(topic, Publisher{Source: source, Principal: principal, Events: 1, LastSeen: c.now().UTC()})
}

func (c *Catalog) flushEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.flush(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("events: updating the catalog", "err", err)
			}
		}
	}
}

// flush merges what was counted into the bucket, under optimistic
// concurrency with the other nodes; what fails stays to be merged later.
func (c *Catalog) flush(ctx context.Context) error {
	c.mu.Lock()
	pending := c.pending
	c.pending = map[string]map[[2]string]*Publisher{}
	c.mu.Unlock()
	var errs []error
	for topic, ps := range pending {
		if err := c.merge(ctx, topic, ps); err != nil {
			errs = append(errs, err)
			c.mu.Lock()
			for _, p := range ps {
				c.sawLocked(topic, *p)
			}
			c.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func (c *Catalog) sawLocked(topic string, p Publisher) {
	ps := c.pending[topic]
	if ps == nil {
		ps = map[[2]string]*Publisher{}
		c.pending[topic] = ps
	}
	k := [2]string{p.Source, p.Principal}
	if q := ps[k]; q != nil {
		q.Events += p.Events
		q.LastSeen = later(q.LastSeen, p.LastSeen)
		return
	}
	ps[k] = &p
}

func (c *Catalog) merge(ctx context.Context, topic string, ps map[[2]string]*Publisher) error {
	_, err := store.UpdateJSON(ctx, c.kv, topic, func(t *Topic, _ bool) (bool, error) {
		t.Topic = topic
		for _, p := range ps {
			t.Events += p.Events
			t.LastPublished = later(t.LastPublished, p.LastSeen)
			i := slices.IndexFunc(t.Publishers, func(x Publisher) bool { return x.Source == p.Source && x.Principal == p.Principal })
			if i < 0 {
				t.Publishers = append(t.Publishers, Publisher{Source: p.Source, Principal: p.Principal})
				i = len(t.Publishers) - 1
			}
			t.Publishers[i].Events += p.Events
			t.Publishers[i].LastSeen = later(t.Publishers[i].LastSeen, p.LastSeen)
		}
		slices.SortFunc(t.Publishers, func(a, b Publisher) int { return b.LastSeen.Compare(a.LastSeen) })
		if len(t.Publishers) > maxPublishers {
			t.Publishers = t.Publishers[:maxPublishers]
		}
		return true, nil
	})
	return err
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// forget deletes a topic's entry: the topic is gone.
func (c *Catalog) forget(ctx context.Context, topic string) error {
	if err := c.kv.Delete(ctx, topic); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}

// list returns every topic seen published on or in subs, by name, with
// its subscribers among subs.
func (c *Catalog) list(ctx context.Context, subs []Subscription) ([]Topic, error) {
	byName := map[string]*Topic{}
	lister, err := c.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	for k := range lister.Keys() {
		entry, err := c.kv.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		var t Topic
		if err := json.Unmarshal(entry.Value(), &t); err != nil {
			continue
		}
		t.Subscribers = []Subscriber{}
		byName[k] = &t
	}
	for _, s := range subs {
		t := byName[s.Topic]
		if t == nil {
			t = &Topic{Topic: s.Topic, Publishers: []Publisher{}, Subscribers: []Subscriber{}}
			byName[s.Topic] = t
		}
		t.Subscribers = append(t.Subscribers, Subscriber{ID: s.ID, Function: s.Function, Qualifier: s.Qualifier})
	}
	out := make([]Topic, 0, len(byName))
	for _, t := range byName {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Topic) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}
