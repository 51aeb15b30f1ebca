package client_test

import (
	"context"
	"encoding/json"
	"testing"
)

func TestStats(t *testing.T) {
	tests := []struct {
		name   string
		answer answer
		want   string // what Stats returned, as JSON
	}{
		{
			name: "two functions",
			answer: answer{200, `{"functions":[{"function":"hello","invocations":10,"errors":2,"throttles":3,` +
				`"cold_starts":3,"p50_ms":21.25,"p99_ms":97.5,"idle":1,"busy":3,"starting":1,"queued":4},` +
				`{"function":"quiet","invocations":0,"errors":0,"throttles":0,"cold_starts":0,"p50_ms":null,` +
				`"p99_ms":null,"idle":1,"busy":0,"starting":0,"queued":0}]}`},
			want: `[{"function":"hello","invocations":10,"errors":2,"throttles":3,` +
				`"cold_starts":3,"p50_ms":21.25,"p99_ms":97.5,"idle":1,"busy":3,"starting":1,"queued":4},` +
				`{"function":"quiet","invocations":0,"errors":0,"throttles":0,"cold_starts":0,"p50_ms":null,` +
				`"p99_ms":null,"idle":1,"busy":0,"starting":0,"queued":0}]`,
		},
		{
			name:   "nothing ran",
			answer: answer{200, `{"functions":null}`},
			want:   `[]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, tt.answer)
			got, err := c.Stats(context.Background())
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			r := <-reqs
			if r.method != "GET" || r.path != "/v1/stats" || r.rawQuery != "" {
				t.Errorf("request = %s %s?%s, want GET /v1/stats", r.method, r.path, r.rawQuery)
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

func TestStatsError(t *testing.T) {
	c, _ := fakeNode(t, answer{501, `{"type":"ServiceException","message":"stats are not enabled on this node"}`})
	if got, err := c.Stats(context.Background()); err == nil {
		t.Errorf("Stats = %+v, want an error", got)
	}
}
