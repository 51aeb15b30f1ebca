package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// asyncEnqueueGoal is the durable enqueue rate the async queue should
// reach over the Invoke API.
const asyncEnqueueGoal = 20_000

// asyncMaxTrials bounds the trials of the async section, which are long.
const asyncMaxTrials = 3

// asyncRunTimeout bounds how long one end-to-end run may take to drain.
const asyncRunTimeout = 2 * time.Minute

// Where the events package keeps a function's queue (a stream of its own,
// internal/events/queues.go): the bench purges a function's events between
// trials. A purge that leaves events behind fails the run, so a rename
// cannot go unnoticed.
const asyncStreamPrefix = "wisp_async_"

// asyncWarmupEvents are the untimed events that start a function's
// instances before its end-to-end trials.
const asyncWarmupEvents = 200

// asyncPayload is every event's payload.
var asyncPayload = []byte(`{"name":"x"}`)

// enqueueRow is one way of enqueueing at one concurrency, over the trials.
type enqueueRow struct {
	target string
	http   bool // over the Invoke API, paired with a bare net/http run
	conns  int
	rate   []float64 // events/s, one per trial
	bare   []float64 // the paired bare run's req/s, HTTP rows only
	ratio  []float64 // rate over bare, per trial
	// throttled is, per trial, the attempts the function's queue worker
	// made (each refused for want of concurrency) while the run lasted.
	throttled []float64
	errors    int
	firstErr  string
}

// eventRunRow is a no-op function's events, enqueued at once and run.
type eventRunRow struct {
	target   string
	skip     string
	events   int
	enqueued []time.Duration // from the first enqueue to the last one's answer
	drained  []time.Duration // from the first enqueue until the queue was empty
	rate     []float64       // events/s, from drained
	// syncRPS is the warm section's req/s of the same function, 0 when it
	// has none; syncConns its connections.
	syncRPS   float64
	syncConns int
}

// asyncResults is what the async events section found.
type asyncResults struct {
	events, runEvents int
	trials            int
	workers           int // enqueueing goroutines of the end-to-end rows
	enqueue           []*enqueueRow
	runs              []*eventRunRow
}

// asyncConns are the concurrencies of the enqueue rows.
func (b *bench) asyncConns() []int {
	return slices.Compact(slices.Sorted(slices.Values([]int{b.o.conns, 64})))
}

