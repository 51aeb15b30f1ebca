package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// logsNode serves the API on a real registry and real logs, both on an
// embedded JetStream in a temp dir.
func logsNode(t *testing.T) (*telemetry.Logs, *httptest.Server) {
	t.Helper()
	logs, srv, _ := logsNodeStore(t)
	return logs, srv
}

func logsNodeStore(t *testing.T) (*telemetry.Logs, *httptest.Server, *store.Store) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.Open(ctx, st.JS, time.Now, log, registry.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := telemetry.OpenLogs(ctx, st.JS, telemetry.LogsConfig{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := logs.Close(ctx); err != nil {
			t.Errorf("closing the logs: %v", err)
		}
	})
	srv := httptest.NewServer(New(Config{Registry: reg, Logs: logs, AdminToken: "tok", StageDir: t.TempDir(), Logger: log}))
	t.Cleanup(srv.Close)
	return logs, srv, st
}

func getLogs(t *testing.T, ctx context.Context, srv *httptest.Server, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// recordLines reads an NDJSON answer into the records' messages.
func recordLines(t *testing.T, body io.Reader) []string {
	t.Helper()
	var msgs []string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		var rec telemetry.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, rec.Message)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestFunctionLogs(t *testing.T) {
	logs, srv := logsNode(t)
	old := time.Now().Add(-3 * time.Hour)
	logs.Append(telemetry.Record{Time: old, Function: "hello", RequestID: "r1", Message: "one"})
	logs.Append(telemetry.Record{Function: "hello", RequestID: "r2", Message: "two"})
	logs.Append(telemetry.Record{Function: "other", RequestID: "r1", Message: "not hello's"})
	if err := logs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"all kept", "", "one|two"},
		{"one request", "?request_id=r2", "two"},
		{"since a duration", "?since=1h", "one|two"}, // stored just now, whatever the record says
		{"since a time to come", "?since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), ""},
		{"since a time past", "?since=" + time.Now().Add(-time.Minute).Format(time.RFC3339Nano), "one|two"},
		{"follow=false", "?follow=false", "one|two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := getLogs(t, context.Background(), srv, "/v1/functions/hello/logs"+tt.query)
			defer res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := strings.Join(recordLines(t, res.Body), "|"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFunctionLogsNeedNoFunction(t *testing.T) {
	_, srv := logsNode(t)
	res := getLogs(t, context.Background(), srv, "/v1/functions/deleted-long-ago/logs")
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d, want 200 with no records", res.StatusCode)
	}
	if got := recordLines(t, res.Body); len(got) != 0 {
		t.Errorf("records %q, want none", got)
	}
}

func TestFunctionLogsFollow(t *testing.T) {
	logs, srv := logsNode(t)
	logs.Append(telemetry.Record{Function: "hello", Message: "before"})
	if err := logs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := getLogs(t, ctx, srv, "/v1/functions/hello/logs?follow=true")
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	next := func() string {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("the stream ended: %v", sc.Err())
		}
		var rec telemetry.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		return rec.Message
	}
	if got := next(); got != "before" {
		t.Errorf("first line %q, want before", got)
	}
	// Each line is flushed as it comes: this one arrives while the
	// answer is still open.
	logs.Append(telemetry.Record{Function: "hello", Message: "after"})
	if got := next(); got != "after" {
		t.Errorf("second line %q, want after", got)
	}
	// The client leaving ends the stream; the node's cleanup (logs.Close,
	// srv.Close) must not hang on it.
	cancel()
}

func TestFunctionLogsFollowEmpty(t *testing.T) {
	// The status comes at once, before there is a record to send.
	_, srv := logsNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := getLogs(t, ctx, srv, "/v1/functions/hello/logs?follow=1")
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func TestFunctionLogsStopFollowing(t *testing.T) {
	logs, srv := logsNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := getLogs(t, ctx, srv, "/v1/functions/hello/logs?follow=true")
	defer res.Body.Close()
	logs.StopFollowing() // as the node does when it shuts down
	b, err := io.ReadAll(res.Body)
	if err != nil || len(b) != 0 {
		t.Errorf("body %q, %v; want a clean, empty end", b, err)
	}
}

func TestFunctionLogsCutOff(t *testing.T) {
	// When the logs fail mid-stream, the client sees a broken stream, not a
	// clean end it would take for "no more records".
	logs, srv, st := logsNodeStore(t)
	logs.Append(telemetry.Record{Function: "hello", Message: "one"})
	if err := logs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := getLogs(t, ctx, srv, "/v1/functions/hello/logs?follow=true")
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	st.Close() // the state store goes away
	_, err := io.ReadAll(br)
	if err == nil || ctx.Err() != nil {
		t.Errorf("reading on: %v (ctx %v), want the stream cut off", err, ctx.Err())
	}
}

func TestFunctionLogsBadInput(t *testing.T) {
	_, srv := logsNode(t)
	tests := []struct {
		name, path string
		status     int
		errType    string
	}{
		{"bad name", "/v1/functions/Not_A_Name/logs", 400, "InvalidParameterValueException"},
		{"bad since", "/v1/functions/hello/logs?since=yesterday", 400, "InvalidParameterValueException"},
		{"negative since", "/v1/functions/hello/logs?since=-5m", 400, "InvalidParameterValueException"},
		{"bad follow", "/v1/functions/hello/logs?follow=maybe", 400, "InvalidParameterValueException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := getLogs(t, context.Background(), srv, tt.path)
			defer res.Body.Close()
			var e Error
			if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || e.Type != tt.errType {
				t.Errorf("%d %s (%s), want %d %s", res.StatusCode, e.Type, e.Message, tt.status, tt.errType)
			}
		})
	}
}

func TestFunctionLogsDisabled(t *testing.T) {
	srv := httptest.NewServer(New(Config{AdminToken: "tok", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()
	res := getLogs(t, context.Background(), srv, "/v1/functions/hello/logs")
	defer res.Body.Close()
	if res.StatusCode != http.StatusNotImplemented {
		t.Errorf("status %d, want 501", res.StatusCode)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		s       string
		follow  bool
		want    time.Time
		wantErr bool
	}{
		{"", false, time.Time{}, false},
		{"", true, now.Add(-time.Hour), false},
		{"10m", false, now.Add(-10 * time.Minute), false},
		{"2h", true, now.Add(-2 * time.Hour), false},
		{"1h30m", false, now.Add(-90 * time.Minute), false},
		{"7d", false, now.Add(-7 * 24 * time.Hour), false},
		{"0", false, now, false},
		{"2026-11-23T15:00:00Z", false, now.Add(-time.Hour), false},
		{"2026-11-23T17:00:00+02:00", false, now.Add(-time.Hour), false},
		{"2026-11-23T15:00:00.5Z", false, now.Add(-59*time.Minute - 59500*time.Millisecond), false},
		{"-5m", false, time.Time{}, true},
		{"d", false, time.Time{}, true},
		{"-1d", false, time.Time{}, true},
		{"1.5d", false, time.Time{}, true},
		{"yesterday", false, time.Time{}, true},
		{"2026-11-23", false, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			got, err := parseSince(tt.s, now, tt.follow)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSince(%q) error = %v, want error %v", tt.s, err, tt.wantErr)
			}
			if !got.Equal(tt.want) {
				t.Errorf("parseSince(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}
