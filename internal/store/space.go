package store

import (
	"fmt"
	"io/fs"
	"path/filepath"
)

// Space is the room the store has, measured when it opens. The node
// sizes its streams and buckets from it, so that a small disk gets small
// limits rather than a node that will not start.
type Space struct {
	// Bytes is what the store may fill: the disk's free space at open,
	// plus what the store already holds there, less Reserve. Zero when
	// not known (an external server keeps its own limits).
	Bytes int64
	// Reserve is the free space under which writes are refused.
	Reserve int64
	// Free and Total are the disk's at open.
	Free, Total int64
}

// Reserve defaults: a fraction of the disk, within bounds.
const (
	reserveShare = 50 // 2%
	minReserve   = 16 << 20
	maxReserve   = 1 << 30
)

// measureSpace reads the disk dir is on and what dir holds.
func measureSpace(dir string, reserve int64) (Space, error) {
	free, total, err := diskSpace(dir)
	if err != nil {
		return Space{}, fmt.Errorf("store: the data dir's disk: %w", err)
	}
	if reserve <= 0 {
		reserve = min(max(total/reserveShare, minReserve), maxReserve)
	}
	held := int64(0)
	// What the store holds is its to reuse; unreadable entries count as
	// nothing rather than fail the start.
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck // see above
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				held += info.Size()
			}
		}
		return nil
	})
	return Space{Bytes: max(free+held-reserve, 0), Reserve: reserve, Free: free, Total: total}, nil
}

// Share is Bytes/div, within [lo, hi]; hi when Bytes is not known.
func (s Space) Share(div, lo, hi int64) int64 {
	if s.Bytes <= 0 {
		return hi
	}
	return min(max(s.Bytes/div, lo), hi)
}

// Space is the room the store had when it opened.
func (s *Store) Space() Space { return s.space }
