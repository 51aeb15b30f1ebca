package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/apitype"
)

// The wire types of usage are apitype's.
type (
	// UsageRecord is one invocation's usage: its trigger, start, duration,
	// billed duration (as its REPORT line gives it), memory and outcome.
	UsageRecord = apitype.UsageRecord
	// UsageCounts is what a set of invocations used: counts, billed
	// milliseconds and memory-time (MB × billed ms).
	UsageCounts = apitype.Usage
	// UsageBucket is a function's usage in one hour or day, with its
	// GB-seconds and cost.
	UsageBucket = apitype.UsageBucket
	// FunctionUsage is a function's usage over a report's span, and bucket
	// by bucket.
	FunctionUsage = apitype.FunctionUsage
	// Prices turn usage into cost: dollars per request and per GB-second.
	Prices = apitype.Prices
	// UsageReport is the answer of GET /v1/usage: the usage of each
	// function over [From, To), by hour or day, its cost at the node's
	// prices, and AWS Lambda's x86 prices to compare them with.
	UsageReport = apitype.UsageReport
	// SpendCap is a reached quota, as the 429 of a capped call describes it
	// and as the data of the wisp.cap.exceeded events on SpendCapTopic.
	SpendCap = apitype.SpendCap
)

const (
	// ReasonSpendCap is the Reason of the 429 TooManyRequestsException a
	// call gets when its function's quota, or the node's, is used up.
	ReasonSpendCap = apitype.ReasonSpendCap
	// SpendCapTopic is the topic a node tells a reached quota on, once per
	// period, as a CloudEvent of type wisp.cap.exceeded.
	SpendCapTopic = apitype.SpendCapTopic
)

// UsageQuery selects a usage report.
type UsageQuery struct {
	// Functions are the functions reported, each whether or not it used
	// anything; empty: every function that used anything in the span.
	Functions []string
	// From and To bound the span: RFC 3339 times or durations before now
	// ("7d", "36h"); empty: the last 7 days up to now.
	From, To string
	// Granularity is "hour" or "day"; empty: by hour when the span is at
	// most 48 hours, else by day.
	Granularity string
}

// Usage returns the usage of functions over a span, from the node's
// hourly and daily rollups, which count an invocation within about a
// second of its end.
func (c *Client) Usage(ctx context.Context, q UsageQuery) (UsageReport, error) {
	v := url.Values{}
	if len(q.Functions) > 0 {
		for _, fn := range q.Functions {
			if fn == "" || strings.Contains(fn, ",") {
				return UsageReport{}, errors.New("client: usage: a function name is empty or has a comma")
			}
		}
		v.Set("function", strings.Join(q.Functions, ","))
	}
	if q.From != "" {
		v.Set("from", q.From)
	}
	if q.To != "" {
		v.Set("to", q.To)
	}
	if q.Granularity != "" {
		v.Set("granularity", q.Granularity)
	}
	var rep UsageReport
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/usage", query: v}, &rep); err != nil {
		return UsageReport{}, err
	}
	if rep.Functions == nil {
		rep.Functions = []FunctionUsage{}
	}
	return rep, nil
}

// UsageRecords returns up to limit (0: the node's default) usage records
// of a function, oldest first, of the invocations that started at or after
// from (an RFC 3339 time or a duration before now; empty: the last hour).
// Records are kept 31 days.
func (c *Client) UsageRecords(ctx context.Context, function, from string, limit int) ([]UsageRecord, error) {
	v := url.Values{"function": {function}}
	if from != "" {
		v.Set("from", from)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Records []UsageRecord `json:"records"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/usage/records", query: v}, &out); err != nil {
		return nil, err
	}
	if out.Records == nil {
		out.Records = []UsageRecord{}
	}
	return out.Records, nil
}

// IsSpendCapped reports whether err is a call refused because a quota is
// used up (429 TooManyRequestsException, Reason SpendCapExceeded).
func IsSpendCapped(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusTooManyRequests && e.Reason == ReasonSpendCap
}
