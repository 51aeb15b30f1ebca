package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// openLogs opens the logs on a fresh embedded JetStream.
func openLogs(t *testing.T, cfg LogsConfig) *Logs {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	l, err := OpenLogs(ctx, st.JS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(ctx); err != nil {
			t.Errorf("closing the logs: %v", err)
		}
	})
	return l
}

func flush(t *testing.T, l *Logs) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// readAll reads the function's records without following.
func readAll(t *testing.T, l *Logs, function string, since time.Time, requestID string) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []Record
	err := l.Read(ctx, function, since, requestID, false, func(r Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%s): %v", function, err)
	}
	return got
}

func messages(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.Message + "|")
	}
	return b.String()
}

var t0 = time.Date(2026, 11, 23, 16, 0, 0, 123e6, time.UTC)

func TestAppendFlushRead(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	for i := range 5 {
		l.Append(Record{Time: t0.Add(time.Duration(i) * time.Millisecond), Function: "hello", Version: "$LATEST",
			RequestID: "req-1", Stream: "stdout", Message: fmt.Sprintf("hello %d", i)})
		l.Append(Record{Time: t0, Function: "other", Version: "1", Message: fmt.Sprintf("other %d", i)})
	}
	flush(t, l)

	got := readAll(t, l, "hello", time.Time{}, "")
	if m, want := messages(got), "hello 0|hello 1|hello 2|hello 3|hello 4|"; m != want {
		t.Errorf("hello's records: %s, want %s", m, want)
	}
	want := Record{Time: t0.Add(2 * time.Millisecond), Function: "hello", Version: "$LATEST",
		RequestID: "req-1", Stream: "stdout", Message: "hello 2"}
	if len(got) == 5 && got[2] != want {
		t.Errorf("record 2 = %+v, want %+v", got[2], want)
	}
	if m, want := messages(readAll(t, l, "other", time.Time{}, "")), "other 0|other 1|other 2|other 3|other 4|"; m != want {
		t.Errorf("other's records: %s, want %s", m, want)
	}
	if got := readAll(t, l, "nobody", time.Time{}, ""); len(got) != 0 {
		t.Errorf("a function that never logged has records: %+v", got)
	}
	if s, want := l.Stats(), (LogStats{Queued: 10}); s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
}

