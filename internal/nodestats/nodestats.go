// Package nodestats reads a node's /metrics (Prometheus' text format, as
// the client fetches it) into each function's activity, as `wisp stats`
// shows it. It lives outside the client so that the client imports nothing
// of Prometheus.
package nodestats

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// Metrics returns the node's metrics by family name. They are the node's
// own, since it started: in a cluster, each node has its own.
func Metrics(ctx context.Context, c *client.Client) (map[string]*dto.MetricFamily, error) {
	body, err := c.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(body)
	if err != nil {
		return nil, fmt.Errorf("nodestats: reading /metrics: %w", err)
	}
	return mfs, nil
}

// FunctionStats is a function's activity on a node, summed over its
// versions, as `wisp stats` shows it.
type FunctionStats struct {
	Function    string `json:"function"`
	Invocations int64  `json:"invocations"`
	// Errors counts the invocations that did not succeed: function errors,
	// timeouts, throttles.
	Errors     int64 `json:"errors"`
	Throttles  int64 `json:"throttles"`
	ColdStarts int64 `json:"cold_starts"`
	// P50 and P99 are the median and 99th percentile of the invocations'
	// durations in milliseconds (to the microsecond), estimated from the
	// histogram's buckets (see HistogramQuantile); nil without invocations.
	P50 *float64 `json:"p50_ms"`
	P99 *float64 `json:"p99_ms"`
	// The function's instances now, and the callers waiting for one.
	Idle     int `json:"idle"`
	Busy     int `json:"busy"`
	Starting int `json:"starting"`
	Queued   int `json:"queued"`
}

// FromMetrics sums a node's metrics (as Metrics returns them) by
// function, and returns them sorted by function name.
func FromMetrics(mfs map[string]*dto.MetricFamily) []FunctionStats {
	byName := map[string]*FunctionStats{}
	stats := func(m *dto.Metric) *FunctionStats {
		fn := label(m, telemetry.LabelFunction)
		s := byName[fn]
		if s == nil {
			s = &FunctionStats{Function: fn}
			byName[fn] = s
		}
		return s
	}
	for _, m := range mfs[telemetry.MetricInvocations].GetMetric() {
		s, n := stats(m), count(m.GetCounter().GetValue())
		s.Invocations += n
		if label(m, telemetry.LabelOutcome) != telemetry.OutcomeSuccess {
			s.Errors += n
		}
	}
	for _, m := range mfs[telemetry.MetricThrottles].GetMetric() {
		stats(m).Throttles += count(m.GetCounter().GetValue())
	}
	for _, m := range mfs[telemetry.MetricColdStarts].GetMetric() {
		stats(m).ColdStarts += count(m.GetCounter().GetValue())
	}
	for _, m := range mfs[telemetry.MetricInstances].GetMetric() {
		s, n := stats(m), int(count(m.GetGauge().GetValue()))
		switch label(m, telemetry.LabelState) {
		case "idle":
			s.Idle += n
		case "busy":
			s.Busy += n
		case "starting":
			s.Starting += n
		}
	}
	for _, m := range mfs[telemetry.MetricQueueDepth].GetMetric() {
		stats(m).Queued += int(count(m.GetGauge().GetValue()))
	}
	// A function's durations, merged over its series should there be
	// several, bucket by bucket.
	durations := map[string]map[float64]float64{}
	for _, m := range mfs[telemetry.MetricDuration].GetMetric() {
		s, h := stats(m), m.GetHistogram()
		if durations[s.Function] == nil {
			durations[s.Function] = map[float64]float64{}
		}
		d := durations[s.Function]
		hasInf := false // the text format has the +Inf bucket; the protobuf format leaves it to the count
		for _, b := range h.GetBucket() {
			d[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			hasInf = hasInf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !hasInf {
			d[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	for fn, d := range durations {
		buckets := make([]Bucket, 0, len(d))
		for le, n := range d {
			buckets = append(buckets, Bucket{UpperBound: le, Count: n})
		}
		byName[fn].P50 = quantileMs(0.5, buckets)
		byName[fn].P99 = quantileMs(0.99, buckets)
	}

	out := make([]FunctionStats, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b FunctionStats) int { return cmp.Compare(a.Function, b.Function) })
	return out
}

func quantileMs(q float64, buckets []Bucket) *float64 {
	v := HistogramQuantile(q, buckets)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	v = math.Round(v*1e6) / 1e3 // to the microsecond: it is an estimate
	return &v
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// count is a counter's or gauge's value as the whole number it counts.
func count(v float64) int64 {
	if math.IsNaN(v) {
		return 0
	}
	return int64(math.Round(v))
}

// Bucket is one bucket of a histogram: Count observations were at most
// UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64 // cumulative, as Prometheus counts
}

// HistogramQuantile estimates the q-quantile (0 ≤ q ≤ 1) of the
// observations counted in buckets as Prometheus' histogram_quantile does:
// it finds the bucket the quantile falls in and interpolates linearly
// within it, taking the first bucket to start at 0 when its upper bound is
// positive. The buckets may come in any order; one must have the upper
// bound +Inf. A quantile in the +Inf bucket is the highest finite bound.
// It returns NaN when there are no observations, no +Inf bucket or fewer
// than two buckets, and ∓Inf for q below 0 or above 1.
func HistogramQuantile(q float64, buckets []Bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	bs := slices.Clone(buckets)
	slices.SortFunc(bs, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].UpperBound, 1) {
		return math.NaN()
	}
	// Buckets with the same bound are one; counts that go down (series
	// scraped at different times) are taken as the highest seen so far.
	merged := bs[:0]
	for _, b := range bs {
		if n := len(merged); n > 0 && merged[n-1].UpperBound == b.UpperBound {
			merged[n-1].Count += b.Count
			continue
		}
		merged = append(merged, b)
	}
	bs = merged
	for i := 1; i < len(bs); i++ {
		bs[i].Count = max(bs[i].Count, bs[i-1].Count)
	}
	if len(bs) < 2 {
		return math.NaN()
	}
	observations := bs[len(bs)-1].Count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b := sort.Search(len(bs)-1, func(i int) bool { return bs[i].Count >= rank })
	if b == len(bs)-1 {
		return bs[len(bs)-2].UpperBound
	}
	if b == 0 && bs[0].UpperBound <= 0 {
		return bs[0].UpperBound
	}
	start, end, n := 0.0, bs[b].UpperBound, bs[b].Count
	if b > 0 {
		start = bs[b-1].UpperBound
		n -= bs[b-1].Count
		rank -= bs[b-1].Count
	}
	if n == 0 { // q is 0 and the bucket is empty
		return start
	}
	return start + (end-start)*(rank/n)
}
