package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Each topic is a stream of its own, with its own byte and age limits, so
// that a flood on one topic ages out only that topic's events: no limit is
// shared between topics. What that costs is a stream per topic, so the
// topics callers make are bounded (Limits.MaxTopics), and a topic whose
// events have all aged out and that nobody subscribes to goes.
const (
	topicStreamPrefix = "wisp_topic_"
	topicPrefix       = "wisp.topic." // + topic
	// metaOwner marks, in a topic stream's metadata, a topic the node
	// made for itself (dead letters, destinations), which does not count
	// against MaxTopics.
	metaOwner  = "wisp_owner"
	ownerNode  = "node"
	routerName = "router"
)

// ErrTooManyTopics is a new topic past the node's bound on topics.
var ErrTooManyTopics = errors.New("events: too many topics")

// topicStreamName is a topic's stream: stream names cannot hold dots, and
// a hash keeps apart topics that read the same without them.
func topicStreamName(topic string) string {
	sum := sha256.Sum256([]byte(topic))
	name := strings.ReplaceAll(topic, ".", "_")
	if len(name) > 64 {
		name = name[:64]
	}
	return topicStreamPrefix + name + "_" + hex.EncodeToString(sum[:6])
}

func (b *Bus) topicStreamConfig(topic, owner string) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        topicStreamName(topic),
		Description: "wisp: the events published on topic " + topic,
		Subjects:    []string{topicPrefix + topic},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		// Delivered events are history: the topic's oldest go when it is
		// full. Undelivered ones are kept by refusing events (ErrBusy)
		// while the topic's router is behind.
		Discard:    jetstream.DiscardOld,
		MaxAge:     b.lim.TopicMaxAge,
		MaxBytes:   b.lim.TopicMaxBytes,
		MaxMsgSize: 1 << 20,
		Duplicates: dedupWindow,
	}
	if owner != "" {
		cfg.Metadata = map[string]string{metaOwner: owner}
	}
	return cfg
}

// topicStream returns a topic's stream, making it if need be. A topic a
// caller makes counts against MaxTopics; one the node makes (byNode) does
// not: those are bounded by the functions' configs.
func (b *Bus) topicStream(ctx context.Context, topic string, byNode bool) (jetstream.Stream, error) {
	b.tmu.Lock()
	s := b.topicStreams[topic]
	b.tmu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := b.cfg.JS.Stream(ctx, topicStreamName(topic))
	switch {
	case err == nil:
		if c := s.CachedInfo().Config; c.MaxBytes != b.lim.TopicMaxBytes || c.MaxAge != b.lim.TopicMaxAge {
			// The node's retention changed: the topic takes it, and
			// keeps who made it.
			if s, err = b.cfg.JS.UpdateStream(ctx, b.topicStreamConfig(topic, c.Metadata[metaOwner])); err != nil {
				return nil, fmt.Errorf("events: the stream of topic %s: %w", topic, err)
			}
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		owner := ownerNode
		if !byNode {
			owner = ""
			if err := b.roomForTopic(ctx, topic); err != nil {
				return nil, err
			}
		}
		s, err = b.cfg.JS.CreateStream(ctx, b.topicStreamConfig(topic, owner))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // made by another node meanwhile
			s, err = b.cfg.JS.Stream(ctx, topicStreamName(topic))
		}
		if err != nil {
			return nil, fmt.Errorf("events: the stream of topic %s: %w", topic, err)
		}
	default:
		return nil, fmt.Errorf("events: the stream of topic %s: %w", topic, err)
	}
	b.tmu.Lock()
	defer b.tmu.Unlock()
	b.topicStreams[topic] = s
	return s, nil
}

func (b *Bus) forgetTopic(topic string) {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	delete(b.topicStreams, topic)
}

// roomForTopic says whether callers may make one more topic. The count is
// read again at most once a second, so a flood of new topics past the
// bound costs no listing each; across nodes making topics at the same
// moment, the bound may be passed by one per node.
func (b *Bus) roomForTopic(ctx context.Context, topic string) error {
	now := b.cfg.Now()
	b.tmu.Lock()
	n, at := b.topicCount, b.topicCountAt
	b.tmu.Unlock()
	if at.IsZero() || now.Sub(at) >= time.Second {
		infos, err := b.topicInfos(ctx)
		if err != nil {
			return err
		}
		n = 0
		for _, info := range infos {
			if info.Config.Metadata[metaOwner] != ownerNode {
				n++
			}
		}
		b.tmu.Lock()
		b.topicCount, b.topicCountAt = n, now
		b.tmu.Unlock()
	}
	if n >= b.lim.MaxTopics {
		return fmt.Errorf("topic %s would be new, and the node keeps at most %d topics (a topic goes once its events have aged out and nobody subscribes to it): %w",
			topic, b.lim.MaxTopics, ErrTooManyTopics)
	}
	b.tmu.Lock()
	b.topicCount++
	b.tmu.Unlock()
	return nil
}

