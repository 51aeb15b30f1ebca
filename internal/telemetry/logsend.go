package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// maxPendingMessages bounds the messages sent and not yet stored, and
	// maxFlightBytes their bytes (the budget bounds them with the queue).
	maxPendingMessages = 4096
	maxFlightBytes     = 2 << 20
	// Records of a function queued together are stored as one message
	// (NDJSON) of at most maxBatchBytes, which costs the stream far less
	// than a message per line.
	maxBatchBytes = 512 << 10
)

// errAborted is a record Close gave up on.
var errAborted = errors.New("telemetry: logs closed before the record was stored")

// sent is a message handed to the server, or a Flush waiting for every
// message before it: the sender passes them to the acker in order.
type sent struct {
	function string
	future   jetstream.PubAckFuture
	records  int64
	cost     int64 // the records' recordCost
	held     int64 // the budget's bytes they hold
	flying   int64 // the bytes of flight they hold
	flushed  chan error
}

// send is the goroutine that publishes the queued records, in order for
// each function, and writes the notes of dropped records that are due.
// It ends after Close, once what was queued is sent or given up on.
func (l *Logs) send(ctx context.Context) {
	defer close(l.sent)
	tick := time.NewTicker(noteEvery / 4)
	defer tick.Stop()
	var spare []item
	for {
		select {
		case <-l.wake:
			spare = l.sendQueued(ctx, spare)
		case <-tick.C:
			now := l.now()
			for _, n := range l.rates.due(now) {
				l.note(n, now)
			}
		case <-l.stop:
			// Close has set closed: nothing is queued after this.
			l.sendQueued(ctx, spare)
			return
		}
	}
}

// sendQueued sends what is queued, and returns the emptied queue for the
// next time.
func (l *Logs) sendQueued(ctx context.Context, spare []item) []item {
	l.mu.Lock()
	items := l.queue
	l.queue = spare[:0]
	l.mu.Unlock()
	start := 0
	for i, it := range items {
		if it.flushed != nil {
			l.sendRun(ctx, items[start:i])
			l.sent <- sent{flushed: it.flushed}
			start = i + 1
		}
	}
	l.sendRun(ctx, items[start:])
	clear(items) // the lines are the messages' now
	return items
}

// sendRun sends records queued between two flushes: each function's in
// messages of their own, in the order they came.
func (l *Logs) sendRun(ctx context.Context, items []item) {
	if len(items) == 0 {
		return
	}
	var (
		order      []string
		byFunction = map[string][]int{} // indexes into items
	)
	for i, it := range items {
		if _, ok := byFunction[it.function]; !ok {
			order = append(order, it.function)
		}
		byFunction[it.function] = append(byFunction[it.function], i)
	}
	for _, fn := range order {
		l.sendFunction(ctx, fn, items, byFunction[fn])
	}
}

// sendFunction sends one function's records, items[idx], to its stream,
// made first if need be. Each record's line is let go once it is in its
// message, so the node holds its bytes once.
func (l *Logs) sendFunction(ctx context.Context, function string, items []item, idx []int) {
	ret, err := l.streams.ensure(ctx, function)
	if err != nil {
		for _, i := range idx {
			l.room.give(items[i].held)
			items[i].line = nil
			if errors.Is(err, errNoFunction) {
				l.gone.Add(1) // its function is gone, and its logs with it
				continue
			}
			l.cfg.Metrics.LogDropped(function, DropFailed, items[i].cost)
			l.lose(&l.failed, "no stream", err)
		}
		return
	}
	// A batch never outgrows a small stream.
	batch := int(min(maxBatchBytes, ret.maxBytes/16))
	var (
		msg  sent
		data []byte
	)
	for k, i := range idx {
		it := &items[i]
		if len(data) > 0 && len(data)+len(it.line)+1 > batch {
			l.publish(function, data, msg)
			msg, data = sent{}, nil
		}
		if data == nil {
			size := 0
			for _, j := range idx[k:] {
				if size += len(items[j].line) + 1; size >= batch {
					break
				}
			}
			data = make([]byte, 0, size)
		}
		data = append(append(data, it.line...), '\n')
		it.line = nil
		msg.records++
		msg.cost += it.cost
		msg.held += it.held
	}
	if len(data) > 0 {
		l.publish(function, data, msg)
	}
}

// publish hands one message of a function's records to the server and
// the acker.
func (l *Logs) publish(function string, data []byte, msg sent) {
	msg.function = function
	// What waits for the server is held twice, here and in the server
	// until it is stored: it gets a smaller bound of its own.
	if !l.flight.take(int64(len(data)), l.abort, nil) {
		l.notStored(msg, errAborted)
		return
	}
	msg.flying = int64(len(data))
	for {
		select {
		case <-l.abort:
			l.notStored(msg, errAborted)
			return
		default:
		}
		// The publisher keeps data until the server answers.
		f, err := l.pub.PublishAsync(logSubjectPrefix+function, data)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			continue // maxPendingMessages wait for the server: wait with them
		}
		if err != nil {
			l.notStored(msg, err)
			return
		}
		msg.future = f
		break
	}
	l.sent <- msg
}

// ack is the goroutine that waits, in order, for the server to store
// each message sent, gives its bytes back to the budget, and answers each
// Flush once every message before it is stored or failed. It ends when
// the sender has.
func (l *Logs) ack() {
	for s := range l.sent {
		if s.flushed != nil {
			lost := l.lost()
			s.flushed <- lostError(lost - l.lostAtFlush)
			l.lostAtFlush = lost
			continue
		}
		select {
		case <-s.future.Ok():
			l.room.give(s.held)
			l.flight.give(s.flying)
		case err := <-s.future.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				l.streams.missing(s.function) // deleted under us: made again next time
			}
			l.notStored(s, err)
		}
	}
}

// notStored counts a message the server did not store.
func (l *Logs) notStored(s sent, err error) {
	l.room.give(s.held)
	l.flight.give(s.flying)
	l.cfg.Metrics.LogDropped(s.function, DropFailed, s.cost)
	l.failed.Add(s.records - 1)
	l.lose(&l.failed, "not stored", err)
}
