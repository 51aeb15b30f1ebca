package telemetry

import (
	"fmt"
	"sync"
	"time"
)

// budget bounds the bytes of records the logs hold: queued, and sent and
// not yet stored. Writers that can wait wait for room; the platform's own
// lines may use a share kept for them.
type budget struct {
	max    int64 // the platform's lines may fill it to max
	shared int64 // other records, to shared

	mu      sync.Mutex
	used    int64         // guarded by mu
	waiting int           // guarded by mu: writers in take
	freed   chan struct{} // guarded by mu: closed, and made anew, when bytes come back while writers wait
}

func newBudget(max int64) *budget {
	return &budget{max: max, shared: max - max/16, freed: make(chan struct{})}
}

// tryTake takes n bytes if they fit; platform lines fit in the whole.
func (b *budget) tryTake(n int64, platform bool) bool {
	limit := b.shared
	if platform {
		limit = b.max
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > limit {
		return false
	}
	b.used += n
	return true
}

// take takes n bytes, waiting while they do not fit, until done is closed
// or timeout fires; it reports whether it took them.
func (b *budget) take(n int64, done <-chan struct{}, timeout <-chan time.Time) bool {
	b.mu.Lock()
	b.waiting++
	defer func() {
		b.waiting--
		b.mu.Unlock()
	}()
	for b.used+n > b.shared {
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-done:
			b.mu.Lock()
			return false
		case <-timeout:
			b.mu.Lock()
			return false
		}
		b.mu.Lock()
	}
	b.used += n
	return true
}

// give gives n bytes back.
func (b *budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.waiting > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

func (b *budget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// noteEvery is how often at most a function's log says how much of it was
// dropped: a note comes noteEvery after the first drop it counts.
const noteEvery = 2 * time.Second

// rates bounds each function's log bytes per second with a token bucket,
// and keeps the count of its records dropped since its last note.
type rates struct {
	rate, burst float64 // bytes per second, bytes

	mu  sync.Mutex
	fns map[string]*bucket // guarded by mu
}

type bucket struct {
	tokens  float64
	at      time.Time // when tokens was right
	version string    // of the last record dropped
	// dropped is the bytes dropped since the last note, by reason (rate,
	// full); since is when the first of them was.
	dropped map[string]int64
	since   time.Time
}

// dropNote says that bytes of a function's log were dropped for reason.
type dropNote struct {
	function, version, reason string
	bytes                     int64
}

func (n dropNote) message(rate int64) string {
	why := "the node's log buffer was full (the logs were written faster than they could be stored)"
	switch n.reason {
	case DropRate:
		why = "over the rate of " + perSecond(rate)
	case DropDisk:
		why = "the node's disk was full"
	}
	return fmt.Sprintf("wisp: %d bytes of log dropped: %s", n.bytes, why)
}

// perSecond writes a rate of bytes per second as people do: 1 MiB/s.
func perSecond(r int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if r >= u.size && r%u.size == 0 {
			return fmt.Sprintf("%d %s/s", r/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d B/s", r)
}

func newRates(rate, burst int64) *rates {
	return &rates{rate: float64(rate), burst: float64(burst), fns: map[string]*bucket{}}
}

// take spends cost of function's rate and reports whether it had that
// much, with the notes of dropped records now due.
func (r *rates) take(function, version string, cost int64, now time.Time) (bool, []dropNote) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketLocked(function, now)
	r.refillLocked(b, now)
	ok := b.tokens >= float64(cost)
	if ok {
		b.tokens -= float64(cost)
	}
	return ok, r.dueLocked(function, b, now)
}

// bucketLocked is function's bucket, full if it is new.
func (r *rates) bucketLocked(function string, now time.Time) *bucket {
	b := r.fns[function]
	if b == nil {
		b = &bucket{tokens: r.burst, at: now}
		r.fns[function] = b
	}
	return b
}

func (r *rates) refillLocked(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(r.burst, b.tokens+d.Seconds()*r.rate)
		b.at = now
	}
}

// dropped counts bytes of function's log dropped for reason.
func (r *rates) dropped(function, version, reason string, bytes int64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketLocked(function, now)
	if b.dropped == nil {
		b.dropped = map[string]int64{}
	}
	if len(b.dropped) == 0 {
		b.since = now
	}
	b.dropped[reason] += bytes
	b.version = version
}

// dueLocked returns b's notes if they are due, and forgets their counts.
func (r *rates) dueLocked(function string, b *bucket, now time.Time) []dropNote {
	if len(b.dropped) == 0 || now.Sub(b.since) < noteEvery {
		return nil
	}
	var notes []dropNote
	for _, reason := range []string{DropRate, DropFull, DropDisk} {
		if n := b.dropped[reason]; n > 0 {
			notes = append(notes, dropNote{function: function, version: b.version, reason: reason, bytes: n})
		}
	}
	clear(b.dropped)
	return notes
}

// due returns the notes due of every function, and forgets the buckets of
// functions that have been quiet long enough to have their burst back.
func (r *rates) due(now time.Time) []dropNote {
	r.mu.Lock()
	defer r.mu.Unlock()
	var notes []dropNote
	for fn, b := range r.fns {
		notes = append(notes, r.dueLocked(fn, b, now)...)
		r.refillLocked(b, now)
		if len(b.dropped) == 0 && b.tokens >= r.burst {
			delete(r.fns, fn)
		}
	}
	return notes
}

// forget drops a function's bucket, unnoted drops included.
func (r *rates) forget(function string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.fns, function)
}
