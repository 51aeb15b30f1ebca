package wasm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"slices"
)

// Section ids of the WebAssembly binary format.
const (
	sectionData      = 11
	sectionDataCount = 12
)

// mergeData returns the module with the active data segments of its
// memory merged where fewer than maxGap zero bytes separate them, and
// true; or the module as it is, and false, when there is nothing to merge
// or it cannot be sure no byte of the memory changes: a data count
// section (bulk memory instructions name segments by index), a passive
// segment, an offset that is not a constant, or overlapping segments.
//
// Go's linker writes a segment per run of non-zero data (some 37,000 in a
// hello world), and every instantiation evaluates each one: merged, a Go
// module's fresh instance starts about twice as fast.
func mergeData(module []byte, maxGap uint32) ([]byte, bool) {
	out, err := rewriteData(module, maxGap)
	if err != nil {
		return module, false
	}
	return out, true
}

// mergeGap is the largest run of zeros mergeData fills in between two
// segments: past a few hundred bytes, copying zeros costs more than a
// segment does.
const mergeGap = 1024

var errNotMergeable = errors.New("wasm: data segments not mergeable")

// segment is an active data segment of memory 0.
type segment struct {
	offset uint32
	data   []byte
}

func rewriteData(module []byte, maxGap uint32) ([]byte, error) {
	start, end, payload, err := dataSection(module)
	if err != nil {
		return nil, err
	}
	segs, err := readSegments(payload)
	if err != nil {
		return nil, err
	}
	merged := mergeSegments(segs, maxGap)
	if len(merged) == len(segs) {
		return nil, errNotMergeable
	}
	payload = binary.AppendUvarint(nil, uint64(len(merged)))
	for _, s := range merged {
		payload = append(payload, 0, 0x41) // active, memory 0; i32.const
		payload = appendSleb(payload, int64(int32(s.offset)))
		payload = append(payload, 0x0b) // end
		payload = binary.AppendUvarint(payload, uint64(len(s.data)))
		payload = append(payload, s.data...)
	}
	out := make([]byte, 0, len(module)+len(payload)-len(module[start:end]))
	out = append(out, module[:start]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	out = append(out, payload...)
	return append(out, module[end:]...), nil
}

// dataSection finds the data section of a module: where it begins and
// ends in module, and its payload. It refuses a module with a data count
// section.
func dataSection(module []byte) (start, end int, payload []byte, err error) {
	if len(module) < 8 {
		return 0, 0, nil, errNotMergeable
	}
	start = -1
	r := bytes.NewReader(module[8:])
	for r.Len() > 0 {
		at := len(module) - r.Len()
		id, err := r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		size, err := binary.ReadUvarint(r)
		if err != nil || size > uint64(r.Len()) {
			return 0, 0, nil, errNotMergeable
		}
		from := len(module) - r.Len()
		to := from + int(size)
		if _, err := r.Seek(int64(size), io.SeekCurrent); err != nil {
			return 0, 0, nil, err
		}
		switch id {
		case sectionDataCount:
			return 0, 0, nil, errNotMergeable
		case sectionData:
			if start >= 0 {
				return 0, 0, nil, errNotMergeable
			}
			start, end, payload = at, to, module[from:to]
		}
	}
	if start < 0 {
		return 0, 0, nil, errNotMergeable
	}
	return start, end, payload, nil
}

// readSegments reads a data section of active segments of memory 0 at
// constant offsets, in increasing order and not overlapping.
func readSegments(payload []byte) ([]segment, error) {
	r := bytes.NewReader(payload)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(len(payload)) {
		return nil, errNotMergeable
	}
	segs := make([]segment, 0, n)
	for range n {
		flag, err := binary.ReadUvarint(r)
		if err != nil || flag != 0 {
			return nil, errNotMergeable
		}
		if op, err := r.ReadByte(); err != nil || op != 0x41 {
			return nil, errNotMergeable
		}
		off, err := readSleb(r)
		if err != nil || off < -1<<31 || off >= 1<<31 {
			return nil, errNotMergeable
		}
		if op, err := r.ReadByte(); err != nil || op != 0x0b {
			return nil, errNotMergeable
		}
		size, err := binary.ReadUvarint(r)
		if err != nil || size > uint64(r.Len()) {
			return nil, errNotMergeable
		}
		at := len(payload) - r.Len()
		s := segment{offset: uint32(off), data: payload[at : at+int(size)]}
		if _, err := r.Seek(int64(size), io.SeekCurrent); err != nil {
			return nil, err
		}
		segs = append(segs, s)
	}
	if r.Len() != 0 {
		return nil, errNotMergeable
	}
	// Where no two overlap, the order they are written in makes no
	// difference.
	slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.offset, b.offset) })
	var end uint64
	for _, s := range segs {
		if uint64(s.offset) < end {
			return nil, errNotMergeable
		}
		end = uint64(s.offset) + uint64(len(s.data))
	}
	return segs, nil
}

// mergeSegments merges segments fewer than maxGap bytes apart, filling
// the gaps with zeros. The merged segments own their data.
func mergeSegments(segs []segment, maxGap uint32) []segment {
	var out []segment
	for _, s := range segs {
		if len(out) > 0 {
			last := &out[len(out)-1]
			end := last.offset + uint32(len(last.data))
			if gap := s.offset - end; gap < maxGap {
				last.data = append(last.data, make([]byte, gap)...)
				last.data = append(last.data, s.data...)
				continue
			}
		}
		out = append(out, segment{offset: s.offset, data: slices.Clone(s.data)})
	}
	return out
}

// readSleb reads a signed LEB128 number (not Go's zig-zag varint).
func readSleb(r *bytes.Reader) (int64, error) {
	var (
		v     int64
		shift uint
	)
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		if shift >= 64 {
			return 0, errNotMergeable
		}
		v |= int64(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift // sign-extend
			}
			return v, nil
		}
	}
}

// appendSleb appends v in signed LEB128.
func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
