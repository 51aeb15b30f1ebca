package registry

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

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
