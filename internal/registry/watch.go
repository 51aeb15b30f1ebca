package registry

import (
	"context"
	"strings"
	"sync"
)

// Kind is what a change is about.
type Kind string

// The kinds of record in the registry.
const (
	KindFunction Kind = "function"
	KindVersion  Kind = "version"
	KindAlias    Kind = "alias"
)

// Change is one write to the registry, seen by every node.
type Change struct {
	Kind     Kind
	Function string
	// Name is the version number or the alias name; empty for a function.
	Name     string
	Deleted  bool
	Revision uint64
}

// Watch sends every change made after it is called, on any node, until ctx
// ends; then the channel closes. A change is sent after this node's cache
// holds it, so Resolve already answers with it. A subscriber that falls
// behind never holds the cache up: the changes it has not read yet are
// kept, one per record (the newest), so what it reads next says what
// changed and it reads the current state from the registry.
func (r *Registry) Watch(ctx context.Context) (<-chan Change, error) {
	s := &subscriber{ch: make(chan Change), ready: make(chan struct{}, 1), byKey: map[string]Change{}}
	r.subMu.Lock()
	r.subs[s] = struct{}{}
	r.subMu.Unlock()
	go func() {
		defer close(s.ch)
		s.pump(ctx)
		r.subMu.Lock()
		delete(r.subs, s)
		r.subMu.Unlock()
	}()
	return s.ch, nil
}

// subscriber is one Watch: the changes it has not read yet, in the order
// they came, and the goroutine that hands them to it.
type subscriber struct {
	ch    chan Change
	ready chan struct{} // a change was queued
	mu    sync.Mutex
	queue []string          // guarded by mu; record keys, oldest first
	byKey map[string]Change // guarded by mu; the newest change of each queued key
}

// add queues c for the subscriber without waiting for it.
func (s *subscriber) add(c Change) {
	key := string(c.Kind) + "/" + c.Function + "/" + c.Name
	s.mu.Lock()
	if _, queued := s.byKey[key]; !queued {
		s.queue = append(s.queue, key)
	}
	s.byKey[key] = c
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// pump hands the queued changes to the subscriber until ctx ends.
func (s *subscriber) pump(ctx context.Context) {
	for {
		s.mu.Lock()
		var (
			c  Change
			ok bool
		)
		if len(s.queue) > 0 {
			key := s.queue[0]
			s.queue = s.queue[1:]
			c, ok = s.byKey[key], true
			delete(s.byKey, key)
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.ready:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case s.ch <- c:
		}
	}
}

// notify queues c for every subscriber.
func (r *Registry) notify(c Change) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for s := range r.subs {
		s.add(c)
	}
}

func parseKey(key string) (Change, bool) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 2 && parts[0] == "fn":
		return Change{Kind: KindFunction, Function: parts[1]}, true
	case len(parts) == 3 && parts[0] == "ver":
		return Change{Kind: KindVersion, Function: parts[1], Name: parts[2]}, true
	case len(parts) == 3 && parts[0] == "alias":
		return Change{Kind: KindAlias, Function: parts[1], Name: parts[2]}, true
	}
	return Change{}, false
}
