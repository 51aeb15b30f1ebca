package events

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
)

// RouterConfig is what a Router needs; every part of the node's events
// before it is required, and JS and Invoker.
type RouterConfig struct {
	JS jetstream.JetStream
	// Invoker resolves a subscription's function when it is made.
	Invoker Resolver
	Catalog *Catalog
	Bus     *Bus
	// Queue takes the events the routers deliver.
	Queue  *Queue
	Logger *slog.Logger
	// Now stamps subscriptions; default time.Now.
	Now func() time.Time
}

// Router keeps the subscriptions (this node's copy of the bucket) and
// delivers each subscribed topic's events to the queues of the functions
// whose filters match them.
type Router struct {
	cfg  RouterConfig
	log  *slog.Logger
	subs *subscriptions
	stop context.CancelFunc
	wg   sync.WaitGroup // the loops and the routers
	mu   sync.Mutex
	// routers are the topics' routers, by topic; guarded by mu.
	routers map[string]*router
	closed  bool // guarded by mu
}

// OpenRouter loads the subscriptions and starts the routers of the
// subscribed topics and the move of the old layout's topic events; Close
// stops them.
func OpenRouter(ctx context.Context, cfg RouterConfig) (*Router, error) {
	clockAndLogger(&cfg.Now, &cfg.Logger)
	r := &Router{cfg: cfg, log: cfg.Logger, routers: map[string]*router{}}
	lctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	var err error
	if r.subs, err = openSubscriptions(ctx, lctx, cfg.JS, &r.wg, r.log); err != nil {
		cancel()
		return nil, err
	}
	goLoop(&r.wg, func() { r.superviseRouters(lctx) })
	goLoop(&r.wg, func() { moveUntilGone(lctx, r.log, "topic stream", r.moveLegacyBus) })
	return r, nil
}

// Close stops the routers; what they had not delivered is delivered by
// another node, or by this one after a restart.
func (r *Router) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	if !waitUntil(ctx, r.wg.Wait) {
		return errors.New("events: the routers did not stop in time")
	}
	return nil
}

// Catalog lists every topic seen published on or subscribed to, by name.
func (r *Router) Catalog(ctx context.Context) ([]Topic, error) {
	return r.cfg.Catalog.list(ctx, r.Subscriptions("", ""))
}

// hRouted marks an event moved from the old shared topic stream that its
// router had already delivered; hLegacySeq is its sequence number there,
// which its deliveries' ids were made of.
const (
	hRouted    = "Wisp-Routed"
	hLegacySeq = "Wisp-Legacy-Seq"
)

// route delivers the events of a topic to the subscriptions that match
// them, as events for their functions, until ctx ends. Every node routes
// every subscribed topic, sharing the topic's durable consumer; an event is
// acknowledged once all its deliveries are stored, and stored again after
// a crash is stored once.
func (r *Router) route(ctx context.Context, topic string) {
	defer func() {
		r.cfg.Bus.setBacklog(topic, backlog{})
	}()
	var cons jetstream.Consumer
	lastInfo := time.Time{}
	for ctx.Err() == nil {
		if cons == nil {
			if len(r.subs.forTopic(topic)) == 0 {
				return // unsubscribed: its consumer is not made again
			}
			var err error
			// The topic was counted when it was subscribed to.
			if cons, err = r.cfg.Bus.openRouter(ctx, topic, true); err != nil {
				if ctx.Err() == nil {
					r.log.Warn("events: the router of a topic", "topic", topic, "err", err)
				}
				sleep(ctx, time.Second)
				continue
			}
		}
		if time.Since(lastInfo) > time.Second {
			r.readBacklog(ctx, topic, cons)
			lastInfo = time.Now()
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		batch, err := cons.Fetch(64, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				r.routeOne(ctx, topic, m)
			}
			err = batch.Error()
		}
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			r.log.Warn("events: fetching events to route", "topic", topic, "err", err)
			cons = nil // made again, if it was deleted
			sleep(ctx, time.Second)
		}
	}
}

