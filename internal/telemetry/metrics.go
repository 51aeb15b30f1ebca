package telemetry

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/wisp-dev/wisp/internal/pool"
)

// The names of a node's metrics, as GET /metrics serves them.
const (
	// MetricInvocations counts invocations by function, version and outcome.
	MetricInvocations = "wisp_invocations_total"
	// MetricDuration is a histogram of invocation durations by function.
	MetricDuration = "wisp_invocation_duration_seconds"
	// MetricInitDuration is a histogram of cold start init durations by
	// function.
	MetricInitDuration = "wisp_init_duration_seconds"
	// MetricColdStarts counts cold starts by function and version.
	MetricColdStarts = "wisp_cold_starts_total"
	// MetricThrottles counts invocations refused for want of capacity, by
	// function and Lambda's reason.
	MetricThrottles = "wisp_throttles_total"
	// MetricInstances is the instances of each version by state: idle,
	// busy, starting.
	MetricInstances = "wisp_instances"
	// MetricConcurrency is the busy instances of each function, over its
	// versions: Lambda's ConcurrentExecutions.
	MetricConcurrency = "wisp_concurrent_executions"
	// MetricQueueDepth is the callers waiting for an instance of each
	// version.
	MetricQueueDepth = "wisp_queue_depth"
	// MetricAsyncEvents counts event attempts by function and outcome:
	// success, retry, failure (sent to the failure destination or dead
	// letter), expired (too old), throttled (waits for room).
	MetricAsyncEvents = "wisp_async_events_total"
	// MetricAsyncAge is a histogram of how long events waited in the
	// queue before an attempt, by function.
	MetricAsyncAge = "wisp_async_event_age_seconds"
	// MetricAsyncQueued is the events stored for each function, waiting
	// or running, over every node.
	MetricAsyncQueued = "wisp_async_queued_events"
	// MetricPublished counts events accepted on topics by this node, by
	// the kind of their publisher: admin, function or node. Not by topic:
	// callers name topics, and a label must not take unbounded values
	// (the catalog counts each topic's events).
	MetricPublished = "wisp_events_published_total"
	// MetricLogDropped counts the bytes of log records this node dropped,
	// by function and reason: rate (over the function's rate), full (the
	// node's log buffer was full), disk (the node's disk was full),
	// closed (the logs were closing), failed
	// (the stream did not store them). Records count as recordCost has it.
	MetricLogDropped = "wisp_log_dropped_bytes_total"
)

// The label names of the metrics, and the outcome of an invocation that
// went well.
const (
	LabelFunction  = "function"
	LabelVersion   = "version"
	LabelOutcome   = "outcome"
	LabelReason    = "reason"
	LabelState     = "state"
	LabelPublisher = "publisher"
	OutcomeSuccess = "success"
)

// The histograms' buckets, in seconds. Durations run from a Wasm call's
// fraction of a millisecond to the 15 minute limit; 3 s is the default
// timeout.
var (
	durationBuckets = []float64{
		0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
		0.25, 0.5, 1, 3, 10, 30, 120, 900,
	}
	initBuckets = []float64{
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
		0.25, 0.5, 1, 2.5, 5, 10, 30,
	}
	// Events wait from milliseconds to the 6 hour maximum age.
	ageBuckets = []float64{
		0.001, 0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 21600,
	}
)

// PoolStat is one version's pool of instances: the invoker reports it,
// the metrics turn it into gauges at scrape time.
type PoolStat struct {
	Function, Version string
	pool.Stats
}

// Metrics are one node's metrics, on a registry of its own so that several
// nodes can run in one process. The recording methods are safe for
// concurrent use and cheap enough to call on every invocation; they do
// nothing on a nil *Metrics.
type Metrics struct {
	handler http.Handler
	reg     *prometheus.Registry

	invocations children[invocationKey, prometheus.Counter]
	durations   children[string, prometheus.Observer] // by function
	inits       children[string, prometheus.Observer] // by function
	coldStarts  children[versionKey, prometheus.Counter]
	throttles   children[throttleKey, prometheus.Counter]
	asyncEvents children[outcomeKey, prometheus.Counter]
	asyncAge    children[string, prometheus.Observer] // by function
	published   children[string, prometheus.Counter]  // by topic
	logDropped  children[logDropKey, prometheus.Counter]
	// forgetters delete a function's series, one per vector.
	forgetters []func(function string)
}

