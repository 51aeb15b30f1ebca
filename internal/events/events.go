// Package events owns what invokes functions besides a caller waiting for
// the answer: the async queue (events with retries, destinations and dead
// letters), the event bus (topics of CloudEvents and the subscriptions that
// bind them to functions) and schedules.
//
// All of it lives in JetStream, so every node sharing the NATS shares the
// work: an accepted event is stored before it is acknowledged, consumed by
// whichever node pulls it first, and acknowledged only once its outcome is
// stored in turn. Delivery is at least once; a function that must not run
// twice for one event keeps the request id, which stays the same across
// retries.
//
// Nothing is shared that one caller could fill for the others: each
// function's queue is a stream of its own with a bound (queues.go), each
// topic a stream of its own with its own retention (topics.go), every size
// in Limits. Who may publish where, and the publisher attribute no one can
// forge, are in publish.go.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// Invoker runs invocations through the node's pools and limits.
type Invoker interface {
	Invoke(ctx context.Context, req invoke.Request) (*invoke.Response, error)
	Resolve(name, qualifier string) (registry.Target, error)
}

// Registry lists the functions and says when they change.
type Registry interface {
	Functions() []registry.Function
	Watch(ctx context.Context) (<-chan registry.Change, error)
}

// LogSink stores log records.
type LogSink interface {
	Append(telemetry.Record)
}

// Metrics hears of events.
type Metrics interface {
	// AsyncOutcome counts an attempt's outcome: success, retry,
	// failure (dead-lettered or sent to the failure destination),
	// expired, throttled.
	AsyncOutcome(function, outcome string)
	// AsyncAge observes how long an event waited before an attempt.
	AsyncAge(function string, d time.Duration)
	// Published counts an event accepted on a topic, by the kind of its
	// publisher (auth.PrincipalKind: admin, function, node), a bounded
	// set, unlike topics, which callers name.
	Published(publisher string)
}

// Config is what Events needs. JS, Invoker and Registry are required.
type Config struct {
	JS       jetstream.JetStream
	Invoker  Invoker
	Registry Registry
	Logs     LogSink // nil: none
	Metrics  Metrics // nil: none
	Logger   *slog.Logger
	// Now is the clock of event ages and schedules; default time.Now.
	Now func() time.Time
	// Region and Account go into scheduled events and ARNs.
	Region, Account string
	// RetryBase is the wait before a failed event's first retry; each
	// retry waits twice the one before, up to RetryMax, with jitter.
	// Defaults 1 minute and 5 minutes, as Lambda.
	RetryBase, RetryMax time.Duration
	// ThrottleBase is the first wait of an event its function had no
	// room for; it grows as RetryBase does. Default 1s.
	ThrottleBase time.Duration
	// AckWait is how long a node may go silent on an event before
	// another takes it over; default 30s. Busy events are kept alive.
	AckWait time.Duration
	// Workers bounds the events of one function a node runs at once;
	// default 32, and never more than the function's reserved concurrency.
	Workers int
	// Requests, if set, counts the calls the node has taken whose callers
	// wait for the answer (sync invocations, function URLs), so far: while
	// there are such and the CPU is saturated, the node runs fewer events
	// at once (see pace). Nil: events run as their workers allow.
	Requests func() uint64
	// ScheduleEvery is how often schedules are checked; default 1s.
	ScheduleEvery time.Duration
	// Limits bound the queues and the topics; zero fields take their
	// defaults.
	Limits Limits
	// NodeTopics are topic patterns (registry.CheckTopicPattern) only the
	// node publishes on, besides dead letters (dlq.…) and the topics
	// functions send outcomes to: no API caller may, the admin included.
	NodeTopics []string
}

