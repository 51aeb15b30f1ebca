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
func (c *Client) Usage(ctx context.Context, q UsageQuery) (apitype.UsageReport, error) {
	v := url.Values{}
	if len(q.Functions) > 0 {
		for _, fn := range q.Functions {
			if fn == "" || strings.Contains(fn, ",") {
				return apitype.UsageReport{}, errors.New("client: usage: a function name is empty or has a comma")
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
	var rep apitype.UsageReport
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/usage", query: v}, &rep); err != nil {
		return apitype.UsageReport{}, err
	}
	if rep.Functions == nil {
		rep.Functions = []apitype.FunctionUsage{}
	}
	return rep, nil
}

// UsageRecords returns up to limit (0: the node's default) usage records
// of a function, oldest first, of the invocations that started at or after
// from (an RFC 3339 time or a duration before now; empty: the last hour).
// Records are kept 31 days.
func (c *Client) UsageRecords(ctx context.Context, function, from string, limit int) ([]apitype.UsageRecord, error) {
	v := url.Values{"function": {function}}
	if from != "" {
		v.Set("from", from)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Records []apitype.UsageRecord `json:"records"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/usage/records", query: v}, &out); err != nil {
		return nil, err
	}
	if out.Records == nil {
		out.Records = []apitype.UsageRecord{}
	}
	return out.Records, nil
}

// IsSpendCapped reports whether err is a call refused because a quota is
// used up (429 TooManyRequestsException, Reason SpendCapExceeded).
func IsSpendCapped(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusTooManyRequests && e.Reason == apitype.ReasonSpendCap
}