type (
	invocationKey struct{ function, version, outcome string }
	versionKey    struct{ function, version string }
	throttleKey   struct{ function, reason string }
	outcomeKey    struct{ function, outcome string }
	logDropKey    struct{ function, reason string }
)

// NewMetrics returns a node's metrics. stats, if not nil, is called at each
// scrape for the instances and queues of every pool (by concurrent scrapes
// at once, so it must be safe for that); a pool it no longer reports leaves
// no series behind.
func NewMetrics(stats func() []PoolStat) *Metrics {
	invocations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricInvocations,
		Help: "Invocations by function, version and outcome (success, error, timeout, throttled, ...).",
	}, []string{LabelFunction, LabelVersion, LabelOutcome})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricDuration,
		Help:    "How long invocations ran, in seconds.",
		Buckets: durationBuckets,
	}, []string{LabelFunction})
	inits := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricInitDuration,
		Help:    "How long cold starts took to initialize, in seconds.",
		Buckets: initBuckets,
	}, []string{LabelFunction})
	coldStarts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricColdStarts,
		Help: "Invocations that started a new instance.",
	}, []string{LabelFunction, LabelVersion})
	throttles := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricThrottles,
		Help: "Invocations refused for want of capacity, by reason.",
	}, []string{LabelFunction, LabelReason})

	asyncEvents := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricAsyncEvents,
		Help: "Event attempts by outcome: success, retry, failure, expired, throttled, capped, queue_full.",
	}, []string{LabelFunction, LabelOutcome})
	asyncAge := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricAsyncAge,
		Help:    "How long events waited in the queue before an attempt, in seconds.",
		Buckets: ageBuckets,
	}, []string{LabelFunction})
	published := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricPublished,
		Help: "Events accepted on topics by this node, by the kind of their publisher: admin, function or node.",
	}, []string{LabelPublisher})

	logDropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricLogDropped,
		Help: "Bytes of log records dropped, by reason: rate, full, disk, closed, failed.",
	}, []string{LabelFunction, LabelReason})

	reg := prometheus.NewRegistry()
	reg.MustRegister(invocations, durations, inits, coldStarts, throttles, asyncEvents, asyncAge, published, logDropped)
	if stats != nil {
		reg.MustRegister(newPoolCollector(stats))
	}
	m := &Metrics{
		reg: reg,
		// A scrape gets what could be gathered; what could not is counted
		// in promhttp_metric_handler_errors_total.
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			Registry:      reg,
		}),
	}
	m.invocations.init(func(k invocationKey) (prometheus.Counter, error) {
		return invocations.GetMetricWithLabelValues(k.function, k.version, k.outcome)
	})
	m.durations.init(func(fn string) (prometheus.Observer, error) {
		return durations.GetMetricWithLabelValues(fn)
	})
	m.inits.init(func(fn string) (prometheus.Observer, error) {
		return inits.GetMetricWithLabelValues(fn)
	})
	m.coldStarts.init(func(k versionKey) (prometheus.Counter, error) {
		return coldStarts.GetMetricWithLabelValues(k.function, k.version)
	})
	m.throttles.init(func(k throttleKey) (prometheus.Counter, error) {
		return throttles.GetMetricWithLabelValues(k.function, k.reason)
	})
	m.asyncEvents.init(func(k outcomeKey) (prometheus.Counter, error) {
		return asyncEvents.GetMetricWithLabelValues(k.function, k.outcome)
	})
	m.asyncAge.init(func(fn string) (prometheus.Observer, error) {
		return asyncAge.GetMetricWithLabelValues(fn)
	})
	m.published.init(func(kind string) (prometheus.Counter, error) {
		return published.GetMetricWithLabelValues(kind)
	})
	m.logDropped.init(func(k logDropKey) (prometheus.Counter, error) {
		return logDropped.GetMetricWithLabelValues(k.function, k.reason)
	})
	// A deleted function leaves no series: every vector labelled by
	// function forgets its children, and deletes their series.
	m.forgetters = []func(string){
		func(fn string) {
			m.invocations.forget(func(k invocationKey) bool { return k.function == fn },
				func(k invocationKey) { invocations.DeleteLabelValues(k.function, k.version, k.outcome) })
		},
		func(fn string) {
			m.durations.forget(func(k string) bool { return k == fn }, func(k string) { durations.DeleteLabelValues(k) })
		},
		func(fn string) {
			m.inits.forget(func(k string) bool { return k == fn }, func(k string) { inits.DeleteLabelValues(k) })
		},
		func(fn string) {
			m.coldStarts.forget(func(k versionKey) bool { return k.function == fn },
				func(k versionKey) { coldStarts.DeleteLabelValues(k.function, k.version) })
		},
		func(fn string) {
			m.throttles.forget(func(k throttleKey) bool { return k.function == fn },
				func(k throttleKey) { throttles.DeleteLabelValues(k.function, k.reason) })
		},
		func(fn string) {
			m.asyncEvents.forget(func(k outcomeKey) bool { return k.function == fn },
				func(k outcomeKey) { asyncEvents.DeleteLabelValues(k.function, k.outcome) })
		},
		func(fn string) {
			m.asyncAge.forget(func(k string) bool { return k == fn }, func(k string) { asyncAge.DeleteLabelValues(k) })
		},
		func(fn string) {
			m.logDropped.forget(func(k logDropKey) bool { return k.function == fn },
				func(k logDropKey) { logDropped.DeleteLabelValues(k.function, k.reason) })
		},
	}
	return m
}