// topicInfos lists the topics' streams, by topic.
func (b *Bus) topicInfos(ctx context.Context) (map[string]*jetstream.StreamInfo, error) {
	out := map[string]*jetstream.StreamInfo{}
	lister := b.cfg.JS.ListStreams(ctx, jetstream.WithStreamListSubject(topicPrefix+">"))
	for info := range lister.Info() {
		if len(info.Config.Subjects) == 1 && strings.HasPrefix(info.Config.Name, topicStreamPrefix) {
			out[strings.TrimPrefix(info.Config.Subjects[0], topicPrefix)] = info
		}
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// dropIdleTopics deletes the streams (and catalog entries) of topics whose
// events have all aged out, that nobody subscribes to (subscribed says
// who has), and that no event reached for longer than the dedup window.
func (b *Bus) dropIdleTopics(ctx context.Context, subscribed func(topic string) bool) error {
	infos, err := b.topicInfos(ctx)
	if err != nil {
		return err
	}
	b.tmu.Lock()
	for topic := range b.topicStreams {
		if infos[topic] == nil { // dropped by another node
			delete(b.topicStreams, topic)
		}
	}
	b.tmu.Unlock()
	now := b.cfg.Now()
	for topic, info := range infos {
		last := info.Created
		if info.State.LastTime.After(last) {
			last = info.State.LastTime
		}
		if info.State.Msgs > 0 || now.Sub(last) < dedupWindow || subscribed(topic) {
			continue
		}
		b.forgetTopic(topic)
		if err := b.cfg.JS.DeleteStream(ctx, info.Config.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		// Its catalog entry goes too, or the catalog would keep every
		// topic ever made.
		if err := b.cfg.Catalog.forget(ctx, topic); err != nil {
			return err
		}
		b.log.Info("events: an idle topic is dropped", "topic", topic)
	}
	return nil
}

// backlog is how far behind a topic's router is, as it last looked.
type backlog struct {
	events, bytes int64
}

// busy says why publishing on a topic must wait: its router is so far
// behind that more events could age undelivered events out.
func (b *Bus) busy(topic string) error {
	b.tmu.Lock()
	bl := b.backlogs[topic]
	b.tmu.Unlock()
	if bl.events > b.lim.MaxBacklog || bl.bytes > b.lim.TopicMaxBytes/2 {
		return fmt.Errorf("%d events (%d bytes) of topic %s wait to be delivered: %w", bl.events, bl.bytes, topic, ErrBusy)
	}
	return nil
}

// ErrBusy is an event refused because its topic's router is too far
// behind: the topic keeps a bounded history, and an event must not age
// out of it before it is delivered.
var ErrBusy = errors.New("events: too many events wait to be delivered; try again later")

func (b *Bus) routerConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: routerName, Description: "wisp: fans the topic's events out to its subscriptions",
		// Events published before the topic's first subscription were for
		// nobody.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 1000,
	}
}

// openRouter makes a topic's router consumer if need be: a subscription's
// events are routed from the moment it is made.
func (b *Bus) openRouter(ctx context.Context, topic string, byNode bool) (jetstream.Consumer, error) {
	s, err := b.topicStream(ctx, topic, byNode)
	if err != nil {
		return nil, err
	}
	// An existing consumer is left as it is, as a stream is (openQueue).
	cons, err := s.Consumer(ctx, routerName)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = s.CreateConsumer(ctx, b.routerConsumer())
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = s.Consumer(ctx, routerName)
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		b.forgetTopic(topic)
	}
	return cons, err
}

// closeRouter deletes a topic's router consumer once it has no
// subscription, so that nothing waits in it for nobody.
func (b *Bus) closeRouter(ctx context.Context, topic string) error {
	s, err := b.cfg.JS.Stream(ctx, topicStreamName(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.DeleteConsumer(ctx, routerName); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	return nil
}
