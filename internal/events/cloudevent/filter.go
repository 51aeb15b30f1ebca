package cloudevent

import (
	"maps"
	"slices"
	"strings"
)

// Filter limits.
const (
	maxFilterEntries  = 10
	maxFilterValueLen = 256
)

// Filter selects events by their context attributes, as Attr names and
// renders them. An event matches when every Exact attribute equals its
// value and every Prefix attribute starts with its value; an attribute the
// event lacks never matches. The empty filter matches every event.
type Filter struct {
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	for name, want := range f.Exact {
		if got, ok := e.Attr(name); !ok || got != want {
			return false
		}
	}
	for name, prefix := range f.Prefix {
		if got, ok := e.Attr(name); !ok || !strings.HasPrefix(got, prefix) {
			return false
		}
	}
	return true
}

// Validate checks f: attribute names of 1 to 20 lowercase letters or
// digits, other than "data"; at most 10 entries in Exact and Prefix
// together; values of 1 to 256 bytes. Its errors wrap ErrInvalid.
func (f Filter) Validate() error {
	if n := len(f.Exact) + len(f.Prefix); n > maxFilterEntries {
		return invalidf("filter: %d entries; at most %d", n, maxFilterEntries)
	}
	for _, part := range []struct {
		kind    string
		entries map[string]string
	}{{"exact", f.Exact}, {"prefix", f.Prefix}} {
		for _, name := range slices.Sorted(maps.Keys(part.entries)) {
			value := part.entries[name]
			switch {
			case name == "data":
				return invalidf("filter: %s: data cannot be filtered, only context attributes", part.kind)
			case !validName(name):
				return invalidf("filter: %s: attribute name %q is not 1 to %d lowercase letters or digits", part.kind, name, maxNameLen)
			case value == "":
				return invalidf("filter: %s: the value for %s is empty", part.kind, name)
			case len(value) > maxFilterValueLen:
				return invalidf("filter: %s: the value for %s is %d bytes; at most %d", part.kind, name, len(value), maxFilterValueLen)
			}
		}
	}
	return nil
}
