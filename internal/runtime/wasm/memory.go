package wasm

import "github.com/tetratelabs/wazero/experimental"

const (
	pageSize = 64 << 10
	// maxMemory is all a 32-bit linear memory can address.
	maxMemory = 65536 * pageSize
)

// memoryLimit is the linear memory a function of memMB may use: its
// memory, as Lambda gives a function (MB × 16 pages), at most 4 GiB.
func memoryLimit(memMB int) uint64 {
	if memMB <= 0 {
		memMB = 128
	}
	return min(uint64(memMB)<<20, maxMemory)
}

// mb rounds bytes up to MB.
func mb(bytes uint64) int { return int((bytes + 1<<20 - 1) >> 20) }

// allocator backs the memories of one instantiation, holding them to its
// limit and noting how far they got. A grow past the limit fails (the
// guest's memory.grow returns -1) and is remembered, so a guest that then
// fails is known to have run out of memory.
//
// wazero calls it from the goroutine running the guest only; read its
// fields once the instantiation (in reuse mode, the call) has returned.
// In reuse mode one allocator serves a module instance's whole life.
type allocator struct {
	limit   uint64
	reserve uint64 // room to make at the first allocation, if under the limit
	peak    uint64 // the largest size a memory reached
	refused bool   // a memory was refused a grow
}

func (a *allocator) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	return &linearMemory{a: a, max: maxBytes, capacity: max(capacity, a.reserve)}
}

// linearMemory is one memory an allocator backs. Like wazero's own, it
// grows by reallocating, and wazero zeroes nothing: new bytes come zeroed
// from make, and bytes between the length and the capacity were never
// visible to the guest.
type linearMemory struct {
	a        *allocator
	buf      []byte
	max      uint64 // the module's own maximum, or 4 GiB
	capacity uint64 // what to reserve at the first allocation
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	limit := min(m.a.limit, m.max)
	switch {
	case size > limit && m.buf != nil:
		m.a.refused = true
		return nil
	case size <= uint64(cap(m.buf)):
		m.buf = m.buf[:size]
	default:
		// The instance's Start checked its first size is under the
		// limit; grows double the room, as append would, up to the
		// limit, so a guest growing page by page does not copy its
		// memory at every page.
		room := max(size, min(m.capacity, limit), min(2*uint64(cap(m.buf)), limit))
		buf := make([]byte, size, room)
		copy(buf, m.buf)
		m.buf = buf
	}
	m.a.peak = max(m.a.peak, size)
	return m.buf
}

func (m *linearMemory) Free() { m.buf = nil }
