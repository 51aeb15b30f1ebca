package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Follow keeps a copy of a bucket: it calls apply with every entry the
// bucket holds and every change after, until ctx ends, and watches again
// if NATS ends the watch. apply is called from one goroutine; one watch
// gives entries in revision order, and a watch started again replays the
// newest entry of each key, so apply may see an entry twice. ready is closed
// once the entries held at the start are applied, or when ctx ends first.
func Follow(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry), ready chan<- struct{}, log *slog.Logger) {
	var once sync.Once
	caughtUp := func() { once.Do(func() { close(ready) }) }
	defer caughtUp()
	FollowWatch(ctx, kv, Watch{Apply: apply, CaughtUp: caughtUp}, log)
}

// Watch is what FollowWatch tells of a bucket.
type Watch struct {
	// Apply gets every entry, as Follow's apply.
	Apply func(jetstream.KeyValueEntry)
	// CaughtUp, if set, is called each time a watch has replayed what
	// the bucket held: the first time, and after every watch started
	// again.
	CaughtUp func()
	// Lost, if set, is called when a watch ends before ctx does, before
	// the bucket is watched again: until the next CaughtUp, what Apply
	// built may miss changes.
	Lost func()
}

// FollowWatch is Follow for a follower that must know when its copy may
// be behind (a cache that must not serve what may have been deleted).
func FollowWatch(ctx context.Context, kv jetstream.KeyValue, w Watch, log *slog.Logger) {
	for ctx.Err() == nil {
		kw, err := kv.WatchAll(ctx)
		if err != nil {
			log.Warn("store: watching a bucket; trying again", "bucket", kv.Bucket(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for entry := range kw.Updates() {
			if entry == nil {
				if w.CaughtUp != nil {
					w.CaughtUp()
				}
				continue
			}
			w.Apply(entry)
		}
		kw.Stop() //nolint:errcheck // it ended
		if ctx.Err() == nil && w.Lost != nil {
			w.Lost()
		}
	}
}

// UpdateJSON changes the JSON value of a key under optimistic concurrency.
// change gets the value (the zero T, and found false, when there is none)
// and says whether to write it; a write that raced another is tried again
// on the value that won. It returns the value written, or left.
func UpdateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, change func(v *T, found bool) (bool, error)) (T, error) {
	for range 10 {
		var v T
		var rev uint64
		entry, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return v, err
		default:
			rev = entry.Revision()
			if err := json.Unmarshal(entry.Value(), &v); err != nil {
				return v, fmt.Errorf("store: %s of bucket %s: %w", key, kv.Bucket(), err)
			}
		}
		write, err := change(&v, rev != 0)
		if err != nil || !write {
			return v, err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return v, err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if !IsConflict(err) {
			return v, err
		}
	}
	var zero T
	return zero, fmt.Errorf("store: %s of bucket %s kept changing", key, kv.Bucket())
}

// IsConflict says whether a KV write lost a race: the key was made, or
// changed, since it was read.
func IsConflict(err error) bool {
	return err != nil && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		strings.Contains(err.Error(), "wrong last sequence"))
}