// asyncRuns measures the async queue on a node of its own, whose embedded
// NATS listens on loopback so that the bench can empty the queue between
// trials.
func (b *bench) asyncRuns(ctx context.Context, bareURL string, goCode []byte, warm []*loadRow) (_ *asyncResults, err error) {
	started := time.Now()
	defer func() { b.progress("async: the section took %s", time.Since(started).Round(100*time.Millisecond)) }()
	n, err := startNodeConfig(ctx, server.Config{DataDir: filepath.Join(b.tmp, "node-async"), NATSListen: loopback + ":0"})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, n.stop(ctx)) }()
	nc, err := nats.Connect(n.node.NATSURL())
	if err != nil {
		return nil, fmt.Errorf("connecting to the async node's NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	res := &asyncResults{events: b.o.asyncEvents, runEvents: b.o.asyncRunEvents, trials: min(b.o.trials, asyncMaxTrials),
		workers: b.o.conns}
	goRT := &runtimeUnderTest{label: "Go", runtime: "go", handler: "bootstrap", code: goCode}

	// 1. The durable enqueue rate.
	for _, conns := range b.asyncConns() {
		res.enqueue = append(res.enqueue, &enqueueRow{target: "Invoke API, `X-Amz-Invocation-Type: Event`", http: true, conns: conns})
	}
	for _, conns := range b.asyncConns() {
		res.enqueue = append(res.enqueue, &enqueueRow{target: "in-process `Events.Enqueue`", conns: conns})
	}
	invokeBase := n.node.URL() + "/2015-03-31/functions/"
	for trial := range res.trials {
		for _, row := range res.enqueue {
			b.progress("async trial %d/%d: %d events, %s, %d conns", trial+1, res.trials, res.events, row.target, row.conns)
			if row.http {
				took, failed, _, err := runCount(ctx, row.conns, res.events, httpCaller(bareURL, "", http.StatusOK))
				if err != nil {
					return nil, fmt.Errorf("bare run: %w", err)
				}
				if failed > 0 {
					return nil, fmt.Errorf("bare run: %d of %d requests failed", failed, res.events)
				}
				row.bare = append(row.bare, float64(res.events)/took.Seconds())
			}
			if err := b.enqueueTrial(ctx, n, js, goRT, row, res.events, invokeBase); err != nil {
				return nil, err
			}
			if row.http {
				row.ratio = append(row.ratio, row.rate[trial]/row.bare[trial])
			}
		}
	}

	// 2. End to end: no-op functions' events, run and acknowledged.
	goRow := &eventRunRow{target: "Go (examples/hello-go), sandboxed", events: res.runEvents}
	for _, r := range warm {
		if r.target == "Wisp Go, sandboxed" && r.conns > 1 && len(r.rps) > 0 {
			goRow.syncRPS, goRow.syncConns = median(r.rps), r.conns
		}
	}
	res.runs = append(res.runs, goRow)
	if err := b.eventRuns(ctx, n, goRow, goRT, res); err != nil {
		return nil, err
	}
	watRow := &eventRunRow{target: "wat guest (examples/hello-wasm-wat), wasm", events: res.runEvents}
	res.runs = append(res.runs, watRow)
	watCode, skip, err := b.buildWat(ctx)
	switch {
	case err != nil:
		return nil, err
	case skip != "":
		watRow.skip = skip
	default:
		if err := b.eventRuns(ctx, n, watRow, &runtimeUnderTest{label: "wat", runtime: "wasm", handler: "main.wasm", code: watCode}, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// enqueueTrial deploys a fresh function that cannot run (reserved
// concurrency 0), so its events stay queued, sends it count events over
// row.conns connections (or goroutines), and then purges them and deletes
// it, so that the next trial starts from an empty queue.
func (b *bench) enqueueTrial(ctx context.Context, n *wispNode, js jetstream.JetStream, rt *runtimeUnderTest,
	row *enqueueRow, count int, invokeBase string) error {
	b.seq++
	name := fmt.Sprintf("enqueue-%d", b.seq)
	if _, err := n.api.CreateFunction(ctx, apitype.Config{Name: name, Runtime: &rt.runtime, Handler: &rt.handler,
		Concurrency: ptr(0)}, bytes.NewReader(rt.code), int64(len(rt.code)), nil); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	// Its queue worker starts when the node hears of the function; one
	// event it has tried tells it runs, so its start is not measured.
	if _, err := n.node.Events().Enqueue(ctx, events.Async{Function: name, Payload: asyncPayload}); err != nil {
		return err
	}
	if err := waitOutcome(ctx, n, name, "throttled", 1, 10*time.Second); err != nil {
		return err
	}
	before, err := asyncOutcomes(ctx, n, name)
	if err != nil {
		return err
	}

	var call func() (func(context.Context) error, func())
	if row.http {
		call = httpCaller(invokeBase+name+"/invocations", n.node.AdminToken(), http.StatusAccepted)
	} else {
		ev := n.node.Events()
		call = func() (func(context.Context) error, func()) {
			return func(ctx context.Context) error {
				_, err := ev.Enqueue(ctx, events.Async{Function: name, Payload: asyncPayload})
				return err
			}, func() {}
		}
	}
	took, failed, firstErr, err := runCount(ctx, row.conns, count, call)
	if err != nil {
		return err
	}
	after, err := asyncOutcomes(ctx, n, name)
	if err != nil {
		return err
	}
	row.rate = append(row.rate, float64(count-failed)/took.Seconds())
	row.throttled = append(row.throttled, after["throttled"]-before["throttled"])
	row.errors += failed
	if row.firstErr == "" && firstErr != nil {
		row.firstErr = firstErr.Error()
	}

	// The warm-up events, as many as workers, and the measured ones.
	if got := n.node.Events().Queued()[name]; got < uint64(count-failed) {
		return fmt.Errorf("%s: %d events queued after %d were accepted", name, got, count-failed)
	}
	queue, err := js.Stream(ctx, asyncStreamPrefix+name)
	if err != nil {
		return fmt.Errorf("the queue of %s: %w", name, err)
	}
	if err := queue.Purge(ctx); err != nil {
		return fmt.Errorf("purging the events of %s: %w", name, err)
	}
	if got := n.node.Events().Queued()[name]; got != 0 {
		return fmt.Errorf("%s: %d events queued after the purge: the queue is no longer stream %s…",
			name, got, asyncStreamPrefix+name)
	}
	return n.api.DeleteFunction(ctx, name, 0)
}

// eventRuns deploys a function and, after an untimed round that starts
// its instances, enqueues row.events events for it, from res.workers
// goroutines, and times until the queue holds none of them: all run and
// acknowledged.
func (b *bench) eventRuns(ctx context.Context, n *wispNode, row *eventRunRow, rt *runtimeUnderTest, res *asyncResults) error {
	b.seq++
	name := fmt.Sprintf("events-%s-%d", rt.runtime, b.seq)
	if _, err := n.api.CreateFunction(ctx, apitype.Config{Name: name, Runtime: &rt.runtime, Handler: &rt.handler},
		bytes.NewReader(rt.code), int64(len(rt.code)), nil); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	ev := n.node.Events()
	enqueue := func() (func(context.Context) error, func()) {
		return func(ctx context.Context) error {
			_, err := ev.Enqueue(ctx, events.Async{Function: name, Payload: asyncPayload})
			return err
		}, func() {}
	}
	b.progress("async: warming %s up", name)
	if _, _, _, err := b.drainRun(ctx, n, name, asyncWarmupEvents, res.workers, enqueue); err != nil {
		return err
	}
	for trial := range res.trials {
		b.progress("async trial %d/%d: %d events for %s, until all ran", trial+1, res.trials, row.events, name)
		enqueued, drained, failures, err := b.drainRun(ctx, n, name, row.events, res.workers, enqueue)
		if err != nil {
			return err
		}
		if failures > 0 {
			return fmt.Errorf("%s: %v of %d events did not succeed", name, failures, row.events)
		}
		row.enqueued = append(row.enqueued, enqueued)
		row.drained = append(row.drained, drained)
		row.rate = append(row.rate, float64(row.events)/drained.Seconds())
	}
	return nil
}

// drainRun enqueues count events for function name and waits until the
// queue holds none for it. It returns when the last enqueue was answered
// and when the queue was empty, both from the first enqueue, and how many
// events were not counted a success.
func (b *bench) drainRun(ctx context.Context, n *wispNode, name string, count, workers int,
	enqueue func() (func(context.Context) error, func())) (enqueued, drained time.Duration, failures float64, err error) {
	before, err := asyncOutcomes(ctx, n, name)
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	_, failed, firstErr, err := runCount(ctx, workers, count, enqueue)
	if err != nil {
		return 0, 0, 0, err
	}
	if failed > 0 {
		return 0, 0, 0, fmt.Errorf("%s: %d of %d enqueues failed: %w", name, failed, count, firstErr)
	}
	enqueued = time.Since(start)
	deadline := start.Add(asyncRunTimeout)
	for n.node.Events().Queued()[name] > 0 {
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("%s: events still queued after %s", name, asyncRunTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	drained = time.Since(start)
	after, err := asyncOutcomes(ctx, n, name)
	if err != nil {
		return 0, 0, 0, err
	}
	return enqueued, drained, float64(count) - (after["success"] - before["success"]), nil
}

// runCount makes count calls over workers goroutines, each making its
// next call when its last returned. Each worker gets its call from
// newWorker and makes one unrecorded call first (which opens its
// connection), and the clock starts once all have. It returns how long
// the count calls took, how many failed and the first failure.
func runCount(ctx context.Context, workers, count int, newWorker func() (call func(context.Context) error, done func())) (
	took time.Duration, failed int, firstErr error, err error) {
	if workers < 1 || count < workers {
		return 0, 0, nil, fmt.Errorf("load: %d calls over %d workers", count, workers)
	}
	var (
		left      atomic.Int64
		nfailed   atomic.Int64
		mu        sync.Mutex
		warmupErr error
		ready, wg sync.WaitGroup
	)
	left.Store(int64(count))
	gate := make(chan struct{})
	for range workers {
		ready.Add(1)
		wg.Go(func() {
			call, done := newWorker()
			defer done()
			werr := call(ctx)
			ready.Done()
			<-gate
			if werr != nil {
				mu.Lock()
				warmupErr = cmp.Or(warmupErr, werr)
				mu.Unlock()
				return
			}
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				if err := call(ctx); err != nil {
					nfailed.Add(1)
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	took = time.Since(start)
	switch {
	case ctx.Err() != nil:
		return 0, 0, nil, ctx.Err()
	case warmupErr != nil:
		return 0, 0, nil, fmt.Errorf("a first call failed: %w", warmupErr)
	}
	return took, int(nfailed.Load()), firstErr, nil
}

// httpCaller makes workers that POST the event to target, each on a
// connection of its own, with token as a bearer token unless it is "",
// and count an answer other than want as a failure.
func httpCaller(target, token string, want int) func() (func(context.Context) error, func()) {
	return func() (func(context.Context) error, func()) {
		hc := newLoopbackClient(1)
		call := func(ctx context.Context) error {
			if err := checkTarget(target); err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(asyncPayload))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Amz-Invocation-Type", "Event")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			err = errors.Join(err, resp.Body.Close())
			if err != nil {
				return err
			}
			if resp.StatusCode != want {
				return fmt.Errorf("answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
			}
			if want == http.StatusAccepted && resp.Header.Get("X-Amzn-RequestId") == "" {
				return errors.New("answered 202 without a request id")
			}
			return nil
		}
		return call, hc.CloseIdleConnections
	}
}

// asyncOutcomes reads the node's count of event attempts of function
// name, by outcome.
func asyncOutcomes(ctx context.Context, n *wispNode, name string) (map[string]float64, error) {
	mfs, err := nodestats.Metrics(ctx, n.api)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range mfs[telemetry.MetricAsyncEvents].GetMetric() {
		var fn, outcome string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case telemetry.LabelFunction:
				fn = l.GetValue()
			case telemetry.LabelOutcome:
				outcome = l.GetValue()
			}
		}
		if fn == name {
			out[outcome] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// waitOutcome waits until the node counts at least min attempts of
// function name with the outcome, for at most wait.
func waitOutcome(ctx context.Context, n *wispNode, name, outcome string, least float64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		got, err := asyncOutcomes(ctx, n, name)
		if err != nil {
			return err
		}
		if got[outcome] >= least {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %v attempts %s after %s, want %v", name, got[outcome], outcome, wait, least)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// renderAsync writes the async events section.
func (b *bench) renderAsync(w io.Writer, res *asyncResults) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n## Async events: durable enqueue and end-to-end rate\n\n")
	p("A node of its own runs this section. Each figure is the median of %d trials; a ratio is the median of per-trial\n"+
		"ratios (in brackets: the lowest and highest of them).\n\n", res.trials)

	p("### Durable enqueue: %s events to a function whose events cannot run\n\n", fmtRate(float64(res.events)))
	p("Each trial deploys a fresh function with reserved concurrency 0 and sends it %s events (payload `%s`) in closed\n"+
		"loops, after one unrecorded event per connection. An Invoke API call is answered 202 only once JetStream has\n"+
		"stored the event (file storage, synced to disk every 2 s). Just before each HTTP run, as many of the same POSTs\n"+
		"go to bare `net/http` over as many connections: *vs bare* pairs the two.\n\n", fmtRate(float64(res.events)), asyncPayload)
	p("| path | conns | events/s | bare net/http req/s | vs bare | throttled attempts | errors | goal |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range res.enqueue {
		rate := median(r.rate)
		bare, ratio, goal := "–", "–", ""
		if r.http {
			bare = fmtRate(median(r.bare))
			ratio = fmt.Sprintf("%.2f×", median(r.ratio))
			if len(r.ratio) > 1 {
				ratio += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(r.ratio), slices.Max(r.ratio))
			}
			goal = check(rate >= asyncEnqueueGoal) + " ≥ " + fmtRate(asyncEnqueueGoal) + " events/s durable"
		}
		p("| %s | %d | %s | %s | %s | %s | %d | %s |\n", r.target, r.conns, fmtRate(rate), bare, ratio,
			fmtRate(median(r.throttled)), r.errors, goal)
		if r.firstErr != "" {
			b.note("Async enqueue, %s, %d conns: the first error was: %s", r.target, r.conns, r.firstErr)
		}
	}
	p("\n- *Invoke API*: `POST /2015-03-31/functions/NAME/invocations`, bearer token, as `client.InvokeAsync` sends it; events/s counts 202s.\n")
	p("- *in-process*: `node.Events().Enqueue` from as many goroutines: the same store without HTTP, auth and gateway.\n")
	p("- *throttled attempts* (median per run): the one queue worker a reserved-0 function keeps takes an event, is refused,\n" +
		"  hands it back and rests a second before the next; those attempts share the cores with the enqueueing.\n")
	p("- Independent trials: after each, the bench purges the function's events from the stream (a harness step, not a\n" +
		"  product path) and deletes it. Left throttled, old functions' workers would keep cycling through their events\n" +
		"  during later trials; deleted unpurged, their events would run one by one to the dead-letter topic for seconds.\n")

	p("\n### End to end: %s events for a no-op function, until all ran\n\n", fmtRate(float64(res.runEvents)))
	p("After an untimed round of %d events (which starts the instances the queue workers use), each trial enqueues the\n"+
		"events from %d goroutines (`Events.Enqueue` in process, so no HTTP cost) and times, from the first enqueue, until\n"+
		"`node.Events().Queued()` holds none of the function's events: all run and acknowledged. The node runs up to 32\n"+
		"events of a function at once (the events default).\n\n", asyncWarmupEvents, res.workers)
	p("| function | events | all enqueued after | all run after | events/s | sync req/s (warm) | vs sync |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range res.runs {
		if r.skip != "" {
			p("| %s | – | – | – | – | – | skipped: %s |\n", r.target, r.skip)
			continue
		}
		sync, ratio := "not measured", "–"
		if r.syncRPS > 0 {
			x := median(r.rate) / r.syncRPS
			sync = fmt.Sprintf("%s (%d conns)", fmtRate(r.syncRPS), r.syncConns)
			ratio = fmt.Sprintf("%.2f×", x)
		}
		p("| %s | %d | %s | %s | %s | %s | %s |\n", r.target, r.events, fmtDuration(medianDuration(r.enqueued)),
			fmtDuration(medianDuration(r.drained)), fmtRate(median(r.rate)), sync, ratio)
	}
	p("\n- *all enqueued after*: the last enqueue's answer; close to *all run after*, the enqueueing (sharing the cores) bounds the row.\n")
	p("- *events/s*: events over *all run after*, median of the trials' rates.\n")
	p("- *sync req/s*: the warm section's function URL req/s for the same example, at its connections; *vs sync* is\n" +
		"  events/s over it. The WebAssembly section times sequential calls only, so the wat row has none.\n")
}

// medianDuration is the median of ds.
func medianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}