// Events is a node's part of the async queue, the bus and the scheduler.
type Events struct {
	cfg    Config
	lim    Limits
	log    *slog.Logger
	subs   *subscriptions
	sched  jetstream.KeyValue
	scheds schedules
	cat    *catalog
	stop   context.CancelFunc
	wg     sync.WaitGroup // the loops
	// pace bounds the events this node runs at once, with its CPU.
	pace   *pace
	mu     sync.Mutex
	groups map[string]*group // guarded by mu; the running worker groups, by function
	// retired are groups stopped while their last events may still run;
	// Close waits for them too. Guarded by mu.
	retired []*group
	closed  bool               // guarded by mu
	routers map[string]*router // guarded by mu; by topic
	// emptyQueues are deleted functions whose queue was empty when last
	// looked at; only the workers' supervisor uses it.
	emptyQueues map[string]bool

	qmu    sync.Mutex
	queues map[string]*queue // guarded by qmu; the queues opened, by function

	tmu          sync.Mutex
	topicStreams map[string]jetstream.Stream // guarded by tmu; the topics opened
	backlogs     map[string]backlog          // guarded by tmu; by topic, as routers last saw
	topicCount   int                         // guarded by tmu; topics callers made, as last counted
	topicCountAt time.Time                   // guarded by tmu

	// outcomeTopics are the topics functions send outcomes to, which
	// only the node writes: topic → why.
	outcomeTopics atomic.Pointer[map[string]string]
}

// Open creates the buckets if need be and starts the node's workers, the
// routers of the subscribed topics, the move of the old layout's events
// and the scheduler; Close stops them.
func Open(ctx context.Context, cfg Config) (*Events, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = time.Minute
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.ThrottleBase == 0 {
		cfg.ThrottleBase = time.Second
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 32
	}
	if cfg.ScheduleEvery == 0 {
		cfg.ScheduleEvery = time.Second
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.Account == "" {
		cfg.Account = arn.DefaultAccount
	}
	for _, p := range cfg.NodeTopics {
		if err := registry.CheckTopicPattern(p); err != nil {
			return nil, fmt.Errorf("events: a node topic: %w", err)
		}
	}
	e := &Events{cfg: cfg, lim: cfg.Limits.withDefaults(), log: cfg.Logger, groups: map[string]*group{}, pace: newPace(),
		routers: map[string]*router{}, emptyQueues: map[string]bool{}, queues: map[string]*queue{},
		topicStreams: map[string]jetstream.Stream{}, backlogs: map[string]backlog{},
		scheds: schedules{parsed: map[string]parsed{}, states: map[string]knownState{}}}
	e.syncOutcomeTopics(cfg.Registry.Functions())
	var err error
	if e.sched, err = cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: scheduleBucket, Description: "wisp: the last tick each schedule fired", History: 1,
		Storage: jetstream.FileStorage, MaxBytes: bucketBytes}); err != nil {
		return nil, fmt.Errorf("events: schedule bucket: %w", err)
	}
	if e.cat, err = openCatalog(ctx, cfg.JS, cfg.Now, e.log); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	if e.subs, err = openSubscriptions(lctx, cfg.JS, &e.wg, e.log); err != nil {
		cancel()
		return nil, err
	}
	changes, err := cfg.Registry.Watch(lctx)
	if err != nil {
		cancel()
		return nil, err
	}
	e.goLoop(func() { e.pace.follow(lctx, machineCPU, cfg.Requests) })
	e.goLoop(func() { e.superviseWorkers(lctx, changes) })
	e.goLoop(func() { e.superviseRouters(lctx) })
	e.goLoop(func() { e.moveLegacy(lctx) })
	e.goLoop(func() { e.runSchedules(lctx) })
	e.goLoop(func() { e.cat.flushEvery(lctx, time.Second) })
	return e, nil
}

func (e *Events) goLoop(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// Close stops taking events and waits, until ctx ends, for the events
// being run to finish; an event cut off is run again, here after a restart
// or on another node.
func (e *Events) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	groups := e.retired
	for _, g := range e.groups {
		groups = append(groups, g)
	}
	e.groups, e.retired = map[string]*group{}, nil
	e.mu.Unlock()
	e.stop()
	for _, g := range groups {
		g.stop()
	}
	done := make(chan struct{})
	go func() {
		for _, g := range groups {
			g.wait()
		}
		e.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.New("events: events still running at shutdown will run again")
	}
	if ferr := e.cat.flush(context.WithoutCancel(ctx)); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return err
}

type noMetrics struct{}

func (noMetrics) AsyncOutcome(string, string)    {}
func (noMetrics) AsyncAge(string, time.Duration) {}
func (noMetrics) Published(string)               {}
