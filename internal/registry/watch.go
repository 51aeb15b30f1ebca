package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
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
// ends; then the channel closes.
func (r *Registry) Watch(ctx context.Context) (<-chan Change, error) {
	w, err := r.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("registry: watch: %w", err)
	}
	out := make(chan Change, 64)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				c, ok := parseKey(e.Key())
				if !ok {
					continue
				}
				c.Deleted = e.Operation() != jetstream.KeyValuePut
				c.Revision = e.Revision()
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
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
