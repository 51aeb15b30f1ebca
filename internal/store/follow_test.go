package store

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// scriptedKV is a bucket whose watches replay what a test scripts: each
// WatchAll takes the next script, sends its entries (a nil entry is the
// end of the replay) and ends the watch once they are sent, unless the
// script is the last, which stays open until ctx ends.
type scriptedKV struct {
	jetstream.KeyValue // nil: only Bucket and WatchAll are called
	watches            chan []jetstream.KeyValueEntry
	last               int
}

func (kv *scriptedKV) Bucket() string { return "scripted" }

func (kv *scriptedKV) WatchAll(ctx context.Context, _ ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	script := <-kv.watches
	kv.last--
	w := &scriptedWatch{updates: make(chan jetstream.KeyValueEntry)}
	go func(last bool) {
		for _, e := range script {
			select {
			case w.updates <- e:
			case <-ctx.Done():
			}
		}
		if last {
			<-ctx.Done()
		}
		close(w.updates)
	}(kv.last == 0)
	return w, nil
}

type scriptedWatch struct{ updates chan jetstream.KeyValueEntry }

func (w *scriptedWatch) Updates() <-chan jetstream.KeyValueEntry { return w.updates }
func (w *scriptedWatch) Stop() error                             { return nil }

// entry is a KeyValueEntry with a key.
type entry struct {
	jetstream.KeyValueEntry
	key string
}

func (e entry) Key() string { return e.key }

// TestFollowWatchTellsLossAndCatchUp: a watch that ends is told as lost,
// and the next one's catch-up is told again, in the order they happen.
func TestFollowWatchTellsLossAndCatchUp(t *testing.T) {
	kv := &scriptedKV{watches: make(chan []jetstream.KeyValueEntry, 2), last: 2}
	kv.watches <- []jetstream.KeyValueEntry{entry{key: "a"}, nil, entry{key: "b"}}
	kv.watches <- []jetstream.KeyValueEntry{entry{key: "b"}, nil}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	told := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		FollowWatch(ctx, kv, Watch{
			Apply:    func(e jetstream.KeyValueEntry) { told <- "apply " + e.Key() },
			CaughtUp: func() { told <- "caught up" },
			Lost:     func() { told <- "lost" },
		}, slog.New(slog.DiscardHandler))
	}()
	want := []string{"apply a", "caught up", "apply b", "lost", "apply b", "caught up"}
	for i, w := range want {
		select {
		case got := <-told:
			if got != w {
				t.Fatalf("told #%d %q, want %q (all: %q)", i, got, w, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("told nothing after %q, want %q", want[:i], w)
		}
	}
	cancel()
	<-done
	select {
	case got := <-told:
		t.Errorf("told %q once ctx ended, want nothing (a stop is not a loss)", got)
	default:
	}
}
