package pool

import (
	"sync"
	"time"
)

// Budget is the node-wide memory that instances of every pool share. When
// it is spent, the instance idle the longest, in any pool, makes room.
type Budget struct {
	mu      sync.Mutex
	totalMB int                // fixed
	usedMB  int                // guarded by mu
	pools   map[*Pool]struct{} // guarded by mu; pools that may hold memory
	waiting map[*Pool]struct{} // guarded by mu; pools with callers blocked on memory
}

// NewBudget returns a budget of totalMB megabytes.
func NewBudget(totalMB int) *Budget {
	return &Budget{totalMB: totalMB, pools: map[*Pool]struct{}{}, waiting: map[*Pool]struct{}{}}
}

// Used returns the megabytes held by instances now.
func (b *Budget) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.usedMB
}

func (b *Budget) join(p *Pool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pools[p] = struct{}{}
}

func (b *Budget) leave(p *Pool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pools, p)
	delete(b.waiting, p)
}

// tryReserve takes mb if there is room; else it notes that p waits for
// memory, to be told when some frees up.
func (b *Budget) tryReserve(p *Pool, mb int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.usedMB+mb <= b.totalMB {
		b.usedMB += mb
		return true
	}
	b.waiting[p] = struct{}{}
	return false
}

// release gives mb back and lets the pools waiting for memory try again.
// It must not be called with any pool's lock held.
func (b *Budget) release(mb int) {
	b.mu.Lock()
	b.usedMB -= mb
	waiting := make([]*Pool, 0, len(b.waiting))
	for p := range b.waiting {
		waiting = append(waiting, p)
	}
	clear(b.waiting)
	b.mu.Unlock()
	for _, p := range waiting {
		p.dispatch()
	}
}

// evictIdle stops the instance idle the longest across all pools but
// except, to make room. It must not be called with any pool's lock held.
func (b *Budget) evictIdle(except *Pool) {
	b.mu.Lock()
	pools := make([]*Pool, 0, len(b.pools))
	for p := range b.pools {
		if p != except {
			pools = append(pools, p)
		}
	}
	b.mu.Unlock()
	var (
		oldest     *Pool
		oldestUsed time.Time
	)
	for _, p := range pools {
		if used, ok := p.lruIdle(); ok && (oldest == nil || used.Before(oldestUsed)) {
			oldest, oldestUsed = p, used
		}
	}
	if oldest != nil {
		oldest.evictLRU()
	}
}
