package telemetry

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

// clock is a test clock that moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond, which asks the server or a goroutine something
// that sends no signal, until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counterValue(t *testing.T, m *Metrics, labels string) float64 {
	t.Helper()
	s := series(scrape(t, m), MetricLogDropped, labels)
	if s == nil {
		return 0
	}
	return s.GetCounter().GetValue()
}

// TestAppendWhenFull checks the node's buffer: with it full, Append drops
// a function's line (counted as full) but keeps the platform's, and
// AppendWait waits for room, until it comes, its writer gives up, or
// MaxWait passes.
func TestAppendWhenFull(t *testing.T) {
	m := NewMetrics(nil)
	l := openLogs(t, LogsConfig{MaxWait: 100 * time.Millisecond, Metrics: m})
	if !l.room.tryTake(l.room.shared, false) {
		t.Fatal("could not fill the buffer")
	}
	l.Append(Record{Function: "hello", Stream: "stderr", Message: "no room"})
	l.Append(Record{Function: "hello", Stream: StreamPlatform, Message: "START"})
	gaveUp := make(chan struct{})
	close(gaveUp)
	l.AppendWait(gaveUp, Record{Function: "hello", Stream: "stderr", Message: "writer gone"})
	l.AppendWait(nil, Record{Function: "hello", Stream: "stderr", Message: "waited too long"})
	if s := l.Stats(); s.Dropped != 3 || s.Queued != 1 {
		t.Errorf("stats = %+v, want 3 dropped and the platform's line queued", s)
	}
	if got := counterValue(t, m, "function=hello,reason=full"); got <= 0 {
		t.Errorf("%s{reason=full} = %v, want the dropped bytes", MetricLogDropped, got)
	}

	waited := make(chan struct{})
	go func() {
		defer close(waited)
		l.AppendWait(make(chan struct{}), Record{Function: "hello", Stream: "stderr", Message: "after the wait"})
	}()
	waitFor(t, "AppendWait waits", func() bool {
		l.room.mu.Lock()
		defer l.room.mu.Unlock()
		return l.room.waiting == 1
	})
	select {
	case <-waited:
		t.Fatal("AppendWait did not wait for room")
	default:
	}
	l.room.give(l.room.shared)
	<-waited
	if err := l.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "3 function log records lost") {
		t.Errorf("Flush = %v, want 3 records lost", err)
	}
	if m, want := messages(readAll(t, l, "hello", time.Time{}, "")), "START|after the wait|"; m != want {
		t.Errorf("records %s, want %s", m, want)
	}
	if b := l.Buffered(); b != 0 {
		t.Errorf("%d bytes still held once everything is stored", b)
	}
}

// TestRateDropsAndNotes checks each function's rate: past it records are
// dropped, counted by the metric and, once due, noted in the function's
// log with the bytes dropped; another function's records are untouched.
func TestRateDropsAndNotes(t *testing.T) {
	clk := &clock{t: t0}
	m := NewMetrics(nil)
	l := openLogs(t, LogsConfig{Rate: 64 << 10, Burst: 64 << 10, Metrics: m, Now: clk.now})
	line := strings.Repeat("x", 1000)
	var wantDropped int64
	kept := 0
	for i := range 200 {
		before := l.Stats().OverRate
		rec := Record{Function: "flood", Version: "$LATEST", Stream: "stderr", Message: fmt.Sprintf("%03d %s", i, line)}
		l.Append(rec)
		if l.Stats().OverRate > before {
			wantDropped += recordCost(rec)
		} else {
			kept++
		}
		l.Append(Record{Function: "quiet", Stream: "stdout", Message: fmt.Sprint("quiet ", i)})
		clk.add(time.Millisecond) // 200 ms in all: 12.8 KiB more of the rate
	}
	if kept == 0 || kept >= 200 || kept > 80 {
		t.Fatalf("%d of 200 records of 1 KiB kept at 64 KiB/s with a burst of 64 KiB", kept)
	}
	if got := counterValue(t, m, "function=flood,reason=rate"); got != float64(wantDropped) {
		t.Errorf("%s{flood,rate} = %v, want %d", MetricLogDropped, got, wantDropped)
	}
	// A note is due noteEvery after the first drop: the next record brings it.
	clk.add(noteEvery)
	l.Append(Record{Function: "flood", Stream: "stderr", Message: "under the rate again"})
	flush := func() {
		t.Helper()
		if err := l.Flush(context.Background()); err != nil {
			t.Fatalf("Flush = %v: records dropped for their rate are not lost", err)
		}
	}
	flush()
	got := readAll(t, l, "flood", time.Time{}, "")
	if len(got) != kept+2 {
		t.Fatalf("flood has %d records, want the %d kept, a note and the last", len(got), kept)
	}
	note := got[len(got)-2]
	want := fmt.Sprintf("wisp: %d bytes of log dropped: over the rate of 64 KiB/s", wantDropped)
	if note.Message != want || note.Stream != StreamPlatform || note.Version != "$LATEST" {
		t.Errorf("note %+v, want %q on the platform stream", note, want)
	}
	if got[len(got)-1].Message != "under the rate again" {
		t.Errorf("last record %q", got[len(got)-1].Message)
	}
	if q := readAll(t, l, "quiet", time.Time{}, ""); len(q) != 200 {
		t.Errorf("quiet has %d records of 200", len(q))
	}

	// A function that stops writing is told all the same, by the sender.
	for range 100 {
		l.Append(Record{Function: "flood", Stream: "stderr", Message: line})
	}
	clk.add(noteEvery)
	waitFor(t, "the note of a function that stopped writing", func() bool {
		recs := readAll(t, l, "flood", time.Time{}, "")
		return strings.HasPrefix(recs[len(recs)-1].Message, "wisp: ")
	})
	flush()
}

