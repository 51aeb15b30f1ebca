package events

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

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
	wg      sync.WaitGroup
}

func (g *group) stop() { g.cancel() }
func (g *group) wait() { g.wg.Wait() }

func consumerName(fn string) string { return "fn-" + fn }

// superviseWorkers keeps a group per function, and per function that is
// gone but left events, until ctx ends.
func (e *Events) superviseWorkers(ctx context.Context, changes <-chan registry.Change) {
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
func (e *Events) workersFor(f registry.Function) int {
	n := e.cfg.Workers
	if f.Concurrency != nil {
		n = max(1, min(n, *f.Concurrency))
	}
	return n
}

func (e *Events) syncGroups(ctx context.Context) {
	want := map[string]int{}
	for _, f := range e.cfg.Registry.Functions() {
		want[f.Name] = e.workersFor(f)
	}
	// Events of a deleted function still run, to their dead-letter topic.
	var orphans map[string]uint64
	info, err := e.async.Info(ctx, jetstream.WithSubjectFilter(asyncPrefix+">"))
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("events: reading the queue", "err", err)
		}
	} else {
		orphans = info.State.Subjects
		for subj := range orphans {
			if fn := strings.TrimPrefix(subj, asyncPrefix); want[fn] == 0 {
				want[fn] = 1
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	for fn, g := range e.groups {
		if n, ok := want[fn]; !ok || n != g.workers {
			g.stop()
			delete(e.groups, fn)
			if !ok && err == nil {
				// Nothing is left for it: its consumer goes too.
				if derr := e.async.DeleteConsumer(ctx, consumerName(fn)); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
					e.log.Warn("events: removing the consumer of a deleted function", "function", fn, "err", derr)
				}
			}
		}
	}
	for fn, n := range want {
		if _, ok := e.groups[fn]; ok {
			continue
		}
		g, err := e.startGroup(ctx, fn, n)
		if err != nil {
			e.log.Warn("events: starting the workers of a function", "function", fn, "err", err)
			continue
		}
		e.groups[fn] = g
	}
}

func (e *Events) startGroup(ctx context.Context, fn string, workers int) (*group, error) {
	cons, err := e.async.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerName(fn),
		Description:   "wisp: the workers of " + fn + "'s events",
		FilterSubject: asyncPrefix + fn,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       e.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 10000,
	})
	if err != nil {
		return nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	g := &group{fn: fn, workers: workers, cancel: cancel}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		e.pull(gctx, g, cons)
	}()
	return g, nil
}

// pull fetches as many events as there are free workers and runs each
// as it arrives, until ctx ends.
func (e *Events) pull(ctx context.Context, g *group, cons jetstream.Consumer) {
	free := make(chan struct{}, g.workers)
	for range g.workers {
		free <- struct{}{}
	}
	for ctx.Err() == nil {
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
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			for range n {
				free <- struct{}{}
			}
			if ctx.Err() == nil {
				e.log.Warn("events: fetching events", "function", g.fn, "err", err)
				time.Sleep(time.Second)
			}
			continue
		}
		for m := range batch.Messages() {
			n--
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() { free <- struct{}{} }()
				e.handle(ctx, m)
			}()
		}
		cancel()
		for range n {
			free <- struct{}{}
		}
	}
}

// Queued returns the events stored for each function, over every node,
// waiting or running.
func (e *Events) Queued() map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]uint64{}
	info, err := e.async.Info(ctx, jetstream.WithSubjectFilter(asyncPrefix+">"))
	if err != nil {
		e.log.Warn("events: reading the queue", "err", err)
		return out
	}
	for subj, n := range info.State.Subjects {
		out[strings.TrimPrefix(subj, asyncPrefix)] = n
	}
	return out
}