// LogDropped counts bytes of a function's log records dropped for reason
// (rate, full, closed or failed).
func (m *Metrics) LogDropped(function, reason string, bytes int64) {
	if m == nil {
		return
	}
	if c, ok := m.logDropped.get(logDropKey{function, reason}); ok {
		c.Add(float64(bytes))
	}
}

// ForgetFunction deletes a deleted function's series, of every metric,
// so that functions made and deleted leave none behind.
func (m *Metrics) ForgetFunction(function string) {
	if m == nil {
		return
	}
	for _, f := range m.forgetters {
		f(function)
	}
}

// AsyncOutcome records an event attempt's outcome.
func (m *Metrics) AsyncOutcome(function, outcome string) {
	if m == nil {
		return
	}
	if c, ok := m.asyncEvents.get(outcomeKey{function, outcome}); ok {
		c.Inc()
	}
}

// AsyncAge records how long an event waited before an attempt.
func (m *Metrics) AsyncAge(function string, d time.Duration) {
	if m == nil {
		return
	}
	if o, ok := m.asyncAge.get(function); ok {
		o.Observe(d.Seconds())
	}
}

// Published records an event accepted on a topic, by the kind of its
// publisher: admin, function or node.
func (m *Metrics) Published(kind string) {
	if m == nil {
		return
	}
	switch kind {
	case "admin", "function", "node":
	default: // the label stays bounded whatever a caller passes
		kind = "other"
	}
	if c, ok := m.published.get(kind); ok {
		c.Inc()
	}
}

// CollectQueued reports, at each scrape, the events stored for each
// function as queued calls.
func (m *Metrics) CollectQueued(queued func() map[string]uint64) {
	m.reg.MustRegister(&queuedCollector{queued: queued, desc: prometheus.NewDesc(MetricAsyncQueued,
		"Events stored for each function, waiting or running, over every node.", []string{LabelFunction}, nil)})
}

type queuedCollector struct {
	queued func() map[string]uint64
	desc   *prometheus.Desc
}

func (c *queuedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queuedCollector) Collect(ch chan<- prometheus.Metric) {
	for fn, n := range c.queued() {
		m, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, float64(n), fn)
		if err != nil {
			m = prometheus.NewInvalidMetric(c.desc, err)
		}
		ch <- m
	}
}

// Handler serves the metrics in Prometheus' exposition formats (text
// unless the scraper asks for another).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Gather returns the metrics as a scrape has them, so that a node reads
// its own (GET /v1/stats) without the text format in between; none on a
// nil *Metrics.
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) {
	if m == nil {
		return nil, nil
	}
	return m.reg.Gather()
}

