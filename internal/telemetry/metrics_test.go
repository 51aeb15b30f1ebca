package telemetry

import (
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wisp-dev/wisp/internal/pool"
)

// scrape GETs m's handler as Prometheus would and parses what it serves.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// series returns the metric of family name with exactly labels
// ("k=v,k=v"), or nil.
func series(mfs map[string]*dto.MetricFamily, name, labels string) *dto.Metric {
	for _, m := range mfs[name].GetMetric() {
		if labelString(m) == labels {
			return m
		}
	}
	return nil
}

func labelString(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// allSeries is the label sets of family name, sorted.
func allSeries(mfs map[string]*dto.MetricFamily, name string) []string {
	var out []string
	for _, m := range mfs[name].GetMetric() {
		out = append(out, labelString(m))
	}
	sort.Strings(out)
	return out
}

func TestMetricsCounters(t *testing.T) {
	m := NewMetrics(nil)
	for _, d := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond} {
		m.Invoked("hello", "1", OutcomeSuccess, d)
	}
	m.Invoked("hello", "1", "error", 5*time.Millisecond)
	m.Invoked("hello", "$LATEST", "timeout", 3*time.Second)
	m.Invoked("world", "2", OutcomeSuccess, 200*time.Microsecond)
	m.ColdStart("hello", "1", 200*time.Millisecond)
	m.ColdStart("hello", "$LATEST", 300*time.Millisecond)
	m.Throttled("hello", "ReservedFunctionConcurrentInvocationLimitExceeded")
	m.Throttled("hello", "ReservedFunctionConcurrentInvocationLimitExceeded")
	m.Throttled("world", "ConcurrentInvocationLimitExceeded")

	mfs := scrape(t, m)
	counters := []struct {
		name, labels string
		want         float64
	}{
		{MetricInvocations, "function=hello,outcome=success,version=1", 3},
		{MetricInvocations, "function=hello,outcome=error,version=1", 1},
		{MetricInvocations, "function=hello,outcome=timeout,version=$LATEST", 1},
		{MetricInvocations, "function=world,outcome=success,version=2", 1},
		{MetricColdStarts, "function=hello,version=1", 1},
		{MetricColdStarts, "function=hello,version=$LATEST", 1},
		{MetricThrottles, "function=hello,reason=ReservedFunctionConcurrentInvocationLimitExceeded", 2},
		{MetricThrottles, "function=world,reason=ConcurrentInvocationLimitExceeded", 1},
	}
	for _, c := range counters {
		s := series(mfs, c.name, c.labels)
		if s == nil {
			t.Errorf("%s{%s} missing; have %v", c.name, c.labels, allSeries(mfs, c.name))
			continue
		}
		if got := s.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got, want := len(mfs[MetricInvocations].GetMetric()), 4; got != want {
		t.Errorf("%d %s series, want %d", got, MetricInvocations, want)
	}

	histograms := []struct {
		name, labels string
		count        uint64
		sum          float64
		le           float64 // a bucket bound
		below        uint64  // the observations at or below it
	}{
		{MetricDuration, "function=hello", 5, 3.065, 0.025, 3},
		{MetricDuration, "function=world", 1, 0.0002, 0.0001, 0},
		{MetricInitDuration, "function=hello", 2, 0.5, 0.25, 1},
	}
	for _, h := range histograms {
		s := series(mfs, h.name, h.labels)
		if s == nil {
			t.Errorf("%s{%s} missing; have %v", h.name, h.labels, allSeries(mfs, h.name))
			continue
		}
		hist := s.GetHistogram()
		if got := hist.GetSampleCount(); got != h.count {
			t.Errorf("%s{%s} count = %d, want %d", h.name, h.labels, got, h.count)
		}
		if got := hist.GetSampleSum(); math.Abs(got-h.sum) > 1e-9 {
			t.Errorf("%s{%s} sum = %v, want %v", h.name, h.labels, got, h.sum)
		}
		found := false
		for _, b := range hist.GetBucket() {
			if b.GetUpperBound() == h.le {
				found = true
				if got := b.GetCumulativeCount(); got != h.below {
					t.Errorf("%s{%s} bucket le=%v = %d, want %d", h.name, h.labels, h.le, got, h.below)
				}
			}
		}
		if !found {
			t.Errorf("%s{%s} has no bucket le=%v", h.name, h.labels, h.le)
		}
	}
	if got := len(mfs[MetricDuration].GetMetric()[0].GetHistogram().GetBucket()); got < 12 || got > 20 {
		t.Errorf("%s has %d buckets, want about 16", MetricDuration, got)
	}
	for _, name := range []string{MetricInstances, MetricConcurrency, MetricQueueDepth} {
		if _, ok := mfs[name]; ok {
			t.Errorf("%s served without a stats callback", name)
		}
	}
}

func TestMetricsPoolStats(t *testing.T) {
	var mu sync.Mutex
	stats := []PoolStat{
		{Function: "hello", Version: "1", Stats: pool.Stats{Idle: 2, Busy: 3, Starting: 1, Queued: 4}},
		{Function: "hello", Version: "2", Stats: pool.Stats{Idle: 0, Busy: 1}},
		{Function: "world", Version: "$LATEST", Stats: pool.Stats{Idle: 1}},
	}
	m := NewMetrics(func() []PoolStat {
		mu.Lock()
		defer mu.Unlock()
		return stats
	})

	gauges := []struct {
		name, labels string
		want         float64
	}{
		{MetricInstances, "function=hello,state=idle,version=1", 2},
		{MetricInstances, "function=hello,state=busy,version=1", 3},
		{MetricInstances, "function=hello,state=starting,version=1", 1},
		{MetricInstances, "function=hello,state=busy,version=2", 1},
		{MetricInstances, "function=world,state=idle,version=$LATEST", 1},
		{MetricQueueDepth, "function=hello,version=1", 4},
		{MetricQueueDepth, "function=hello,version=2", 0},
		{MetricConcurrency, "function=hello", 4},
		{MetricConcurrency, "function=world", 0},
	}
	mfs := scrape(t, m)
	for _, g := range gauges {
		s := series(mfs, g.name, g.labels)
		if s == nil {
			t.Errorf("%s{%s} missing; have %v", g.name, g.labels, allSeries(mfs, g.name))
			continue
		}
		if got := s.GetGauge().GetValue(); got != g.want {
			t.Errorf("%s{%s} = %v, want %v", g.name, g.labels, got, g.want)
		}
	}

	// hello 1 goes away, and hello 2 is reported twice (its old pool
	// draining next to its new one).
	mu.Lock()
	stats = []PoolStat{
		{Function: "hello", Version: "2", Stats: pool.Stats{Idle: 1, Busy: 1}},
		{Function: "hello", Version: "2", Stats: pool.Stats{Busy: 2, Queued: 1}},
	}
	mu.Unlock()
	mfs = scrape(t, m)
	want := map[string][]string{
		MetricInstances: {
			"function=hello,state=busy,version=2",
			"function=hello,state=idle,version=2",
			"function=hello,state=starting,version=2",
		},
		MetricQueueDepth:  {"function=hello,version=2"},
		MetricConcurrency: {"function=hello"},
	}
	for name, w := range want {
		if got := allSeries(mfs, name); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s series = %v, want %v", name, got, w)
		}
	}
	for _, g := range []struct {
		name, labels string
		want         float64
	}{
		{MetricInstances, "function=hello,state=busy,version=2", 3},
		{MetricInstances, "function=hello,state=idle,version=2", 1},
		{MetricQueueDepth, "function=hello,version=2", 1},
		{MetricConcurrency, "function=hello", 3},
	} {
		if got := series(mfs, g.name, g.labels).GetGauge().GetValue(); got != g.want {
			t.Errorf("%s{%s} = %v, want %v", g.name, g.labels, got, g.want)
		}
	}

	// No pools at all: no series, and the families are gone.
	mu.Lock()
	stats = nil
	mu.Unlock()
	mfs = scrape(t, m)
	for name := range want {
		if got := allSeries(mfs, name); len(got) != 0 {
			t.Errorf("%s series = %v with no pools, want none", name, got)
		}
	}
}

