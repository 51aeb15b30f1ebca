package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

const twoRecords = `{"time":"2026-11-23T16:00:00.123Z","function":"hello","version":"$LATEST","request_id":"r1","stream":"stdout","message":"hi"}
{"time":"2026-11-23T16:00:00.456Z","function":"hello","version":"$LATEST","request_id":"r1","stream":"platform","message":"END RequestId: r1"}
`

func collect(recs *[]apitype.LogRecord) func(apitype.LogRecord) error {
	return func(r apitype.LogRecord) error {
		*recs = append(*recs, r)
		return nil
	}
}

func TestLogs(t *testing.T) {
	tests := []struct {
		name      string
		opt       client.LogsOptions
		wantQuery string
	}{
		{"no options", client.LogsOptions{}, ""},
		{"all options", client.LogsOptions{Since: "10m", Follow: true, RequestID: "r1"}, "follow=true&request_id=r1&since=10m"},
		{"a time", client.LogsOptions{Since: "2026-11-23T16:00:00+01:00"}, "since=2026-11-23T16%3A00%3A00%2B01%3A00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, answer{200, twoRecords})
			var got []apitype.LogRecord
			if err := c.Logs(context.Background(), "hello", tt.opt, collect(&got)); err != nil {
				t.Fatal(err)
			}
			r := <-reqs
			if r.method != "GET" || r.path != "/v1/functions/hello/logs" || r.rawQuery != tt.wantQuery {
				t.Errorf("request %s %s?%s, want GET /v1/functions/hello/logs?%s", r.method, r.path, r.rawQuery, tt.wantQuery)
			}
			if r.header.Get("Authorization") != "Bearer tok" {
				t.Errorf("Authorization %q", r.header.Get("Authorization"))
			}
			want := apitype.LogRecord{Time: time.Date(2026, 11, 23, 16, 0, 0, 123e6, time.UTC), Function: "hello",
				Version: "$LATEST", RequestID: "r1", Stream: "stdout", Message: "hi"}
			if len(got) != 2 || !got[0].Time.Equal(want.Time) || got[0].Message != want.Message ||
				got[0].RequestID != want.RequestID || got[0].Stream != want.Stream || got[1].Message != "END RequestId: r1" {
				t.Errorf("records %+v, want %+v and the END line", got, want)
			}
		})
	}
}

func TestLogsEmpty(t *testing.T) {
	c, _ := fakeNode(t, answer{200, ""})
	n := 0
	if err := c.Logs(context.Background(), "hello", client.LogsOptions{}, func(apitype.LogRecord) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("Logs = %v with %d records, want nil with none", err, n)
	}
}

func TestLogsError(t *testing.T) {
	c, _ := fakeNode(t, answer{400, `{"type":"InvalidParameterValueException","message":"since \"x\" must be a duration"}`})
	err := c.Logs(context.Background(), "hello", client.LogsOptions{Since: "x"}, func(apitype.LogRecord) error {
		t.Error("a record from an error")
		return nil
	})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Type != apitype.TypeInvalidParameterValue {
		t.Errorf("err = %v, want a 400 InvalidParameterValueException", err)
	}
}

func TestLogsCallbackError(t *testing.T) {
	c, _ := fakeNode(t, answer{200, twoRecords})
	stop := errors.New("enough")
	n := 0
	err := c.Logs(context.Background(), "hello", client.LogsOptions{}, func(apitype.LogRecord) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Logs = %v after %d records, want %v after 1", err, n, stop)
	}
}

func TestLogsBadLine(t *testing.T) {
	c, _ := fakeNode(t, answer{200, "{\"message\":\"ok\"}\nnot json\n"})
	n := 0
	err := c.Logs(context.Background(), "hello", client.LogsOptions{}, func(apitype.LogRecord) error { n++; return nil })
	if err == nil || n != 1 {
		t.Errorf("Logs = %v after %d records, want an error after 1", err, n)
	}
}

// streamingNode answers with one record, then a second once the client has
// the first, then holds the stream open until the client leaves.
func streamingNode(t *testing.T, got1 <-chan struct{}) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		rc := http.NewResponseController(w)
		lines := strings.SplitAfter(twoRecords, "\n")
		io.WriteString(w, lines[0])
		rc.Flush()
		select {
		case <-got1:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, lines[1])
		rc.Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL, "tok")
}

func TestLogsFollow(t *testing.T) {
	got1 := make(chan struct{})
	c := streamingNode(t, got1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var msgs []string
	err := c.Logs(ctx, "hello", client.LogsOptions{Follow: true}, func(r apitype.LogRecord) error {
		msgs = append(msgs, r.Message)
		if len(msgs) == 1 {
			close(got1) // the first record came before the second was sent
		} else {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Logs = %v, want context.Canceled", err)
	}
	if len(msgs) != 2 {
		t.Errorf("records %q, want 2", msgs)
	}
}

func TestLogsCutOff(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, strings.SplitAfter(twoRecords, "\n")[0])
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // as the node does when its logs fail mid-stream
	}))
	defer srv.Close()
	c := client.New(srv.URL, "tok")
	n := 0
	err := c.Logs(context.Background(), "hello", client.LogsOptions{}, func(apitype.LogRecord) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "cut off") || n != 1 {
		t.Errorf("Logs = %v after %d records, want a cut-off error after 1", err, n)
	}
}
