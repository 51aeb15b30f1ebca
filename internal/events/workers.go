package events

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/registry"
)

// A group is this node's workers of one function's events: a durable
// consumer of the function's subject, shared by every node, pulled only as
// fast as the workers come free, so no event waits in one node's buffer
// while another node is idle.
type group struct {
	fn      string
	workers int
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the pull loop and the events it runs
	done    chan struct{}  // closed when wg is done
}

func (g *group) stop() { g.cancel() }
func (g *group) wait() { <-g.done }

func (g *group) ended() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func consumerName(fn string) string { return "fn-" + fn }

// superviseWorkers keeps a group per function, and per function that is
// gone but left events, until ctx ends.
func (e *Queue) superviseWorkers(ctx context.Context, changes <-chan registry.Change) {
	e.syncGroups(ctx)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			if c.Kind == registry.KindFunction {
				e.syncGroups(ctx)
			}
		case <-t.C:
			e.syncGroups(ctx)
		}
	}
}

// workersFor is how many events of f a node runs at once: never more
// than its reserved concurrency, but one even at 0, so that its events
// are seen to wait and, when too old, to fail.
func (e *Queue) workersFor(f registry.Function) int {
	n := e.cfg.Workers
	if f.Concurrency != nil {
		n = max(1, min(n, *f.Concurrency))
	}
	return n
}

func (e *Queue) syncGroups(ctx context.Context) {
	want := map[string]int{}
	fns := e.cfg.Registry.Functions()
	e.cfg.Bus.syncOutcomeTopics(fns)
	for _, f := range fns {
		want[f.Name] = e.workersFor(f)
		if err := e.syncQueue(ctx, f.Name); err != nil && ctx.Err() == nil {
			e.log.Warn("events: the queue of a function", "function", f.Name, "err", err)
		}
	}
	// Events of a deleted function still run, to its dead-letter topic;
	// the queue of one with none left goes, once seen empty twice (an
	// event a node stored just before it heard of the delete would
	// otherwise go with it).
	var gone []string
	infos, err := e.queueInfos(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("events: reading the queues", "err", err)
		}
	}
	for fn, info := range infos {
		switch {
		case want[fn] > 0:
			delete(e.emptyQueues, fn)
		case info.State.Msgs > 0:
			want[fn] = 1
			delete(e.emptyQueues, fn)
		case e.emptyQueues[fn]:
			gone = append(gone, fn)
			delete(e.emptyQueues, fn)
		default:
			e.emptyQueues[fn] = true
		}
	}
	if err == nil {
		// Queues another node deleted are forgotten here too.
		e.qmu.Lock()
		for fn := range e.queues {
			if infos[fn] == nil {
				delete(e.queues, fn)
			}
		}
		e.qmu.Unlock()
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.retired = slices.DeleteFunc(e.retired, (*group).ended)
	for fn, g := range e.groups {
		if n, ok := want[fn]; !ok || n != g.workers {
			g.stop()
			delete(e.groups, fn)
			e.retired = append(e.retired, g)
		}
	}
	for fn, n := range want {
		if _, ok := e.groups[fn]; !ok {
			e.groups[fn] = e.startGroup(ctx, fn, n)
		}
	}
	e.mu.Unlock()
	for _, fn := range gone {
		e.qmu.Lock()
		delete(e.queues, fn)
		e.qmu.Unlock()
		if err := e.cfg.JS.DeleteStream(ctx, queueStreamName(fn)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			e.log.Warn("events: removing the queue of a deleted function", "function", fn, "err", err)
		}
	}
}

// consumer returns the durable consumer of a function's events, made if
// need be. An existing one is not changed: its AckWait is the one every
// node keeps events alive by. It does not make the function's stream:
// a group whose queue is gone waits.
func (e *Queue) consumer(ctx context.Context, fn string) (jetstream.Consumer, error) {
	s, err := e.cfg.JS.Stream(ctx, queueStreamName(fn))
	if err != nil {
		return nil, err
	}
	cons, err := s.Consumer(ctx, consumerName(fn))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:     consumerName(fn),
			Description: "wisp: the workers of " + fn + "'s events",
			AckPolicy:   jetstream.AckExplicitPolicy,
			AckWait:     e.cfg.AckWait,
			MaxDeliver:  -1,
			// Events waiting for a retry or for room count as pending.
			MaxAckPending: 100_000,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = s.Consumer(ctx, consumerName(fn))
		}
	}
	return cons, err
}

func (e *Queue) startGroup(ctx context.Context, fn string, workers int) *group {
	gctx, cancel := context.WithCancel(ctx)
	g := &group{fn: fn, workers: workers, cancel: cancel, done: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		e.pull(gctx, g)
	}()
	// The pull loop holds wg until it ends, and only it adds to wg.
	go func() {
		g.wg.Wait()
		close(g.done)
	}()
	return g
}

// pull fetches as many events as there are free workers and runs each
// as it arrives, until ctx ends; it makes the consumer again if it goes.
func (e *Queue) pull(ctx context.Context, g *group) {
	free := make(chan struct{}, g.workers)
	for range g.workers {
		free <- struct{}{}
	}
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = e.consumer(ctx, g.fn); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("events: the consumer of a function's events", "function", g.fn, "err", err)
				}
				sleep(ctx, time.Second)
				continue
			}
		}
		ackWait := cons.CachedInfo().Config.AckWait
		n := 0
		select {
		case <-free:
			n = 1
		case <-ctx.Done():
			return
		}
	more:
		for n < g.workers {
			select {
			case <-free:
				n++
			default:
				break more
			}
		}
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				n--
				g.wg.Add(1)
				go func() {
					defer g.wg.Done()
					defer func() { free <- struct{}{} }()
					// The node's pace lets it run once the CPU has room
					// for it; meanwhile it is kept, not redelivered.
					if err := e.pace.acquireKeeping(ctx, m, ackWait/3); err != nil {
						m.Nak() //nolint:errcheck // it did not run; redelivered after AckWait if lost
						return
					}
					defer e.pace.release()
					sleep(ctx, e.handle(ctx, m, ackWait/3))
				}()
			}
			err = batch.Error()
		}
		cancel()
		for range n {
			free <- struct{}{}
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			e.log.Warn("events: fetching events", "function", g.fn, "err", err)
			cons = nil // made again, if it was deleted
			sleep(ctx, time.Second)
		}
	}
}

// fetchWait is how long a pull waits for events: an idle function costs a
// request per node this often.
const fetchWait = 30 * time.Second

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
