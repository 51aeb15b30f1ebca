package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one p50", ms(7), 50, 7 * time.Millisecond},
		{"one p99", ms(7), 99, 7 * time.Millisecond},
		{"two p50 is the lower", ms(1, 2), 50, 1 * time.Millisecond},
		{"four p50", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"four p75", ms(1, 2, 3, 4), 75, 3 * time.Millisecond},
		{"four p99 is the max", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"hundred p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"hundred p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"hundred p100", ms(hundred...), 100, 100 * time.Millisecond},
		{"hundred p1", ms(hundred...), 1, 1 * time.Millisecond},
		{"tiny p is the min", ms(hundred...), 0.001, 1 * time.Millisecond},
		{"thirty p99 is the max", ms(hundred[:30]...), 99, 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		t.Run(fmt.Sprint(tc.xs), func(t *testing.T) {
			if got := median(tc.xs); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
			}
		})
	}
}

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/fn/x", true},
		{"http://localhost:8080/", false},
		{"http://10.0.0.1/", false},
		{"https://127.0.0.1/", false},
		{"http://127.0.0.1.example.com/", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if err := checkTarget(tc.url); (err == nil) != tc.ok {
				t.Errorf("checkTarget(%q) = %v, want ok %v", tc.url, err, tc.ok)
			}
		})
	}
}

// TestRunLoad checks a short run records what it sent, within its bounds.
func TestRunLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "no", http.StatusTooManyRequests)
			return
		}
		w.Write([]byte("hi")) //nolint:errcheck // the test reads the status only
	}))
	defer srv.Close()

	// The bound is far above what 100ms can hold, so the window ends the
	// run (a fast machine answers over 1000 requests in it).
	const bound = 1_000_000
	res, err := runLoad(context.Background(), loadConfig{URL: srv.URL, Conns: 2, Warmup: 20 * time.Millisecond,
		Duration: 100 * time.Millisecond, MaxRequests: bound})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Latencies); n == 0 || n >= bound || res.Errors != 0 {
		t.Errorf("recorded %d answers, %d errors; want 1 to %d, no errors", n, res.Errors, bound-1)
	}
	if res.Elapsed < 90*time.Millisecond || res.Elapsed > time.Second {
		t.Errorf("elapsed %v, want about 100ms", res.Elapsed)
	}

	res, err = runLoad(context.Background(), loadConfig{URL: srv.URL + "?fail=1", Conns: 1,
		Duration: 50 * time.Millisecond, MaxRequests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Latencies) != 0 || res.Errors != 10 {
		t.Errorf("recorded %d answers, %d errors; want 0 and 10 (the request bound)", len(res.Latencies), res.Errors)
	}
}
