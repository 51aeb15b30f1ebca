package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
)

const (
	busStreamName = "wisp_events"
	busPrefix     = "wisp.events." // + topic
	routerName    = "router"
	hPrincipal    = "Wisp-Principal"
	// busMaxAge is how long an event stays on its topic, to be read back
	// (dead letters, say) after it was delivered.
	busMaxAge = 7 * 24 * time.Hour
	// busMaxBytes bounds the topics' storage.
	busMaxBytes = 1 << 30
)

func busStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        busStreamName,
		Description: "wisp: events published on topics",
		Subjects:    []string{busPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		// Delivered events are history: the oldest go when it is full.
		// Undelivered ones are kept by refusing events (ErrBusy) while
		// the router is behind.
		Discard:    jetstream.DiscardOld,
		MaxAge:     busMaxAge,
		MaxBytes:   busMaxBytes,
		MaxMsgSize: 1 << 20,
		Duplicates: dedupWindow,
	}
}

// Publish stores an event on a topic, for every subscription that matches
// it; it returns once the event cannot be lost. principal names who
// published it (the admin, a function, the platform), for the catalog.
// An event with the source and id of one published on the topic in the
// last two minutes is stored once.
func (e *Events) Publish(ctx context.Context, topic string, ev cloudevent.Event, principal string) error {
	return e.publish(ctx, topic, ev, principal, MaxPayload)
}

// publish is Publish with a size limit: the platform's own records may be
// larger than what callers may send.
func (e *Events) publish(ctx context.Context, topic string, ev cloudevent.Event, principal string, limit int) error {
	if err := registry.CheckTopic(topic); err != nil {
		return err
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if len(data) > limit {
		return fmt.Errorf("the event is %d bytes; at most %d: %w", len(data), limit, ErrTooLarge)
	}
	if n := e.routerBacklog.Load(); n > maxBacklog {
		return fmt.Errorf("%d events wait to be routed: %w", n, ErrBusy)
	}
	m := nats.NewMsg(busPrefix + topic)
	m.Data = data
	m.Header.Set(hPrincipal, principal)
	sum := sha256.Sum256([]byte(topic + "\x00" + ev.Source + "\x00" + ev.ID))
	m.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(sum[:16]))
	ack, err := e.cfg.JS.PublishMsg(ctx, m)
	if err != nil {
		return fmt.Errorf("events: storing an event on %s: %w", topic, err)
	}
	if !ack.Duplicate {
		e.cat.saw(topic, ev.Source, principal)
		e.cfg.Metrics.Published(topic)
	}
	return nil
}

// ErrBusy is an event refused because the router is too far behind: the
// topics keep a bounded history, and an event must not age out of it
// before it is delivered.
var ErrBusy = errors.New("events: too many events wait to be delivered; try again later")

// maxBacklog is how many events may wait to be routed before new ones are
// refused.
const maxBacklog = 200_000

// route delivers the events of every topic to the subscriptions that
// match them, as events for their functions, until ctx ends. Every node
// routes, sharing one durable consumer; an event is acknowledged once all
// its deliveries are stored, and stored again after a crash is stored once.
func (e *Events) route(ctx context.Context) {
	var cons jetstream.Consumer
	lastInfo := time.Time{}
	for ctx.Err() == nil {
		if cons == nil {
			var err error
			cons, err = e.bus.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable: routerName, Description: "wisp: fans events out to subscriptions",
				AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 1000,
			})
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("events: the router's consumer", "err", err)
				}
				sleep(ctx, time.Second)
				continue
			}
		}
		if time.Since(lastInfo) > time.Second {
			if info, err := cons.Info(ctx); err == nil {
				e.routerBacklog.Store(int64(info.NumPending) + int64(info.NumAckPending))
				lastInfo = time.Now()
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		batch, err := cons.Fetch(64, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				e.routeOne(ctx, m)
			}
			err = batch.Error()
		}
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			e.log.Warn("events: fetching events to route", "err", err)
			cons = nil // made again, if it was deleted
			sleep(ctx, time.Second)
		}
	}
}

func (e *Events) routeOne(ctx context.Context, m jetstream.Msg) {
	topic := strings.TrimPrefix(m.Subject(), busPrefix)
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
	for _, s := range e.subs.forTopic(topic) {
		if !s.Filter.Match(ev) {
			continue
		}
		err := e.store(ctx, Async{Function: s.Function, Qualifier: s.Qualifier, Payload: m.Data(),
			RequestID: eventRequestID(md.Sequence.Stream, s.ID), Trigger: TriggerTopic,
			DedupID: "ev." + strconv.FormatUint(md.Sequence.Stream, 10) + "." + s.ID}, e.cfg.Now(), 0, time.Time{})
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
func eventRequestID(seq uint64, sub string) string {
	b := sha256.Sum256([]byte(strconv.FormatUint(seq, 10) + "/" + sub))
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
// stored after seq.
func (e *Events) Read(ctx context.Context, topic string, after uint64, limit int) ([]TopicEvent, error) {
	if err := registry.CheckTopic(topic); err != nil {
		return nil, err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{busPrefix + topic}, InactiveThreshold: 10 * time.Second}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	info, err := e.bus.Info(ctx, jetstream.WithSubjectFilter(busPrefix+topic))
	if err != nil {
		return nil, err
	}
	pending := info.State.Subjects[busPrefix+topic]
	out := []TopicEvent{}
	if pending == 0 || (after > 0 && after >= info.State.LastSeq) {
		return out, nil
	}
	c, err := e.bus.OrderedConsumer(ctx, cfg)
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
