package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The soak itself runs only with -soak; these test its parts.

func TestParseVmRSS(t *testing.T) {
	status := "Name:\twisp\nVmPeak:\t 2000 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n"
	if got, err := parseVmRSS(status); err != nil || got != 123456<<10 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 123456<<10)
	}
	for _, bad := range []string{"Name:\twisp\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if got, err := parseVmRSS(bad); err == nil {
			t.Errorf("parseVmRSS(%q) = %d, want an error", bad, got)
		}
	}
}

func TestLogKind(t *testing.T) {
	got := logKind("nats: open /tmp/d-1/node/msgs/31.blk: too many open files; retrying in 160ms", "/tmp/d-1/node")
	if want := "nats: open DATA/msgs/N.blk: too many open files; retrying in Nms"; got != want {
		t.Errorf("logKind = %q, want %q", got, want)
	}
}

// TestRecorderTally checks the account of events run: of the accepted,
// those that ran; those run twice; those run but never answered 202.
func TestRecorderTally(t *testing.T) {
	r := &eventRecorder{}
	for _, body := range []string{`{"n":1}`, `{"n":2}`, `{"n":2}`, `{"n":5}`, `{"n":0}`, `not json`} {
		w := httptest.NewRecorder()
		r.record(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		if want := http.StatusNoContent; body == "not json" {
			if w.Code != http.StatusBadRequest {
				t.Errorf("%s: answered %d, want 400", body, w.Code)
			}
		} else if w.Code != want {
			t.Errorf("%s: answered %d, want %d", body, w.Code, want)
		}
	}
	ran, twice, unanswered := r.tally([]int64{1, 2, 3})
	if ran != 2 || twice != 1 || unanswered != 1 || r.odd != 1 {
		t.Errorf("tally = ran %d, twice %d, unanswered %d, odd %d; want 2, 1, 1, 1", ran, twice, unanswered, r.odd)
	}
}

// TestFlooderReopens checks that a flooder's connection, closed by the
// server, is opened again, and that the closes are counted.
func TestFlooderReopens(t *testing.T) {
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server closes the first two connections; once it has the third,
	// the flooder has counted both closes.
	third := make(chan net.Conn, 1)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 2 {
				third <- c
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	var c connCounts
	var wg sync.WaitGroup
	wg.Go(func() { c.hold(ctx, ln.Addr().String(), make(chan struct{}, 1)) })
	var conn net.Conn
	select {
	case conn = <-third:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("no third connection; flooder: %+v", c.stats())
	}
	defer conn.Close()
	cancel()
	wg.Wait()
	if got := c.stats(); got.Opened < 2 || got.Closed != 2 || got.Open != 0 || got.DialErrors != 0 {
		t.Errorf("stats = %+v, want at least 2 opened, 2 closed, 0 open, 0 dial errors", got)
	}
}