func TestReadFilters(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	for _, rid := range []string{"a", "b", "a", "b", "c"} {
		l.Append(Record{Function: "hello", RequestID: rid, Message: "from " + rid})
	}
	flush(t, l)
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	l.Append(Record{Function: "hello", RequestID: "a", Message: "late a"})
	l.Append(Record{Function: "hello", RequestID: "d", Message: "late d"})
	flush(t, l)

	tests := []struct {
		name      string
		since     time.Time
		requestID string
		want      string
	}{
		{"everything", time.Time{}, "", "from a|from b|from a|from b|from c|late a|late d|"},
		{"one request", time.Time{}, "b", "from b|from b|"},
		{"a request with no records", time.Time{}, "zzz", ""},
		{"since", since, "", "late a|late d|"},
		{"since and a request", since, "a", "late a|"},
		{"since, the request's last record is older", since, "c", ""},
		{"since in the future", time.Now().Add(time.Hour), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := messages(readAll(t, l, "hello", tt.since, tt.requestID)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestReadFollow(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	l.Append(Record{Function: "hello", Message: "before"})
	l.Append(Record{Function: "elsewhere", Message: "not mine"})
	flush(t, l)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err := l.Read(ctx, "hello", time.Time{}, "", true, func(r Record) error {
		got = append(got, r.Message)
		switch r.Message {
		case "before":
			// Read has started and caught up: what comes now must reach it.
			l.Append(Record{Function: "elsewhere", Message: "not mine either"})
			l.Append(Record{Function: "hello", Message: "after"})
		case "after":
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Read ended with %v, want context.Canceled", err)
	}
	if strings.Join(got, "|") != "before|after" {
		t.Errorf("followed %q, want before and after", got)
	}
}

// TestReadStopsAtStart checks that a Read that does not follow ends with
// what the stream held when it started, even while records keep coming.
func TestReadStopsAtStart(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	for i := range 3 {
		l.Append(Record{Function: "hello", Message: fmt.Sprint("old ", i)})
	}
	flush(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []Record
	err := l.Read(ctx, "hello", time.Time{}, "", false, func(r Record) error {
		if len(got) == 0 {
			for i := range 3 {
				l.Append(Record{Function: "hello", Message: fmt.Sprint("new ", i)})
			}
			if err := l.Flush(ctx); err != nil {
				t.Error(err)
			}
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m, want := messages(got), "old 0|old 1|old 2|"; m != want {
		t.Errorf("read %s, want %s", m, want)
	}
}

func TestReadFollowTimesOut(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	l.Append(Record{Function: "hello", Message: "old"})
	flush(t, l)
	for name, since := range map[string]time.Time{
		"nothing yet":   {},
		"since to come": time.Now().Add(time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			function := "hello"
			if since.IsZero() {
				function = "quiet"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := l.Read(ctx, function, since, "", true, func(r Record) error {
				t.Errorf("unexpected record %+v", r)
				return nil
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Read ended with %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestStopFollowing(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	l.Append(Record{Function: "hello", Message: "one"})
	flush(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	err := l.Read(ctx, "hello", time.Time{}, "", true, func(Record) error {
		n++
		l.StopFollowing()
		return nil
	})
	if err != nil || n != 1 {
		t.Errorf("Read = %v after %d records, want nil after 1", err, n)
	}
	// A later Read that would follow does not wait either.
	if err := l.Read(ctx, "hello", time.Time{}, "", true, func(Record) error { return nil }); err != nil {
		t.Errorf("Read after StopFollowing = %v", err)
	}
}

func TestReadCallbackError(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	l.Append(Record{Function: "hello", Message: "one"})
	l.Append(Record{Function: "hello", Message: "two"})
	flush(t, l)
	boom := errors.New("client went away")
	n := 0
	err := l.Read(context.Background(), "hello", time.Time{}, "", false, func(Record) error {
		n++
		return boom
	})
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("Read = %v after %d records, want %v after 1", err, n, boom)
	}
}

func TestReadBadFunction(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	for _, name := range []string{"", "a.b", "a*", ">", "a b"} {
		if err := l.Read(context.Background(), name, time.Time{}, "", false, func(Record) error { return nil }); err == nil {
			t.Errorf("Read(%q): no error", name)
		}
	}
}

func TestSizeBound(t *testing.T) {
	l := openLogs(t, LogsConfig{DefaultMaxBytes: 4096})
	const n = 200
	for i := range n {
		l.Append(Record{Function: "hello", Message: fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 50))})
	}
	flush(t, l)
	got := readAll(t, l, "hello", time.Time{}, "")
	if len(got) == 0 || len(got) >= n {
		t.Fatalf("kept %d records of %d in 4 KB", len(got), n)
	}
	if !strings.HasPrefix(got[len(got)-1].Message, fmt.Sprintf("line %03d", n-1)) {
		t.Errorf("the newest record kept is %q, want line %03d", got[len(got)-1].Message, n-1)
	}
	if strings.HasPrefix(got[0].Message, "line 000") {
		t.Errorf("the oldest record was kept")
	}
	for i := 1; i < len(got); i++ {
		if got[i].Message < got[i-1].Message {
			t.Fatalf("records out of order: %q after %q", got[i].Message, got[i-1].Message)
		}
	}
	if s := l.Stats(); s.Failed != 0 || s.Dropped != 0 {
		t.Errorf("stats = %+v: the stream should drop the oldest, not refuse the newest", s)
	}
}

func TestLongMessageCut(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	// A multi-byte rune straddles the limit.
	long := strings.Repeat("a", MaxMessageBytes-len(truncated)-1) + "é" + strings.Repeat("b", 1000)
	l.Append(Record{Function: "hello", Message: long})
	flush(t, l)
	got := readAll(t, l, "hello", time.Time{}, "")
	if len(got) != 1 {
		t.Fatalf("got %d records, want 1", len(got))
	}
	want := strings.Repeat("a", MaxMessageBytes-len(truncated)-1) + truncated
	if got[0].Message != want {
		t.Errorf("message is %d bytes ending %q, want %d ending %q",
			len(got[0].Message), got[0].Message[len(got[0].Message)-20:], len(want), want[len(want)-20:])
	}
}

func TestAppendStampsTime(t *testing.T) {
	l := openLogs(t, LogsConfig{Now: func() time.Time { return t0 }})
	l.Append(Record{Function: "hello", Message: "no time"})
	flush(t, l)
	if got := readAll(t, l, "hello", time.Time{}, ""); len(got) != 1 || !got[0].Time.Equal(t0) {
		t.Errorf("got %+v, want one record at %v", got, t0)
	}
}

func TestCloseFlushes(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := OpenLogs(ctx, st.JS, LogsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		l.Append(Record{Function: "hello", Message: fmt.Sprint(i)})
	}
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l.Append(Record{Function: "hello", Message: "too late"})
	if s, want := l.Stats(), (LogStats{Queued: 100, Dropped: 1}); s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	if err := l.Flush(ctx); err == nil {
		t.Error("Flush after Close: no error")
	}

	// A second Logs on the same stream finds every record Close stored.
	l2, err := OpenLogs(ctx, st.JS, LogsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(ctx)
	if got := readAll(t, l2, "hello", time.Time{}, ""); len(got) != 100 {
		t.Errorf("read %d records after Close, want 100", len(got))
	}
}

func TestFlushReportsLoss(t *testing.T) {
	l := openLogs(t, LogsConfig{})
	l.Append(Record{Function: "bad name", Message: "dropped"})
	ctx := context.Background()
	if err := l.Flush(ctx); err == nil || !strings.Contains(err.Error(), "1 function log records lost") {
		t.Errorf("Flush = %v, want 1 record lost", err)
	}
	// Only since the previous Flush.
	if err := l.Flush(ctx); err != nil {
		t.Errorf("second Flush = %v", err)
	}
}

// TestReopenUpdatesLimits checks that a function's stream takes the
// limits of the logs that write to it, and that the stream all functions
// shared before is deleted.
func TestReopenUpdatesLimits(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "wisp_logs", Subjects: []string{"wisp.logs.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []LogsConfig{{}, {DefaultMaxAge: time.Hour, DefaultMaxBytes: 1 << 20}} {
		l, err := OpenLogs(ctx, st.JS, cfg)
		if err != nil {
			t.Fatal(err)
		}
		l.Append(Record{Function: "hello", Message: "one"})
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.JS.Stream(ctx, "wisp_logs"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the old shared stream: %v, want it deleted", err)
	}
	s, err := st.JS.Stream(ctx, LogStreamName("hello"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.MaxAge != time.Hour || c.MaxBytes != 1<<20 || c.Discard != jetstream.DiscardOld {
		t.Errorf("stream limits = %v, %d bytes, discard %v; want 1h, 1 MiB, old", c.MaxAge, c.MaxBytes, c.Discard)
	}
	if info.State.Msgs != 2 {
		t.Errorf("the stream holds %d messages, want 2", info.State.Msgs)
	}
}
