package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
)

// PublisherAttribute is the CloudEvents extension attribute the node sets
// on every event it stores, saying who published it, as auth names
// principals: admin, function:NAME or node. It is the one attribute of an
// event a subscriber can trust (a source is whatever the publisher said),
// and filters can match it like any other. No publisher may set it: an
// event that carries it is refused.
const PublisherAttribute = "wisppublisher"

// hPrincipal is the stored event's header saying who published it, the
// same value as its publisher attribute, read back without parsing it.
const hPrincipal = "Wisp-Principal"

var (
	// ErrForbidden is a publish its caller may not make: on a topic only
	// the node writes, or one its function's grants do not match.
	ErrForbidden = errors.New("events: forbidden")
	// ErrInvalid is an event refused as it is.
	ErrInvalid = errors.New("events: invalid event")
)

// Publish stores an event an API caller sends on a topic, for every
// subscription that matches it, and returns once it cannot be lost.
// principal is who the caller is (auth.PrincipalAdmin, or a function's);
// the event says so in its publisher attribute. A function publishes only
// to the topics its publish grants match, read now, so a changed grant
// counts at once; nobody publishes on the node's own topics. An event with
// the source and id of one published on the topic in the last two minutes
// is stored once.
func (b *Bus) Publish(ctx context.Context, topic string, ev cloudevent.Event, principal string) error {
	if err := registry.CheckTopic(topic); err != nil {
		return err
	}
	if _, ok := ev.Extensions[PublisherAttribute]; ok {
		return fmt.Errorf("the %s attribute says who published an event, and only the node sets it: %w", PublisherAttribute, ErrInvalid)
	}
	if err := b.mayPublish(topic, principal); err != nil {
		return err
	}
	return b.publish(ctx, topic, ev, principal, MaxPayload, false)
}

// PublishNode stores an event the node itself publishes (a spend cap's
// notice, say), on any topic, the node's own included.
func (b *Bus) PublishNode(ctx context.Context, topic string, ev cloudevent.Event) error {
	return b.publish(ctx, topic, ev, auth.PrincipalNode, maxInternal, true)
}

// mayPublish says why principal may not publish on topic, if it may not.
func (b *Bus) mayPublish(topic, principal string) error {
	if why := b.nodeOwned(topic); why != "" {
		return fmt.Errorf("topic %s is written by the node only (%s): %w", topic, why, ErrForbidden)
	}
	fn, ok := auth.PrincipalFunction(principal)
	if !ok {
		return nil // the admin
	}
	t, err := b.cfg.Registry.Resolve(fn, "", rand.Float64) // $LATEST: nothing to pick
	if err != nil {
		return fmt.Errorf("function %s is gone, so its token publishes nothing: %w", fn, ErrForbidden)
	}
	grants := t.Function.Publish
	for _, g := range grants {
		if registry.TopicMatches(g, topic) {
			return nil
		}
	}
	if len(grants) == 0 {
		return fmt.Errorf("function %s may not publish to topic %s: it has no publish grants (give some with wisp deploy --publish): %w", fn, topic, ErrForbidden)
	}
	return fmt.Errorf("function %s may not publish to topic %s: its publish grants are %s: %w", fn, topic, strings.Join(grants, ", "), ErrForbidden)
}

// nodeOwned says why only the node writes a topic, or "" when callers may
// publish on it: dead letters, the topics BusConfig.NodeTopics names, and
// every topic a function's config sends outcomes to.
func (b *Bus) nodeOwned(topic string) string {
	if registry.IsDeadLetterTopic(topic) {
		return "dead letters go there"
	}
	for _, p := range b.cfg.NodeTopics {
		if registry.TopicMatches(p, topic) {
			return "the node publishes there"
		}
	}
	if owners := b.outcomeTopics.Load(); owners != nil {
		return (*owners)[topic]
	}
	return ""
}

// syncOutcomeTopics notes the topics functions' configs send outcomes to.
func (b *Bus) syncOutcomeTopics(fns []registry.Function) {
	owners := map[string]string{}
	for _, f := range fns {
		for what, d := range map[string]string{"success destination": f.Async.OnSuccess, "failure destination": f.Async.OnFailure} {
			if t, ok := strings.CutPrefix(d, "topic:"); ok {
				owners[t] = "the " + what + " of function " + f.Name
			}
		}
		if f.Async.DeadLetter != "" {
			owners[f.Async.DeadLetter] = "the dead-letter topic of function " + f.Name
		}
	}
	b.outcomeTopics.Store(&owners)
}

// publish stores an event on a topic as principal published it, with a
// size limit: the node's own records may be larger than what callers may
// send. A topic byNode makes does not count against MaxTopics.
func (b *Bus) publish(ctx context.Context, topic string, ev cloudevent.Event, principal string, limit int, byNode bool) error {
	if err := registry.CheckTopic(topic); err != nil {
		return err
	}
	ev.Extensions = maps.Clone(ev.Extensions)
	if ev.Extensions == nil {
		ev.Extensions = map[string]string{}
	}
	ev.Extensions[PublisherAttribute] = principal
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
	if err := b.busy(topic); err != nil {
		return err
	}
	m := nats.NewMsg(topicPrefix + topic)
	m.Data = data
	m.Header.Set(hPrincipal, principal)
	sum := sha256.Sum256([]byte(topic + "\x00" + ev.Source + "\x00" + ev.ID))
	m.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(sum[:16]))
	for try := 0; ; try++ {
		if _, err := b.topicStream(ctx, topic, byNode); err != nil {
			return err
		}
		ack, err := b.cfg.JS.PublishMsg(ctx, m)
		if errors.Is(err, jetstream.ErrNoStreamResponse) && try == 0 {
			b.forgetTopic(topic) // dropped as idle meanwhile: made again
			continue
		}
		if err != nil {
			return fmt.Errorf("events: storing an event on %s: %w", topic, err)
		}
		if !ack.Duplicate {
			b.cfg.Catalog.saw(topic, ev.Source, principal)
			b.cfg.Metrics.Published(auth.PrincipalKind(principal))
		}
		return nil
	}
}
