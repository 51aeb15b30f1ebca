package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// watch fills the cache and keeps it current until ctx ends. It returns
// once the cache holds everything the bucket held when it was called.
func (r *Registry) watch(ctx context.Context) error {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("registry: watch: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(r.watchDone)
		caughtUp := false
		for {
			select {
			case <-ctx.Done():
				if !caughtUp {
					close(ready)
				}
				return
			case e, ok := <-w.Updates():
				if !ok {
					if !caughtUp {
						close(ready)
					}
					return
				}
				if e == nil {
					if !caughtUp {
						caughtUp = true
						close(ready)
					}
					continue
				}
				r.cache.apply(e.Key(), e.Revision(), e.Operation() != jetstream.KeyValuePut, e.Value(), r.log)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("registry: cache did not load within 30s")
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
		return Target{Function: f, Version: Latest,
			Key: name + "@" + Latest + "#" + strconv.FormatUint(f.Revision, 10)}, nil
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
	return Target{Function: v.Function, Version: strconv.Itoa(n), Key: name + "@" + strconv.Itoa(n)}, nil
}
