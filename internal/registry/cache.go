package registry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// cache is this node's copy of every record, kept by a watch on the KV
// bucket (so writes on other nodes arrive within milliseconds) and by this
// node's own writes (so a caller that wrote sees its write at once). The
// invoke path reads only the cache.
type cache struct {
	mu      sync.RWMutex
	fns     map[string]Function         // guarded by mu
	vers    map[string]map[int]Version  // guarded by mu; by function, then number
	aliases map[string]map[string]Alias // guarded by mu; by function, then name
	revs    map[string]uint64           // guarded by mu; newest revision seen per key, deletes too
}

func newCache() *cache {
	return &cache{fns: map[string]Function{}, vers: map[string]map[int]Version{},
		aliases: map[string]map[string]Alias{}, revs: map[string]uint64{}}
}

// watch fills the cache and keeps it current until ctx ends, following
// the bucket with store.Follow. It returns once the cache holds everything
// the bucket held when it was called.
func (r *Registry) watch(ctx context.Context) error {
	ready := make(chan struct{})
	go func() {
		defer close(r.watchDone)
		f := &follower{r: r}
		store.Follow(ctx, r.kv, f.apply, ready, r.log)
	}()
	select {
	case <-ready:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("registry: cache did not load within 30s")
	}
}

// follower takes the bucket's entries from store.Follow into the cache
// and tells subscribers of each revision once.
type follower struct {
	r *Registry
	// told is the newest revision subscribers were told of. A watch gives
	// entries in revision order, so an entry at or below it was seen
	// before: a watch started again replays the bucket, and only what
	// changed meanwhile is news.
	told uint64
}

func (f *follower) apply(e jetstream.KeyValueEntry) {
	deleted := e.Operation() != jetstream.KeyValuePut
	f.r.cache.apply(e.Key(), e.Revision(), deleted, e.Value(), f.r.log)
	if e.Revision() <= f.told {
		return
	}
	f.told = e.Revision()
	if c, ok := parseKey(e.Key()); ok {
		c.Deleted, c.Revision = deleted, e.Revision()
		f.r.notify(c)
	}
}

// apply records one write, unless a newer one for the key was seen.
func (c *cache) apply(key string, rev uint64, deleted bool, value []byte, log *slog.Logger) {
	ch, ok := parseKey(key)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev <= c.revs[key] {
		return
	}
	c.revs[key] = rev
	switch ch.Kind {
	case KindFunction:
		if deleted {
			delete(c.fns, ch.Function)
			return
		}
		var f Function
		if err := json.Unmarshal(value, &f); err != nil {
			log.Warn("registry: bad record in cache", "key", key, "err", err)
			return
		}
		f.Revision = rev
		c.fns[ch.Function] = f
	case KindVersion:
		n, err := strconv.Atoi(ch.Name)
		if err != nil {
			return
		}
		if deleted {
			delete(c.vers[ch.Function], n)
			return
		}
		var v Version
		if err := json.Unmarshal(value, &v); err != nil {
			log.Warn("registry: bad record in cache", "key", key, "err", err)
			return
		}
		if c.vers[ch.Function] == nil {
			c.vers[ch.Function] = map[int]Version{}
		}
		c.vers[ch.Function][n] = v
	case KindAlias:
		if deleted {
			delete(c.aliases[ch.Function], ch.Name)
			return
		}
		var a Alias
		if err := json.Unmarshal(value, &a); err != nil {
			log.Warn("registry: bad record in cache", "key", key, "err", err)
			return
		}
		a.Revision = rev
		if c.aliases[ch.Function] == nil {
			c.aliases[ch.Function] = map[string]Alias{}
		}
		c.aliases[ch.Function][ch.Name] = a
	}
}

// forget drops a key this node deleted; the watch brings the delete's
// revision soon after.
func (c *cache) forget(key string) {
	ch, ok := parseKey(key)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ch.Kind {
	case KindFunction:
		delete(c.fns, ch.Function)
	case KindVersion:
		if n, err := strconv.Atoi(ch.Name); err == nil {
			delete(c.vers[ch.Function], n)
		}
	case KindAlias:
		delete(c.aliases[ch.Function], ch.Name)
	}
}

// Target is what an invocation runs: a function's config and code at one
// version.
type Target struct {
	Function
	// Version is "$LATEST" or a version number.
	Version string
	// Key changes whenever what runs changes: instances started for one
	// key must not serve another.
	Key string
	// Revision orders targets of one version: the newer has the higher.
	Revision uint64
}

// Resolve finds what name and qualifier (empty, "$LATEST", a version
// number or an alias) run, from the in-memory cache; an alias with a
// second version picks one by weight with pick, a number in [0, 1).
func (r *Registry) Resolve(name, qualifier string, pick func() float64) (Target, error) {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	c := r.cache
	f, ok := c.fns[name]
	if !ok {
		return Target{}, notFound("function", name)
	}
	if qualifier == "" || qualifier == Latest {
		return latestTarget(f), nil
	}
	n, err := strconv.Atoi(qualifier)
	if err != nil {
		a, ok := c.aliases[name][qualifier]
		if !ok {
			return Target{}, notFound("alias", name+":"+qualifier)
		}
		n = a.Version
		if a.AdditionalVersion != 0 {
			if pick == nil {
				pick = rand.Float64
			}
			if pick() < a.AdditionalWeight {
				n = a.AdditionalVersion
			}
		}
	}
	v, ok := c.vers[name][n]
	if !ok {
		return Target{}, notFound("version", name+":"+qualifier)
	}
	return versionTarget(name, n, v, c.revs[verKey(name, n)]), nil
}

// Provisioned returns what of a function must keep instances warm: its
// $LATEST and its newest version, where their config asks for
// min_instances.
func (r *Registry) Provisioned(name string) []Target {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	var out []Target
	if f, ok := r.cache.fns[name]; ok && f.MinInstances > 0 {
		out = append(out, latestTarget(f))
	}
	newest := 0
	for n := range r.cache.vers[name] {
		newest = max(newest, n)
	}
	if v, ok := r.cache.vers[name][newest]; ok && v.Function.MinInstances > 0 {
		out = append(out, versionTarget(name, newest, v, r.cache.revs[verKey(name, newest)]))
	}
	return out
}

func latestTarget(f Function) Target {
	return Target{Function: f, Version: Latest, Revision: f.Revision,
		Key: f.Name + "@" + Latest + "#" + strconv.FormatUint(f.Revision, 10)}
}

// versionTarget is version n; its key has the record's revision, so a
// function deleted and made again does not run the old one's version n.
func versionTarget(name string, n int, v Version, rev uint64) Target {
	return Target{Function: v.Function, Version: strconv.Itoa(n), Revision: rev,
		Key: name + "@" + strconv.Itoa(n) + "#" + strconv.FormatUint(rev, 10)}
}

// Functions returns every function's $LATEST from the cache, by name.
func (r *Registry) Functions() []Function {
	r.cache.mu.RLock()
	out := make([]Function, 0, len(r.cache.fns))
	for _, f := range r.cache.fns {
		out = append(out, f)
	}
	r.cache.mu.RUnlock()
	slices.SortFunc(out, func(a, b Function) int { return strings.Compare(a.Name, b.Name) })
	return out
}
