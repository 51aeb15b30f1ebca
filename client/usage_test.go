package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// usageReportJSON is a node's answer to GET /v1/usage.
const usageReportJSON = `{"granularity":"day","from":"2026-11-16T16:00:00Z","to":"2026-11-23T16:00:00Z",` +
	`"prices":{"per_request":2e-7,"per_gb_second":0.0000166667},` +
	`"lambda_x86_prices":{"per_request":2e-7,"per_gb_second":0.0000166667},` +
	`"functions":[{"function":"hello","invocations":3,"errors":1,"cold_starts":1,"billed_ms":30,"mb_ms":3840,` +
	`"duration_us":29500,"gb_seconds":0.00375,"cost":6.625e-7,"buckets":[{"start":"2026-11-23T00:00:00Z",` +
	`"invocations":3,"errors":1,"cold_starts":1,"billed_ms":30,"mb_ms":3840,"duration_us":29500,` +
	`"gb_seconds":0.00375,"cost":6.625e-7}]}],` +
	`"total":{"start":"2026-11-16T16:00:00Z","invocations":3,"errors":1,"cold_starts":1,"billed_ms":30,` +
	`"mb_ms":3840,"duration_us":29500,"gb_seconds":0.00375,"cost":6.625e-7}}`

func TestUsageRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		answer answer
		call   func(c *client.Client) (any, error)
		path   string
		query  string
		want   string // what the call returned, as JSON
	}{
		{
			name:   "usage of two functions by day",
			answer: answer{200, usageReportJSON},
			call: func(c *client.Client) (any, error) {
				return c.Usage(ctx, client.UsageQuery{Functions: []string{"hello", "world"}, From: "7d",
					To: "2026-11-23T16:00:00Z", Granularity: "day"})
			},
			path:  "/v1/usage",
			query: "from=7d&function=hello%2Cworld&granularity=day&to=2026-11-23T16%3A00%3A00Z",
			want:  usageReportJSON,
		},
		{
			name:   "usage with the node's defaults, nothing used",
			answer: answer{200, `{"granularity":"day","functions":null}`},
			call: func(c *client.Client) (any, error) {
				rep, err := c.Usage(ctx, client.UsageQuery{})
				return rep.Functions, err
			},
			path: "/v1/usage",
			want: `[]`,
		},
		{
			name: "records",
			answer: answer{200, `{"records":[{"function":"hello","version":"$LATEST","request_id":"r1","trigger":"sync",` +
				`"start":"2026-11-23T15:59:00.5Z","duration_us":1500,"billed_ms":2,"memory_mb":128,"cold":true,` +
				`"init_us":90000,"outcome":"success"}]}`},
			call: func(c *client.Client) (any, error) {
				return c.UsageRecords(ctx, "hello", "2h", 10)
			},
			path: "/v1/usage/records", query: "from=2h&function=hello&limit=10",
			want: `[{"function":"hello","version":"$LATEST","request_id":"r1","trigger":"sync",` +
				`"start":"2026-11-23T15:59:00.5Z","duration_us":1500,"billed_ms":2,"memory_mb":128,"cold":true,` +
				`"init_us":90000,"outcome":"success"}]`,
		},
		{
			name:   "no records",
			answer: answer{200, `{"records":null}`},
			call: func(c *client.Client) (any, error) {
				return c.UsageRecords(ctx, "hello", "", 0)
			},
			path: "/v1/usage/records", query: "function=hello",
			want: `[]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, tt.answer)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			r := <-reqs
			if r.method != "GET" || r.path != tt.path || r.rawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want GET %s?%s", r.method, r.path, r.rawQuery, tt.path, tt.query)
			}
			if got := r.header.Get("Authorization"); got != "Bearer tok" {
				t.Errorf("Authorization = %q, want %q", got, "Bearer tok")
			}
			if b, err := json.Marshal(got); err != nil || string(b) != tt.want {
				t.Errorf("returned %s (%v), want %s", b, err, tt.want)
			}
		})
	}
}

func TestUsageRefusesCommas(t *testing.T) {
	c, _ := fakeNode(t, answer{200, usageReportJSON})
	if _, err := c.Usage(context.Background(), client.UsageQuery{Functions: []string{"a,b"}}); err == nil {
		t.Error("a name with a comma was sent")
	}
}

func TestSpendCapped(t *testing.T) {
	c, _ := fakeNode(t, answer{429, `{"__type":"TooManyRequestsException","message":"Spend cap exceeded: the function's day quota of 3 invocations is used up (3); calls resume at 2026-11-24T00:00:00Z","Reason":"SpendCapExceeded"}`})
	_, err := c.Invoke(context.Background(), "hello", []byte(`{}`), client.InvokeOptions{})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 429 || e.Type != "TooManyRequestsException" || e.Reason != apitype.ReasonSpendCap {
		t.Fatalf("err = %#v", err)
	}
	if !client.IsSpendCapped(err) {
		t.Error("IsSpendCapped = false")
	}
	if client.IsSpendCapped(&client.Error{Status: 429, Type: "TooManyRequestsException", Reason: "ReservedFunctionConcurrentInvocationLimitExceeded"}) {
		t.Error("a throttle is taken for a spend cap")
	}
}
