package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunCount checks the calls made: one unrecorded per worker, then
// exactly count, with the failures counted.
func TestRunCount(t *testing.T) {
	var calls atomic.Int64
	boom := errors.New("boom")
	newWorker := func() (func(context.Context) error, func()) {
		return func(context.Context) error {
			if calls.Add(1)%10 == 0 {
				return boom
			}
			return nil
		}, func() {}
	}
	took, failed, firstErr, err := runCount(context.Background(), 4, 1000, newWorker)
	if err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 1004 {
		t.Errorf("%d calls, want 1004 (4 warm-ups and 1000)", got)
	}
	if failed < 90 || failed > 101 || !errors.Is(firstErr, boom) {
		t.Errorf("failed = %d, first error %v; want about 100, %v", failed, firstErr, boom)
	}
	if took <= 0 {
		t.Errorf("took %v", took)
	}

	if _, _, _, err := runCount(context.Background(), 4, 3, newWorker); err == nil {
		t.Error("fewer calls than workers: no error")
	}
	failFirst := func() (func(context.Context) error, func()) {
		return func(context.Context) error { return boom }, func() {}
	}
	if _, _, _, err := runCount(context.Background(), 2, 10, failFirst); !errors.Is(err, boom) {
		t.Errorf("failing warm-up: err = %v, want %v", err, boom)
	}
}

func TestHTTPCaller(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		switch {
		case err != nil || string(body) != string(asyncPayload) || r.Method != http.MethodPost:
			http.Error(w, "bad request", http.StatusBadRequest)
		case r.Header.Get("X-Amz-Invocation-Type") != "Event":
			http.Error(w, "not an event", http.StatusBadRequest)
		case r.URL.Path == "/noid":
			w.WriteHeader(http.StatusAccepted)
		case r.Header.Get("Authorization") != "Bearer tok":
			http.Error(w, "who are you", http.StatusUnauthorized)
		default:
			w.Header().Set("X-Amzn-RequestId", "r1")
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name, path, token string
		want              int
		ok                bool
	}{
		{"accepted", "/", "tok", http.StatusAccepted, true},
		{"no token", "/", "", http.StatusAccepted, false},
		{"accepted without a request id", "/noid", "tok", http.StatusAccepted, false},
		{"not the status wanted", "/", "tok", http.StatusOK, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call, done := httpCaller(srv.URL+tc.path, tc.token, tc.want)()
			defer done()
			if err := call(context.Background()); (err == nil) != tc.ok {
				t.Errorf("call = %v, want ok %v", err, tc.ok)
			}
		})
	}

	call, done := httpCaller("http://localhost:1/", "", http.StatusOK)()
	defer done()
	if err := call(context.Background()); err == nil {
		t.Error("a target off 127.0.0.1: no error")
	}
}

func TestMedianDuration(t *testing.T) {
	if got := medianDuration([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}); got != 2*time.Second {
		t.Errorf("medianDuration = %v, want 2s", got)
	}
	if got := medianDuration(nil); got != 0 {
		t.Errorf("medianDuration(nil) = %v, want 0", got)
	}
}