// Several nodes in one process each have their own metrics.
func TestMetricsArePerNode(t *testing.T) {
	a, b := NewMetrics(nil), NewMetrics(nil)
	a.Invoked("hello", "1", OutcomeSuccess, time.Millisecond)
	if got := series(scrape(t, a), MetricInvocations, "function=hello,outcome=success,version=1").GetCounter().GetValue(); got != 1 {
		t.Errorf("node a counted %v invocations, want 1", got)
	}
	if got := allSeries(scrape(t, b), MetricInvocations); len(got) != 0 {
		t.Errorf("node b has series %v, want none", got)
	}
}

func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.Invoked("hello", "1", OutcomeSuccess, time.Millisecond)
	m.ColdStart("hello", "1", time.Millisecond)
	m.Throttled("hello", "ConcurrentInvocationLimitExceeded")
}

// A label value the vectors refuse is dropped, not a panic on the invoke
// path.
func TestMetricsBadLabel(t *testing.T) {
	m := NewMetrics(func() []PoolStat {
		return []PoolStat{{Function: "bad\xff", Version: "1"}, {Function: "ok", Version: "1", Stats: pool.Stats{Busy: 1}}}
	})
	m.Invoked("bad\xff", "1", OutcomeSuccess, time.Millisecond)
	m.ColdStart("bad\xff", "1", time.Millisecond)
	m.Throttled("bad\xff", "x")
	m.Invoked("ok", "1", OutcomeSuccess, time.Millisecond)
	mfs := scrape(t, m)
	if got := allSeries(mfs, MetricInvocations); strings.Join(got, " ") != "function=ok,outcome=success,version=1" {
		t.Errorf("%s series = %v, want only ok's", MetricInvocations, got)
	}
	if got := series(mfs, MetricConcurrency, "function=ok").GetGauge().GetValue(); got != 1 {
		t.Errorf("%s{function=ok} = %v, want 1", MetricConcurrency, got)
	}
}

