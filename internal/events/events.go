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
// It is five parts, each with its own Config, opened in this order (each
// takes the ones before it) and closed in reverse: the Catalog (who
// publishes on which topic), the Bus (the topics and what is published on
// them), the Queue (each function's events and the workers that run
// them), the Router (the subscriptions, and the routers that deliver a
// topic's events to the queues of the functions subscribed) and the
// Scheduler (the schedules' ticks, stored in the queues).
//
// Nothing is shared that one caller could fill for the others: each
// function's queue is a stream of its own with a bound (queues.go), each
// topic a stream of its own with its own retention (topics.go), every size
// in Limits. Who may publish where, and the publisher attribute no one can
// forge, are in publish.go.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

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

// goLoop runs f on a goroutine of its own, counted in wg.
func goLoop(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
}

// waitUntil waits for wait to return or ctx to end, and reports whether
// wait returned.
func waitUntil(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// clockAndLogger fills a part's clock and logger where its config leaves
// them out: time.Now, and a logger that discards.
func clockAndLogger(now *func() time.Time, log **slog.Logger) {
	if *now == nil {
		*now = time.Now
	}
	if *log == nil {
		*log = slog.New(slog.DiscardHandler)
	}
}

type noMetrics struct{}

func (noMetrics) AsyncOutcome(string, string)    {}
func (noMetrics) AsyncAge(string, time.Duration) {}
func (noMetrics) Published(string)               {}
