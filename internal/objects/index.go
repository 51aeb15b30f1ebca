package objects

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// ObjectSummary is what a listing tells of an object.
type ObjectSummary struct {
	Key      string
	Size     int64
	ETag     string
	Modified time.Time
}

type indexEntry struct {
	ObjectSummary
	rev uint64
}

func lessEntry(a, b indexEntry) bool { return a.Key < b.Key }

// index is a bucket's keys in byte order, kept by following the
// bucket's metadata: JetStream keeps subjects in no order a listing can
// use. A listing first waits until the index has applied everything the
// metadata stream held when the listing began, so that it sees every
// write that returned before it, made on any node.
type index struct {
	mu sync.Mutex
	// tree, applied, live and changed are guarded by mu.
	tree *btree.BTreeG[indexEntry]
	// applied is the highest revision applied.
	applied uint64
	// live: the watch replayed the bucket and has not ended since.
	live bool
	// changed is closed, and replaced, whenever applied or live change.
	changed chan struct{}
}

func newIndex() *index {
	return &index{tree: btree.NewG(32, lessEntry), changed: make(chan struct{})}
}

func (x *index) notifyLocked() {
	close(x.changed)
	x.changed = make(chan struct{})
}

func (x *index) apply(e jetstream.KeyValueEntry, log func(string, ...any)) {
	key, err := tokenKey(e.Key())
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.notifyLocked()
	x.applied = max(x.applied, e.Revision())
	if err != nil {
		log("objects: a record under a key that is not base64", "key", e.Key())
		return
	}
	was, found := x.tree.Get(indexEntry{ObjectSummary: ObjectSummary{Key: key}})
	if found && was.rev >= e.Revision() {
		return // a watch started again replays what was applied
	}
	if e.Operation() != jetstream.KeyValuePut {
		x.tree.Delete(was)
		return
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		log("objects: a record that is not JSON", "key", key, "err", err)
		return
	}
	x.tree.ReplaceOrInsert(indexEntry{ObjectSummary: ObjectSummary{Key: key, Size: rec.Size, ETag: rec.ETag,
		Modified: rec.Modified}, rev: e.Revision()})
}

func (x *index) setLive(live bool) {
	x.mu.Lock()
	x.live = live
	x.notifyLocked()
	x.mu.Unlock()
}

func (x *index) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.tree.Len()
}

// waitFor returns once the index is live and has applied rev.
func (x *index) waitFor(ctx context.Context, rev uint64) error {
	for {
		x.mu.Lock()
		ok, changed := x.live && x.applied >= rev, x.changed
		x.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("objects: waiting for the bucket's listing: %w", ctx.Err())
		case <-changed:
		}
	}
}

// snapshot is the tree as it is: a copy made lazily, so that a listing
// walks it without holding the lock.
func (x *index) snapshot() *btree.BTreeG[indexEntry] {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.tree.Clone()
}

// synced returns the bucket's index once it is current (see index).
func (b *bucket) synced(ctx context.Context) (*index, error) {
	b.mu.Lock()
	if b.idx == nil {
		b.idx = newIndex()
		b.startIndexLocked()
	}
	idx := b.idx
	b.mu.Unlock()
	info, err := b.metaStream.Info(ctx)
	if err != nil {
		return nil, b.s.lost(fmt.Errorf("objects: bucket metadata: %w", err))
	}
	if err := idx.waitFor(ctx, info.State.LastSeq); err != nil {
		return nil, err
	}
	return idx, nil
}

func (b *bucket) startIndexLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.stop = func() { cancel(); <-done }
	idx, log := b.idx, b.s.log
	b.s.follows.Add(1)
	go func() {
		defer b.s.follows.Done()
		defer close(done)
		store.FollowWatch(ctx, b.meta, store.Watch{
			Apply:    func(e jetstream.KeyValueEntry) { idx.apply(e, log.Warn) },
			CaughtUp: func() { idx.setLive(true) },
			Lost:     func() { idx.setLive(false) },
		}, log)
	}()
}

func (b *bucket) stopIndex() {
	b.mu.Lock()
	stop := b.stop
	b.stop = nil
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// List returns up to max objects whose keys start with prefix and sort
// after startAfter, in byte order, and whether more follow. It walks the
// keys it returns, not the bucket.
func (s *Store) List(ctx context.Context, bucketName, prefix, startAfter string, max int) ([]ObjectSummary, bool, error) {
	var out []ObjectSummary
	more := false
	err := s.Walk(ctx, bucketName, prefix, startAfter, func(o ObjectSummary) bool {
		if len(out) >= max {
			more = true
			return false
		}
		out = append(out, o)
		return true
	})
	return out, more, err
}

// Walk calls fn with each object whose key starts with prefix and sorts
// after startAfter, in byte order, until fn returns false: what a
// listing with a delimiter groups as it goes. fn sees the bucket as it
// was when Walk began.
func (s *Store) Walk(ctx context.Context, bucketName, prefix, startAfter string, fn func(ObjectSummary) bool) error {
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return err
	}
	idx, err := b.synced(ctx)
	if err != nil {
		return s.gone(bucketName, b, err)
	}
	from := max(prefix, startAfter)
	idx.snapshot().AscendGreaterOrEqual(indexEntry{ObjectSummary: ObjectSummary{Key: from}}, func(e indexEntry) bool {
		if e.Key == startAfter {
			return true
		}
		if !strings.HasPrefix(e.Key, prefix) {
			return false // keys with the prefix are contiguous
		}
		return fn(e.ObjectSummary)
	})
	return nil
}
