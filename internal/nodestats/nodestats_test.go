package nodestats_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// exposition is /metrics as a node serves it (in part).
const exposition = `# HELP wisp_cold_starts_total Invocations that started a new instance.
# TYPE wisp_cold_starts_total counter
wisp_cold_starts_total{function="hello",version="1"} 2
wisp_cold_starts_total{function="hello",version="2"} 1
wisp_cold_starts_total{function="world",version="$LATEST"} 1
# HELP wisp_concurrent_executions Busy instances of each function, over its versions.
# TYPE wisp_concurrent_executions gauge
wisp_concurrent_executions{function="hello"} 3
wisp_concurrent_executions{function="quiet"} 0
# HELP wisp_instances Instances of each version by state: idle, busy or starting.
# TYPE wisp_instances gauge
wisp_instances{function="hello",state="busy",version="1"} 1
wisp_instances{function="hello",state="busy",version="2"} 2
wisp_instances{function="hello",state="idle",version="1"} 1
wisp_instances{function="hello",state="idle",version="2"} 0
wisp_instances{function="hello",state="starting",version="1"} 0
wisp_instances{function="hello",state="starting",version="2"} 1
wisp_instances{function="quiet",state="busy",version="1"} 0
wisp_instances{function="quiet",state="idle",version="1"} 1
wisp_instances{function="quiet",state="starting",version="1"} 0
# HELP wisp_invocation_duration_seconds How long invocations ran, in seconds.
# TYPE wisp_invocation_duration_seconds histogram
wisp_invocation_duration_seconds_bucket{function="hello",le="0.01"} 2
wisp_invocation_duration_seconds_bucket{function="hello",le="0.025"} 6
wisp_invocation_duration_seconds_bucket{function="hello",le="0.05"} 8
wisp_invocation_duration_seconds_bucket{function="hello",le="0.1"} 10
wisp_invocation_duration_seconds_bucket{function="hello",le="+Inf"} 10
wisp_invocation_duration_seconds_sum{function="hello"} 0.3
wisp_invocation_duration_seconds_count{function="hello"} 10
wisp_invocation_duration_seconds_bucket{function="world",le="0.001"} 1
wisp_invocation_duration_seconds_bucket{function="world",le="0.1"} 1
wisp_invocation_duration_seconds_bucket{function="world",le="+Inf"} 1
wisp_invocation_duration_seconds_sum{function="world"} 0.0004
wisp_invocation_duration_seconds_count{function="world"} 1
# HELP wisp_invocations_total Invocations by function, version and outcome.
# TYPE wisp_invocations_total counter
wisp_invocations_total{function="hello",outcome="error",version="1"} 1
wisp_invocations_total{function="hello",outcome="success",version="1"} 6
wisp_invocations_total{function="hello",outcome="success",version="2"} 2
wisp_invocations_total{function="hello",outcome="timeout",version="2"} 1
wisp_invocations_total{function="world",outcome="success",version="$LATEST"} 1
# HELP wisp_queue_depth Callers waiting for an instance of each version.
# TYPE wisp_queue_depth gauge
wisp_queue_depth{function="hello",version="1"} 0
wisp_queue_depth{function="hello",version="2"} 4
wisp_queue_depth{function="quiet",version="1"} 0
# HELP wisp_throttles_total Invocations refused for want of capacity, by reason.
# TYPE wisp_throttles_total counter
wisp_throttles_total{function="hello",reason="ReservedFunctionConcurrentInvocationLimitExceeded"} 3
`

// seen is a request the fake node got.
type seen struct {
	method, path string
	header       http.Header
}

// fakeNode answers every request with status and body, and sends what it
// got on the returned channel.
func fakeNode(t *testing.T, status int, body string) (*client.Client, <-chan seen) {
	t.Helper()
	reqs := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- seen{r.Method, r.URL.Path, r.Header.Clone()}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL, "tok"), reqs
}

func ms(v float64) *float64 { return &v }

func bk(le, n float64) nodestats.Bucket { return nodestats.Bucket{UpperBound: le, Count: n} }