// Invoked records an invocation: its outcome ("success", "error",
// "timeout", "throttled", ...) and how long it ran.
func (m *Metrics) Invoked(function, version, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	if c, ok := m.invocations.get(invocationKey{function, version, outcome}); ok {
		c.Inc()
	}
	if o, ok := m.durations.get(function); ok {
		o.Observe(d.Seconds())
	}
}

// ColdStart records a cold start and how long its init took.
func (m *Metrics) ColdStart(function, version string, init time.Duration) {
	if m == nil {
		return
	}
	if c, ok := m.coldStarts.get(versionKey{function, version}); ok {
		c.Inc()
	}
	if o, ok := m.inits.get(function); ok {
		o.Observe(init.Seconds())
	}
}

// Throttled records an invocation refused for want of capacity; reason is
// Lambda's, such as ReservedFunctionConcurrentInvocationLimitExceeded.
func (m *Metrics) Throttled(function, reason string) {
	if m == nil {
		return
	}
	if c, ok := m.throttles.get(throttleKey{function, reason}); ok {
		c.Inc()
	}
}

// children caches the children of a metric vector by their label values,
// so that recording looks them up in a map without allocating, where the
// vector's WithLabelValues would allocate for its variadic arguments.
type children[K comparable, V any] struct {
	newChild func(K) (V, error)
	mu       sync.RWMutex
	m        map[K]V // guarded by mu
}

func (c *children[K, V]) init(newChild func(K) (V, error)) {
	c.newChild, c.m = newChild, map[K]V{}
}

// get returns the child for k, making it on first use. It reports false
// when the vector refuses the label values (say, invalid UTF-8): a metric
// is not worth failing an invocation for.
func (c *children[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v, true
	}
	v, err := c.newChild(k)
	if err != nil {
		return v, false
	}
	c.m[k] = v
	return v, true
}

// forget deletes the children whose keys match, and with deleteSeries
// their series from the vector, so that a function deleted leaves no
// series behind. A child recorded to later is made anew.
func (c *children[K, V]) forget(match func(K) bool, deleteSeries func(K)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if match(k) {
			delete(c.m, k)
			deleteSeries(k)
		}
	}
}

// poolCollector turns the pools' stats into gauges at scrape time, so no
// goroutine polls them and a pool that is gone leaves no series.
type poolCollector struct {
	stats                         func() []PoolStat
	instances, concurrency, queue *prometheus.Desc
}

func newPoolCollector(stats func() []PoolStat) *poolCollector {
	return &poolCollector{
		stats: stats,
		instances: prometheus.NewDesc(MetricInstances,
			"Instances of each version by state: idle, busy or starting.",
			[]string{LabelFunction, LabelVersion, LabelState}, nil),
		concurrency: prometheus.NewDesc(MetricConcurrency,
			"Busy instances of each function, over its versions.",
			[]string{LabelFunction}, nil),
		queue: prometheus.NewDesc(MetricQueueDepth,
			"Callers waiting for an instance of each version.",
			[]string{LabelFunction, LabelVersion}, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.instances
	ch <- c.concurrency
	ch <- c.queue
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	// Sum any version reported twice: a series must appear once.
	var versions []versionKey
	byVersion := map[versionKey]*PoolStat{}
	busy := map[string]int{}
	var functions []string
	for _, s := range c.stats() {
		k := versionKey{s.Function, s.Version}
		v := byVersion[k]
		if v == nil {
			v = &PoolStat{}
			byVersion[k] = v
			versions = append(versions, k)
		}
		v.Idle += s.Idle
		v.Busy += s.Busy
		v.Starting += s.Starting
		v.Queued += s.Queued
		if _, ok := busy[s.Function]; !ok {
			functions = append(functions, s.Function)
		}
		busy[s.Function] += s.Busy
	}
	gauge := func(desc *prometheus.Desc, n int, labels ...string) {
		m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, float64(n), labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
	for _, k := range versions {
		s := byVersion[k]
		gauge(c.instances, s.Idle, k.function, k.version, "idle")
		gauge(c.instances, s.Busy, k.function, k.version, "busy")
		gauge(c.instances, s.Starting, k.function, k.version, "starting")
		gauge(c.queue, s.Queued, k.function, k.version)
	}
	for _, fn := range functions {
		gauge(c.concurrency, busy[fn], fn)
	}
}
