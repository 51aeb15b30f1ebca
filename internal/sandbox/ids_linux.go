package sandbox

import (
	"fmt"
	"sync"
)

// idRange hands out the host ids sandboxes run as, one of its own to
// each, going round the range. An id is reused only once no live sandbox
// runs as it.
type idRange struct {
	base, count int

	mu   sync.Mutex
	next int         // guarded by mu: the offset in the range tried first
	live map[int]int // guarded by mu: id → live sandboxes running as it
}

func newIDRange(base, count int) *idRange {
	return &idRange{base: base, count: count, live: map[int]int{}}
}

// acquire returns the uid and gid a sandbox runs as: those asked for, and
// for each left zero, an id no live sandbox runs as. They count as live
// until release.
func (r *idRange) acquire(uid, gid int) (int, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if uid <= 0 || gid <= 0 {
		id, err := r.freeLocked()
		if err != nil {
			return 0, 0, err
		}
		if uid <= 0 {
			uid = id
		}
		if gid <= 0 {
			gid = id
		}
	}
	r.live[uid]++
	if gid != uid {
		r.live[gid]++
	}
	return uid, gid, nil
}

// freeLocked returns the next id of the range no live sandbox runs as.
func (r *idRange) freeLocked() (int, error) {
	for i := range r.count {
		off := (r.next + i) % r.count
		if id := r.base + off; r.live[id] == 0 {
			r.next = (off + 1) % r.count
			return id, nil
		}
	}
	return 0, fmt.Errorf("sandbox: all %d ids from %d are in use", r.count, r.base)
}

// release counts a sandbox that ran as uid and gid, and has no process
// left, as gone.
func (r *idRange) release(uid, gid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(uid)
	if gid != uid {
		r.dropLocked(gid)
	}
}

func (r *idRange) dropLocked(id int) {
	if r.live[id] <= 1 {
		delete(r.live, id)
		return
	}
	r.live[id]--
}
