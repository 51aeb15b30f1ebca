package apitype

// FunctionStats is a function's activity on a node (GET /v1/stats), summed
// over its versions, as `wisp stats` shows it. The counts are the node's
// own since it started, as its /metrics has them: in a cluster, each node
// counts its own.
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
	// duration histogram's buckets as Prometheus' histogram_quantile does;
	// nil without invocations.
	P50 *float64 `json:"p50_ms"`
	P99 *float64 `json:"p99_ms"`
	// The function's instances now, and the callers waiting for one.
	Idle     int `json:"idle"`
	Busy     int `json:"busy"`
	Starting int `json:"starting"`
	Queued   int `json:"queued"`
}