// readBacklog notes how many events of a topic wait to be routed, and
// about how many bytes they are.
func (r *Router) readBacklog(ctx context.Context, topic string, cons jetstream.Consumer) {
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	b := backlog{events: int64(info.NumPending) + int64(info.NumAckPending)}
	if b.events > 0 {
		s, err := r.cfg.Bus.topicStream(ctx, topic, true)
		if err != nil {
			return
		}
		si, err := s.Info(ctx)
		if err != nil {
			return
		}
		if si.State.Msgs > 0 {
			b.bytes = b.events * int64(si.State.Bytes/si.State.Msgs)
		}
	}
	r.cfg.Bus.setBacklog(topic, b)
}

func (r *Router) routeOne(ctx context.Context, topic string, m jetstream.Msg) {
	if m.Headers().Get(hRouted) != "" {
		m.Ack() //nolint:errcheck // delivered before it was moved
		return
	}
	ev, err := cloudevent.Parse(m.Data())
	if err != nil {
		r.log.Error("events: an unreadable event is not routed", "topic", topic, "err", err)
		m.Term() //nolint:errcheck // redelivered if lost
		return
	}
	md, err := m.Metadata()
	if err != nil {
		m.Nak() //nolint:errcheck // as above
		return
	}
	// A delivery's id is the same however often it is stored; an event
	// moved from the old shared stream keeps the ids it had there.
	key := "t" + strconv.FormatUint(md.Sequence.Stream, 10)
	if s := m.Headers().Get(hLegacySeq); s != "" {
		key = s
	}
	for _, s := range r.subs.forTopic(topic) {
		if !s.Filter.Match(ev) {
			continue
		}
		a := Async{Function: s.Function, Qualifier: s.Qualifier, Payload: m.Data(),
			RequestID: eventRequestID(key, s.ID), Trigger: TriggerTopic, DedupID: "ev." + key + "." + s.ID}
		err := r.cfg.Queue.storeNew(ctx, a)
		if errors.Is(err, ErrQueueFull) {
			// The function has no room: the delivery fails, as a failed
			// event does, and the other subscriptions still get theirs.
			err = r.cfg.Queue.failUnqueued(ctx, a, err)
		}
		if err != nil {
			r.log.Warn("events: routing an event; trying again", "topic", topic, "subscription", s.ID, "err", err)
			m.NakWithDelay(time.Second) //nolint:errcheck // as above
			return
		}
	}
	m.Ack() //nolint:errcheck // a lost ack routes it again; the dedup ids catch that
}

// eventRequestID is the request id of an event's delivery to one
// subscription: the same however often the delivery is stored.
func eventRequestID(key, sub string) string {
	b := sha256.Sum256([]byte(key + "/" + sub))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// A router fans one topic's events out; this node runs one for each topic
// that has subscriptions, sharing the topic's durable consumer with the
// routers of the other nodes.
type router struct {
	cancel context.CancelFunc
}

// superviseRouters keeps a router per subscribed topic, and drops idle
// topics, until ctx ends.
func (r *Router) superviseRouters(ctx context.Context) {
	r.syncRouters(ctx)
	sync := time.NewTicker(10 * time.Second)
	defer sync.Stop()
	clean := time.NewTicker(time.Minute)
	defer clean.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.subs.changed:
			r.syncRouters(ctx)
		case <-sync.C:
			r.syncRouters(ctx)
		case <-clean.C:
			subscribed := func(topic string) bool { return len(r.subs.forTopic(topic)) > 0 }
			if err := r.cfg.Bus.dropIdleTopics(ctx, subscribed); err != nil && ctx.Err() == nil {
				r.log.Warn("events: dropping idle topics", "err", err)
			}
		}
	}
}

func (r *Router) syncRouters(ctx context.Context) {
	want := r.subs.topics()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for topic, rt := range r.routers {
		if !want[topic] {
			rt.cancel()
			delete(r.routers, topic)
		}
	}
	for topic := range want {
		if r.routers[topic] != nil {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		rt := &router{cancel: cancel}
		r.routers[topic] = rt
		goLoop(&r.wg, func() {
			r.route(rctx, topic)
			cancel()
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.routers[topic] == rt { // ended by itself: the next sync may start another
				delete(r.routers, topic)
			}
		})
	}
}