func TestMetrics(t *testing.T) {
	c, reqs := fakeNode(t, 200, exposition)
	mfs, err := nodestats.Metrics(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.method != "GET" || r.path != "/metrics" {
		t.Errorf("request %s %s, want GET /metrics", r.method, r.path)
	}
	if got := r.header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("Authorization = %q, want Bearer tok", got)
	}
	if got, want := len(mfs), 7; got != want {
		t.Errorf("got %d families, want %d", got, want)
	}
	if got := mfs[telemetry.MetricDuration].GetMetric()[0].GetHistogram().GetSampleCount(); got != 10 {
		t.Errorf("hello's duration count = %d, want 10", got)
	}

	got := nodestats.FromMetrics(mfs)
	want := []apitype.FunctionStats{
		{
			Function: "hello", Invocations: 10, Errors: 2, Throttles: 3, ColdStarts: 3,
			P50: ms(21.25), P99: ms(97.5), Idle: 1, Busy: 3, Starting: 1, Queued: 4,
		},
		{Function: "quiet", Idle: 1},
		{Function: "world", Invocations: 1, ColdStarts: 1, P50: ms(0.5), P99: ms(0.99)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !sameMs(g.P50, w.P50) || !sameMs(g.P99, w.P99) {
			t.Errorf("%s: p50, p99 = %s, %s; want %s, %s", w.Function, msString(g.P50), msString(g.P99), msString(w.P50), msString(w.P99))
		}
		g.P50, g.P99, w.P50, w.P99 = nil, nil, nil, nil
		if g != w {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
}

func sameMs(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) < 1e-9
}

func msString(v *float64) string {
	if v == nil {
		return "nil"
	}
	b, _ := json.Marshal(*v)
	return string(b)
}

func TestMetricsErrors(t *testing.T) {
	t.Run("unauthorized", func(t *testing.T) {
		c, _ := fakeNode(t, 401, `{"type":"UnauthorizedException","message":"wrong token"}`)
		_, err := nodestats.Metrics(context.Background(), c)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 401 || e.Type != apitype.TypeUnauthorized {
			t.Errorf("err = %v, want UnauthorizedException (HTTP 401)", err)
		}
	})
	t.Run("not metrics", func(t *testing.T) {
		c, _ := fakeNode(t, 200, "<html>a proxy's login page</html>")
		if _, err := nodestats.Metrics(context.Background(), c); err == nil {
			t.Error("no error")
		}
	})
}

// The client reads what telemetry.Metrics really serves.
func TestMetricsFromANode(t *testing.T) {
	m := telemetry.NewMetrics(func() []telemetry.PoolStat {
		return []telemetry.PoolStat{{Function: "hello", Version: "1", Stats: pool.Stats{Idle: 1, Busy: 2, Queued: 1}}}
	})
	for range 3 {
		m.Invoked("hello", "1", telemetry.OutcomeSuccess, 40*time.Millisecond)
	}
	m.Invoked("hello", "1", "throttled", 0)
	m.Throttled("hello", "ConcurrentInvocationLimitExceeded")
	m.ColdStart("hello", "1", 100*time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	mfs, err := nodestats.Metrics(context.Background(), client.New(srv.URL, "tok"))
	if err != nil {
		t.Fatal(err)
	}
	scraped := nodestats.FromMetrics(mfs)
	// The node reads its own registry without the text format, whose
	// histograms have no +Inf bucket: the stats are the same.
	gathered, err := nodestats.Gather(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]apitype.FunctionStats{"scraped": scraped, "gathered": gathered} {
		if len(got) != 1 {
			t.Fatalf("%s: got %d rows, want 1: %+v", name, len(got), got)
		}
		s := got[0]
		if s.Function != "hello" || s.Invocations != 4 || s.Errors != 1 || s.Throttles != 1 || s.ColdStarts != 1 ||
			s.Idle != 1 || s.Busy != 2 || s.Queued != 1 {
			t.Errorf("%s: stats = %+v", name, s)
		}
		// 3 of 4 in (25 ms, 50 ms], 1 in the first bucket: the median is
		// 2/3 of the way through (25 ms, 50 ms], to the microsecond.
		if want := 33.333; s.P50 == nil || *s.P50 != want {
			t.Errorf("%s: p50 = %s ms, want %v", name, msString(s.P50), want)
		}
		if want := 49.667; s.P99 == nil || *s.P99 != want {
			t.Errorf("%s: p99 = %s ms, want %v", name, msString(s.P99), want)
		}
	}
}

// A registry that cannot be gathered is an error, not empty stats.
func TestGatherError(t *testing.T) {
	_, err := nodestats.Gather(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return nil, errors.New("collector broke")
	}))
	if err == nil || !strings.Contains(err.Error(), "collector broke") {
		t.Errorf("err = %v, want the gatherer's", err)
	}
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 10 observations: 2 ≤ 1, 6 ≤ 2, 8 ≤ 4, all ≤ 8.
	buckets := []nodestats.Bucket{bk(1, 2), bk(2, 6), bk(4, 8), bk(8, 10), bk(inf, 10)}
	tests := []struct {
		name    string
		q       float64
		buckets []nodestats.Bucket
		want    float64
	}{
		{"median", 0.5, buckets, 1.75},
		{"in the first bucket", 0.1, buckets, 0.5},
		{"first bucket starts at 0", 0.2, buckets, 1},
		{"p90", 0.9, buckets, 6},
		{"max", 1, buckets, 8},
		{"zero", 0, buckets, 0},
		{"any order", 0.5, []nodestats.Bucket{bk(inf, 10), bk(4, 8), bk(1, 2), bk(8, 10), bk(2, 6)}, 1.75},
		{"in +Inf: the highest finite bound", 0.99, []nodestats.Bucket{bk(1, 5), bk(2, 9), bk(inf, 10)}, 2},
		{"negative first bound", 0.1, []nodestats.Bucket{bk(-1, 2), bk(0, 4), bk(inf, 4)}, -1},
		{"same bound twice is one bucket", 0.5, []nodestats.Bucket{bk(1, 1), bk(1, 1), bk(2, 4), bk(inf, 4)}, 1},
		{"not monotonic", 0.5, []nodestats.Bucket{bk(1, 4), bk(2, 3), bk(4, 8), bk(inf, 8)}, 1},
		{"no observations", 0.5, []nodestats.Bucket{bk(1, 0), bk(inf, 0)}, math.NaN()},
		{"no +Inf bucket", 0.5, []nodestats.Bucket{bk(1, 1), bk(2, 2)}, math.NaN()},
		{"only +Inf", 0.5, []nodestats.Bucket{bk(inf, 3)}, math.NaN()},
		{"no buckets", 0.5, nil, math.NaN()},
		{"q below 0", -0.1, buckets, math.Inf(-1)},
		{"q above 1", 1.1, buckets, inf},
		{"q NaN", math.NaN(), buckets, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nodestats.HistogramQuantile(tt.q, tt.buckets)
			if math.IsNaN(tt.want) != math.IsNaN(got) || !math.IsNaN(got) && math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("HistogramQuantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if buckets[0].UpperBound != 1 || buckets[4].Count != 10 {
		t.Errorf("HistogramQuantile changed its argument: %v", buckets)
	}
}
