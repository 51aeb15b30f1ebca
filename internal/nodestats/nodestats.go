// Package nodestats sums a node's metrics into each function's activity,
// as GET /v1/stats answers it and `wisp stats` shows it: from the node's
// own registry, or from /metrics as a client fetches it (Prometheus' text
// format). It lives outside the client so that the client imports nothing
// of Prometheus.
package nodestats

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// MetricsSource serves a node's /metrics in Prometheus' text format, as
// *client.Client does.
type MetricsSource interface {
	Metrics(ctx context.Context) (io.ReadCloser, error)
}

// Metrics returns the node's metrics by family name. They are the node's
// own, since it started: in a cluster, each node has its own.
func Metrics(ctx context.Context, c MetricsSource) (map[string]*dto.MetricFamily, error) {
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

// Gather sums the metrics g gathers (a node's telemetry.Metrics) as
// FromMetrics does.
func Gather(g prometheus.Gatherer) ([]apitype.FunctionStats, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("nodestats: gathering metrics: %w", err)
	}
	mfs := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		mfs[f.GetName()] = f
	}
	return FromMetrics(mfs), nil
}

// FromMetrics sums a node's metrics (as Metrics returns them) by
// function, and returns them sorted by function name.
func FromMetrics(mfs map[string]*dto.MetricFamily) []apitype.FunctionStats {
	byName := map[string]*apitype.FunctionStats{}
	stats := func(m *dto.Metric) *apitype.FunctionStats {
		fn := label(m, telemetry.LabelFunction)
		s := byName[fn]
		if s == nil {
			s = &apitype.FunctionStats{Function: fn}
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

	out := make([]apitype.FunctionStats, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b apitype.FunctionStats) int { return cmp.Compare(a.Function, b.Function) })
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
