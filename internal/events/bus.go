package events

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
)

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
func (e *Events) route(ctx context.Context, topic string) {
	defer func() {
		e.tmu.Lock()
		delete(e.backlogs, topic)
		e.tmu.Unlock()
	}()
	var cons jetstream.Consumer
	lastInfo := time.Time{}
	for ctx.Err() == nil {
		if cons == nil {
			if len(e.subs.forTopic(topic)) == 0 {
				return // unsubscribed: its consumer is not made again
			}
			var err error
			// The topic was counted when it was subscribed to.
			if cons, err = e.openRouter(ctx, topic, true); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("events: the router of a topic", "topic", topic, "err", err)
				}
				sleep(ctx, time.Second)
				continue
			}
		}
		if time.Since(lastInfo) > time.Second {
			e.readBacklog(ctx, topic, cons)
			lastInfo = time.Now()
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		batch, err := cons.Fetch(64, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				e.routeOne(ctx, topic, m)
			}
			err = batch.Error()
		}
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			e.log.Warn("events: fetching events to route", "topic", topic, "err", err)
			cons = nil // made again, if it was deleted
			sleep(ctx, time.Second)
		}
	}
}

// readBacklog notes how many events of a topic wait to be routed, and
// about how many bytes they are.
func (e *Events) readBacklog(ctx context.Context, topic string, cons jetstream.Consumer) {
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	b := backlog{events: int64(info.NumPending) + int64(info.NumAckPending)}
	if b.events > 0 {
		s, err := e.topicStream(ctx, topic, true)
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
	e.tmu.Lock()
	e.backlogs[topic] = b
	e.tmu.Unlock()
}

func (e *Events) routeOne(ctx context.Context, topic string, m jetstream.Msg) {
	if m.Headers().Get(hRouted) != "" {
		m.Ack() //nolint:errcheck // delivered before it was moved
		return
	}
	ev, err := cloudevent.Parse(m.Data())
	if err != nil {
		e.log.Error("events: an unreadable event is not routed", "topic", topic, "err", err)
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
	for _, s := range e.subs.forTopic(topic) {
		if !s.Filter.Match(ev) {
			continue
		}
		a := Async{Function: s.Function, Qualifier: s.Qualifier, Payload: m.Data(),
			RequestID: eventRequestID(key, s.ID), Trigger: TriggerTopic, DedupID: "ev." + key + "." + s.ID}
		err := e.storeNew(ctx, a)
		if errors.Is(err, ErrQueueFull) {
			// The function has no room: the delivery fails, as a failed
			// event does, and the other subscriptions still get theirs.
			err = e.failUnqueued(ctx, a, err)
		}
		if err != nil {
			e.log.Warn("events: routing an event; trying again", "topic", topic, "subscription", s.ID, "err", err)
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

// TopicEvent is an event read back from a topic.
type TopicEvent struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"` // when it was stored
	Principal string          `json:"principal,omitempty"`
	Event     json.RawMessage `json:"event"`
}

// Read returns up to limit events of a topic, oldest first, from those
// stored after seq (each topic numbers its own events).
func (e *Events) Read(ctx context.Context, topic string, after uint64, limit int) ([]TopicEvent, error) {
	if err := registry.CheckTopic(topic); err != nil {
		return nil, err
	}
	out := []TopicEvent{}
	stream, err := e.cfg.JS.Stream(ctx, topicStreamName(topic))
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