func TestPerSecond(t *testing.T) {
	for r, want := range map[int64]string{1 << 20: "1 MiB/s", 64 << 10: "64 KiB/s", 3 << 30: "3 GiB/s", 1000: "1000 B/s", 1536 << 10: "1536 KiB/s"} {
		if got := perSecond(r); got != want {
			t.Errorf("perSecond(%d) = %q, want %q", r, got, want)
		}
	}
}

// TestStreamsFollowRegistry checks that each function's stream has its
// function's limits, changes with them, and goes with the function, as do
// its series of the metric; records of a function that does not exist
// make no stream; streams of functions deleted while no node ran are
// deleted.
func TestStreamsFollowRegistry(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.Open(ctx, st.JS, time.Now, log, registry.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := st.JS.CreateStream(ctx, streamConfig("orphan", retention{maxBytes: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	mb, age := int64(2<<20), 2*3600
	if _, err := reg.Create(ctx, registry.Config{Name: "kept", Runtime: ptr("nodejs"), Handler: ptr("index.handler"),
		Logs: &registry.LogsPatch{MaxBytes: &mb, MaxAge: &age}}, stage(t)); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	l, err := OpenLogs(ctx, st.JS, LogsConfig{Registry: reg, Metrics: m, Logger: log, Rate: 4 << 10, Burst: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)

	limits := func(fn string) (jetstream.StreamConfig, error) {
		s, err := st.JS.Stream(ctx, LogStreamName(fn))
		if err != nil {
			return jetstream.StreamConfig{}, err
		}
		return s.CachedInfo().Config, nil
	}
	waitFor(t, "the orphan stream is deleted", func() bool {
		_, err := limits("orphan")
		return errors.Is(err, jetstream.ErrStreamNotFound)
	})
	waitFor(t, "kept's stream has its limits", func() bool {
		c, err := limits("kept")
		return err == nil && c.MaxBytes == 2<<20 && c.MaxAge == 2*time.Hour
	})

	if _, err := reg.Create(ctx, registry.Config{Name: "made", Runtime: ptr("nodejs"), Handler: ptr("index.handler")}, stage(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new function's stream is made with the defaults", func() bool {
		c, err := limits("made")
		return err == nil && c.MaxBytes == DefaultLogMaxBytes && c.MaxAge == DefaultLogMaxAge
	})
	age = 3 * 3600
	if _, err := reg.UpdateConfig(ctx, "made", registry.Config{Logs: &registry.LogsPatch{MaxAge: &age}}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a function's new max_age reaches its stream", func() bool {
		c, err := limits("made")
		return err == nil && c.MaxAge == 3*time.Hour && c.MaxBytes == DefaultLogMaxBytes
	})

	for i := range 20 {
		l.Append(Record{Function: "made", Stream: "stdout", Message: fmt.Sprint(i, strings.Repeat("x", 1000))})
	}
	l.Append(Record{Function: "ghost", Stream: "stdout", Message: "nobody"})
	if err := l.Flush(ctx); err != nil {
		t.Errorf("Flush = %v: a record of no function is not lost, nor one over the rate", err)
	}
	if s := l.Stats(); s.Gone != 1 || s.OverRate == 0 {
		t.Errorf("stats = %+v, want 1 record of no function and some over the rate", s)
	}
	if got := readAll(t, l, "made", time.Time{}, ""); len(got) == 0 {
		t.Error("made has no records")
	}
	if _, err := limits("ghost"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a record of no function made a stream: %v", err)
	}
	if got := readAll(t, l, "ghost", time.Time{}, ""); len(got) != 0 {
		t.Errorf("ghost has records: %+v", got)
	}
	if counterValue(t, m, "function=made,reason=rate") == 0 {
		t.Fatal("no drops counted for made")
	}

	if err := reg.Delete(ctx, "made", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a deleted function's stream is deleted", func() bool {
		_, err := limits("made")
		return errors.Is(err, jetstream.ErrStreamNotFound)
	})
	waitFor(t, "a deleted function's series are deleted", func() bool {
		return series(scrape(t, m), MetricLogDropped, "function=made,reason=rate") == nil
	})
	if got := readAll(t, l, "made", time.Time{}, ""); len(got) != 0 {
		t.Errorf("a deleted function has %d records", len(got))
	}
	if _, err := limits("kept"); err != nil {
		t.Errorf("another function's stream: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// stage is a function's code, staged.
func stage(t *testing.T) *registry.Staged {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("index.js")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "exports.handler = async () => 1;\n") //nolint:errcheck // into a buffer
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := registry.Stage(&buf, t.TempDir(), archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
