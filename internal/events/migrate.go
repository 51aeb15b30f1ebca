package events

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/registry"
)

// The layout before a stream per function and per topic: one stream held
// every function's events, one every topic's. A node moves what they hold
// into the new streams, deleting each message once its copy is stored, and
// deletes the old streams once they are empty. Nodes of the old layout
// write there until they are upgraded too; what they write is moved in
// turn, until the streams are gone.
const (
	legacyQueueStream = "wisp_async"
	legacyQueuePrefix = "wisp.async." // + function
	legacyBusStream   = "wisp_events"
	legacyBusPrefix   = "wisp.events." // + topic
	legacyRouter      = "router"
	// moveEvery is how often a node looks again at old streams that are
	// not empty yet.
	moveEvery = 10 * time.Second
)

// moveUntilGone runs move, which moves the events of one old stream
// (what names it) and reports whether it is gone, until it is or ctx ends.
func moveUntilGone(ctx context.Context, log *slog.Logger, what string, move func(context.Context) (bool, error)) {
	for ctx.Err() == nil {
		done, err := move(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("events: moving the events of the old "+what, "err", err)
		}
		if done {
			return
		}
		sleep(ctx, moveEvery)
	}
}

// moveLegacyQueue moves every event of the old queue to its function's
// queue. They were accepted, so they take the headroom over the bound; an
// event its queue has no room for even there stays, to be moved later.
// It reports whether the old queue is gone.
func (e *Queue) moveLegacyQueue(ctx context.Context) (bool, error) {
	old, err := e.cfg.JS.Stream(ctx, legacyQueueStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	moved, kept := 0, 0
	for seq := old.CachedInfo().State.FirstSeq; ; {
		raw, err := old.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(legacyQueuePrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return false, err
		}
		seq = raw.Sequence + 1
		fn := strings.TrimPrefix(raw.Subject, legacyQueuePrefix)
		if registry.ValidName("function", fn) != nil {
			continue // not one of ours
		}
		err = e.put(ctx, fn, movedMsg(queuePrefix+fn, raw), false)
		if isStreamFull(err) {
			kept++
			continue
		}
		if err != nil {
			return false, err
		}
		if err := old.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, err
		}
		moved++
	}
	if moved > 0 || kept > 0 {
		e.log.Info("events: events moved from the old queue to their functions' queues", "moved", moved, "kept", kept)
	}
	return dropIfEmpty(ctx, e.cfg.JS, e.log, old)
}

// moveLegacyBus moves every event of the old topic stream to its topic's
// stream, in order. Those its router had delivered are marked so, and are
// only history; the others are delivered from the topic's stream, with the
// delivery ids they would have had.
func (r *Router) moveLegacyBus(ctx context.Context) (bool, error) {
	old, err := r.cfg.JS.Stream(ctx, legacyBusStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var routed uint64
	cons, err := old.Consumer(ctx, legacyRouter)
	switch {
	case err == nil:
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err
		}
		routed = info.AckFloor.Stream
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return false, err
	}
	moved, routers := 0, map[string]bool{}
	seq := old.CachedInfo().State.FirstSeq
	for ; ; moved++ {
		raw, err := old.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(legacyBusPrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return false, err
		}
		seq = raw.Sequence + 1
		topic := strings.TrimPrefix(raw.Subject, legacyBusPrefix)
		if registry.CheckTopic(topic) != nil {
			continue
		}
		m := movedMsg(topicPrefix+topic, raw)
		m.Header.Set(hLegacySeq, strconv.FormatUint(raw.Sequence, 10))
		if raw.Sequence <= routed {
			m.Header.Set(hRouted, "1")
		} else if len(r.subs.forTopic(topic)) > 0 && !routers[topic] {
			// Its router must be there before it is, to deliver it.
			if _, err := r.cfg.Bus.openRouter(ctx, topic, true); err != nil {
				return false, err
			}
			routers[topic] = true
		}
		if _, err := r.cfg.Bus.topicStream(ctx, topic, true); err != nil {
			return false, err
		}
		if _, err := r.cfg.JS.PublishMsg(ctx, m); err != nil {
			return false, err
		}
		if moved%256 == 255 {
			if err := old.Purge(ctx, jetstream.WithPurgeSequence(seq)); err != nil {
				return false, err
			}
		}
	}
	if err := old.Purge(ctx, jetstream.WithPurgeSequence(seq)); err != nil {
		return false, err
	}
	if moved > 0 {
		r.log.Info("events: events moved from the old topic stream to their topics", "moved", moved)
	}
	return dropIfEmpty(ctx, r.cfg.JS, r.log, old)
}

// movedMsg is an old stream's message for its new stream, with a dedup id
// of its old place: two nodes moving it at once store it once.
func movedMsg(subject string, raw *jetstream.RawStreamMsg) *nats.Msg {
	h := nats.Header{}
	for k, vs := range raw.Header {
		h[k] = append([]string(nil), vs...)
	}
	h.Set(jetstream.MsgIDHeader, "moved."+raw.Subject+"."+strconv.FormatUint(raw.Sequence, 10))
	return &nats.Msg{Subject: subject, Header: h, Data: raw.Data}
}

// dropIfEmpty deletes an old stream that holds nothing more, and reports
// whether it is gone.
func dropIfEmpty(ctx context.Context, js jetstream.JetStream, log *slog.Logger, old jetstream.Stream) (bool, error) {
	info, err := old.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.State.Msgs > 0 {
		return false, nil
	}
	if err := js.DeleteStream(ctx, info.Config.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, err
	}
	log.Info("events: the old stream is empty and deleted", "stream", info.Config.Name)
	return true, nil
}
