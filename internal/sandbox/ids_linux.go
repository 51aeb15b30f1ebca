package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// maxID is the top of the ids a range may hold: 2^32-1 is the kernel's
// "no id".
const maxID = 1<<32 - 2

// claimIDs takes, for a manager, the first range of count ids at base +
// k·count (k = 0, 1, …) that no other manager on the host holds, and
// holds it until the returned file is closed, which the kernel does if
// the process dies. The hold is a write lock on the bytes of the range in
// lockFile: an open file description lock (F_OFD_SETLK), which, as
// flock's, belongs to the open file, so two managers of one process get
// two ranges, and which, unlike flock's, is on a byte range, so ranges
// of other sizes or bases conflict where they overlap. The lock file and
// its dir are made root's alone, so no other user can hold a range.
func claimIDs(lockFile string, base, count int) (*idRange, *os.File, error) {
	if err := os.MkdirAll(filepath.Dir(lockFile), 0o700); err != nil {
		return nil, nil, fmt.Errorf("sandbox: id lock: %w", err)
	}
	f, err := os.OpenFile(lockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: id lock: %w", err)
	}
	for first := int64(base); first+int64(count)-1 <= maxID; first += int64(count) {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: first, Len: int64(count)}
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return newIDRange(int(first), count), f, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return nil, nil, errors.Join(fmt.Errorf("sandbox: id lock %s: %w", lockFile, err), f.Close())
		}
	}
	return nil, nil, errors.Join(fmt.Errorf("sandbox: every range of %d ids from %d up is held by another node on this host (%s)",
		count, base, lockFile), f.Close())
}

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
