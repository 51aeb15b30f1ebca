package registry

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/store"
)

func openRegistry(t *testing.T, st *store.Store) *Registry {
	t.Helper()
	r, err := Open(context.Background(), st.JS, time.Now, slog.New(slog.DiscardHandler), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func stagedCode(t *testing.T) *Staged {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("index.js")
	w.Write([]byte("exports.handler = async () => 1;\n")) //nolint:errcheck // into a buffer
	zw.Close()
	s, err := Stage(&buf, t.TempDir(), archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A subscriber that stops reading does not hold the cache up: another
// node's writes still reach Resolve at once, and what the subscriber
// reads when it reads again ends with the newest change of each record.
func TestSlowSubscriberDoesNotStallTheCache(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	writer, reader := openRegistry(t, st), openRegistry(t, st)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stuck, err := reader.Watch(wctx) // read only at the end
	if err != nil {
		t.Fatal(err)
	}

	rt, handler := "nodejs", "index.handler"
	if _, err := writer.Create(ctx, Config{Name: "f", Runtime: &rt, Handler: &handler}, stagedCode(t)); err != nil {
		t.Fatal(err)
	}
	const updates = 600 // more than any channel's buffer
	var last Function
	for i := range updates {
		d := fmt.Sprintf("update %d", i)
		if last, err = writer.UpdateConfig(ctx, "f", Config{Description: &d}, 0); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := reader.Resolve("f", "", nil)
		if err == nil && got.Function.Revision == last.Revision {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other node resolves revision %d (%v), want %d: its cache waits for a subscriber", got.Function.Revision, err, last.Revision)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The subscriber reads now: fewer changes than writes, the last one
	// the newest revision.
	var seen []Change
	for {
		select {
		case c := <-stuck:
			seen = append(seen, c)
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
	if len(seen) == 0 || len(seen) > updates {
		t.Fatalf("the slow subscriber read %d changes", len(seen))
	}
	if c := seen[len(seen)-1]; c.Function != "f" || c.Revision != last.Revision {
		t.Fatalf("the slow subscriber's last change: %+v, want revision %d", c, last.Revision)
	}
}

// entry is a bucket entry as a watch gives it.
type entry struct {
	key   string
	value []byte
	rev   uint64
	op    jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return recordsBucket }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return time.Time{} }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }

// Subscribers hear of each revision once: a watch started again replays
// the bucket, and only what changed meanwhile reaches them; a revision
// this node wrote to its cache itself still does.
func TestFollowerTellsEachRevisionOnce(t *testing.T) {
	r := &Registry{cache: newCache(), subs: map[*subscriber]struct{}{}, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() Change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no change came")
			return Change{}
		}
	}
	fn := func(name string, rev uint64) entry {
		return entry{key: fnKey(name), value: []byte(`{"name":"` + name + `"}`), rev: rev}
	}
	f := &follower{r: r}

	steps := []struct {
		name  string
		apply func()
		want  Change
	}{
		{"a write", func() { f.apply(fn("a", 5)) }, Change{Kind: KindFunction, Function: "a", Revision: 5}},
		{"a replay, then a write", func() {
			f.apply(fn("a", 5))
			f.apply(fn("b", 6))
		}, Change{Kind: KindFunction, Function: "b", Revision: 6}},
		{"a delete", func() { f.apply(entry{key: fnKey("a"), rev: 7, op: jetstream.KeyValueDelete}) },
			Change{Kind: KindFunction, Function: "a", Revision: 7, Deleted: true}},
		{"this node's write, in its cache before the watch brings it", func() {
			r.cache.apply(fnKey("b"), 8, false, []byte(`{"name":"b","description":"new"}`), r.log)
			f.apply(fn("b", 8))
		}, Change{Kind: KindFunction, Function: "b", Revision: 8}},
	}
	for _, s := range steps {
		s.apply()
		if got := next(); got != s.want {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	if _, err := r.Resolve("a", "", nil); err == nil {
		t.Error("the deleted function still resolves")
	}
	if got, err := r.Resolve("b", "", nil); err != nil || got.Description != "new" || got.Revision != 8 {
		t.Errorf("b resolves to %+v (%v), want revision 8", got.Function, err)
	}
}
