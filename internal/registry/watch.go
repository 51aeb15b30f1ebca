package registry

import (
	"context"
	"strings"
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
// holds it, so Resolve already answers with it. A subscriber must keep
// reading: the cache waits for it.
func (r *Registry) Watch(ctx context.Context) (<-chan Change, error) {
	s := &subscriber{ch: make(chan Change, 256), ctx: ctx}
	r.subMu.Lock()
	r.subs[s] = struct{}{}
	r.subMu.Unlock()
	go func() {
		<-ctx.Done()
		r.subMu.Lock()
		delete(r.subs, s)
		r.subMu.Unlock()
		// The cache's watch sends only under subMu, so nothing sends now.
		close(s.ch)
	}()
	return s.ch, nil
}

type subscriber struct {
	ch  chan Change
	ctx context.Context // the subscriber's own, from its Watch call
}

// notify sends c to every subscriber.
func (r *Registry) notify(c Change) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for s := range r.subs {
		select {
		case s.ch <- c:
		case <-s.ctx.Done():
		}
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
