package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/registry"
)

// BusConfig is what a Bus needs; JS, Catalog and Registry are required.
type BusConfig struct {
	JS jetstream.JetStream
	// Catalog counts who publishes where.
	Catalog *Catalog
	// Registry says what a publishing function's grants are.
	Registry interface {
		Resolve(name, qualifier string, pick func() float64) (registry.Target, error)
	}
	Metrics Metrics // nil: none
	Logger  *slog.Logger
	// Now is the clock of the bound on topics; default time.Now.
	Now func() time.Time
	// Limits bound the topics (TopicMaxBytes, TopicMaxAge, MaxTopics,
	// MaxBacklog); zero fields take their defaults.
	Limits Limits
	// NodeTopics are topic patterns (registry.CheckTopicPattern) only the
	// node publishes on, besides dead letters (dlq.…) and the topics
	// functions send outcomes to: no API caller may, the admin included.
	NodeTopics []string
}

// Resolver finds the version a function name and qualifier mean.
type Resolver interface {
	Resolve(name, qualifier string) (registry.Target, error)
}

// Bus is the node's side of the topics: a stream each, what is published
// on them and who may publish there. It runs nothing of its own: the
// Router delivers the topics' events, so a Bus has no Close.
type Bus struct {
	cfg BusConfig
	lim Limits
	log *slog.Logger

	tmu          sync.Mutex
	topicStreams map[string]jetstream.Stream // guarded by tmu; the topics opened
	backlogs     map[string]backlog          // guarded by tmu; by topic, as routers last saw
	topicCount   int                         // guarded by tmu; topics callers made, as last counted
	topicCountAt time.Time                   // guarded by tmu

	// outcomeTopics are the topics functions send outcomes to, which
	// only the node writes: topic → why. The Queue keeps it current.
	outcomeTopics atomic.Pointer[map[string]string]
}

// OpenBus checks cfg and returns the node's bus.
func OpenBus(cfg BusConfig) (*Bus, error) {
	clockAndLogger(&cfg.Now, &cfg.Logger)
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	for _, p := range cfg.NodeTopics {
		if err := registry.CheckTopicPattern(p); err != nil {
			return nil, fmt.Errorf("events: a node topic: %w", err)
		}
	}
	return &Bus{cfg: cfg, lim: cfg.Limits.withDefaults(), log: cfg.Logger,
		topicStreams: map[string]jetstream.Stream{}, backlogs: map[string]backlog{}}, nil
}

// setBacklog notes how far behind a topic's router is; a zero backlog
// forgets the topic's.
func (b *Bus) setBacklog(topic string, bl backlog) {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	if bl == (backlog{}) {
		delete(b.backlogs, topic)
		return
	}
	b.backlogs[topic] = bl
}

// TopicEvent is an event read back from a topic.
type TopicEvent = apitype.TopicEvent

// Read returns up to limit events of a topic, oldest first, from those
// stored after seq (each topic numbers its own events).
func (b *Bus) Read(ctx context.Context, topic string, after uint64, limit int) ([]TopicEvent, error) {
	if err := registry.CheckTopic(topic); err != nil {
		return nil, err
	}
	out := []TopicEvent{}
	stream, err := b.cfg.JS.Stream(ctx, topicStreamName(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	info := stream.CachedInfo()
	if info.State.Msgs == 0 || (after > 0 && after >= info.State.LastSeq) {
		return out, nil
	}
	cfg := jetstream.OrderedConsumerConfig{InactiveThreshold: 10 * time.Second}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	c, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Fetch waits for a full batch; the last message says when there is
	// no more.
	batch, err := c.Fetch(limit, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		out = append(out, TopicEvent{Seq: md.Sequence.Stream, Time: md.Timestamp.UTC(),
			Principal: m.Headers().Get(hPrincipal), Event: m.Data()})
		if md.NumPending == 0 {
			return out, nil
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	return out, nil
}