func TestMetricsConcurrent(t *testing.T) {
	m := NewMetrics(func() []PoolStat { return []PoolStat{{Function: "hello", Version: "1", Stats: pool.Stats{Busy: 1}}} })
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for j := range each {
				version := []string{"1", "2"}[j%2]
				m.Invoked("hello", version, OutcomeSuccess, time.Millisecond)
				if j%10 == i {
					m.ColdStart("hello", version, time.Millisecond)
					m.Throttled("hello", "ConcurrentInvocationLimitExceeded")
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			scrape(t, m)
		}
	})
	wg.Wait()
	mfs := scrape(t, m)
	var total float64
	for _, s := range mfs[MetricInvocations].GetMetric() {
		total += s.GetCounter().GetValue()
	}
	if total != workers*each {
		t.Errorf("counted %v invocations, want %d", total, workers*each)
	}
	if got := series(mfs, MetricDuration, "function=hello").GetHistogram().GetSampleCount(); got != workers*each {
		t.Errorf("observed %d durations, want %d", got, workers*each)
	}
}

func TestMetricsRecordingDoesNotAllocate(t *testing.T) {
	m := NewMetrics(nil)
	record := func() {
		m.Invoked("hello", "1", OutcomeSuccess, time.Millisecond)
		m.ColdStart("hello", "1", time.Millisecond)
		m.Throttled("hello", "ConcurrentInvocationLimitExceeded")
	}
	record() // makes the series
	if got := testing.AllocsPerRun(100, record); got != 0 {
		t.Errorf("recording allocates %v times, want 0", got)
	}
}

func BenchmarkInvoked(b *testing.B) {
	m := NewMetrics(nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Invoked("hello", "1", OutcomeSuccess, time.Millisecond)
		}
	})
}

// TestPublishedIsBounded: events of every kind of publisher make one series
// per kind, and a thousand other names make one more, not a thousand.
func TestPublishedIsBounded(t *testing.T) {
	m := NewMetrics(nil)
	for i := range 1000 {
		m.Published([]string{"admin", "function", "node"}[i%3])
		m.Published("orders-" + strconv.Itoa(i))
	}
	mfs := scrape(t, m)
	if n := len(mfs[MetricPublished].GetMetric()); n != 4 {
		t.Fatalf("%d series of %s, want 4 (admin, function, node, other)", n, MetricPublished)
	}
	for labels, want := range map[string]float64{"publisher=admin": 334, "publisher=function": 333, "publisher=node": 333, "publisher=other": 1000} {
		if got := series(mfs, MetricPublished, labels).GetCounter().GetValue(); got != want {
			t.Errorf("%s{%s} = %v, want %v", MetricPublished, labels, got, want)
		}
	}
}
