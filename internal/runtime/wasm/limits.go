package wasm

import (
	"errors"
	"fmt"
)

// The limits of the WebAssembly JavaScript interface (its
// "Implementation-defined limits"): a module within them loads in every
// browser, and one past them is no function anyone meant to deploy.
const (
	maxTypes          = 1_000_000
	maxFunctions      = 1_000_000
	maxImports        = 100_000
	maxExports        = 100_000
	maxGlobals        = 1_000_000
	maxDataSegments   = 100_000
	maxTables         = 100_000
	maxMemories       = 100_000
	maxElemSegments   = 10_000_000
	maxParams         = 1_000
	maxResults        = 1_000
	maxFunctionLocals = 50_000
)

// errUnchecked stops checkLimits in a part of the binary it does not know:
// wazero refuses what it does not know either, and stops decoding there.
var errUnchecked = errors.New("unchecked")

// checkLimits walks a module's binary and refuses a count the bytes after
// it cannot hold (every entry takes at least a byte) or that is past the
// limits above. wazero trusts the counts it reads and allocates for them
// before it reads the entries, so a few bytes that claim a billion imports
// would otherwise make the node run out of memory. It reads only what it
// must to find the counts, and leaves the rest of the checking to wazero.
func checkLimits(module []byte) error {
	r := &reader{b: module[8:]}
	for !r.done() {
		id := r.byte()
		payload := r.bytes(r.u32())
		if r.err != nil {
			return fmt.Errorf("malformed section header: %w", r.err)
		}
		s := &reader{b: payload}
		checkSection(id, s)
		if s.err != nil && !errors.Is(s.err, errUnchecked) {
			return fmt.Errorf("%s section: %w", sectionName(id), s.err)
		}
	}
	return nil
}

func sectionName(id byte) string {
	names := []string{"custom", "type", "import", "function", "table", "memory", "global",
		"export", "start", "element", "code", "data", "data count", "tag"}
	if int(id) < len(names) {
		return names[id]
	}
	return fmt.Sprintf("unknown (%d)", id)
}

func checkSection(id byte, s *reader) {
	switch id {
	case 0:
		if s.name() == "name" {
			checkNames(s)
		}
	case 1:
		for range s.count("types", maxTypes) {
			if s.byte() != 0x60 {
				s.fail(errUnchecked) // not a function type: not in wazero's features
				return
			}
			s.valueTypes(s.count("parameters", maxParams))
			s.valueTypes(s.count("results", maxResults))
		}
	case 2:
		for range s.count("imports", maxImports) {
			s.name()
			s.name()
			switch s.byte() {
			case 0: // function
				s.u32()
			case 1: // table
				s.valueType()
				s.limits()
			case 2: // memory
				s.limits()
			case 3: // global
				s.valueType()
				s.byte()
			default:
				s.fail(errUnchecked)
				return
			}
		}
	case 3:
		s.count("functions", maxFunctions)
	case 4:
		s.count("tables", maxTables)
	case 5:
		s.count("memories", maxMemories)
	case 6:
		s.count("globals", maxGlobals)
	case 7:
		s.count("exports", maxExports)
	case 9:
		for range s.count("element segments", maxElemSegments) {
			checkElement(s)
		}
	case 10:
		for range s.count("function bodies", maxFunctions) {
			body := &reader{b: s.bytes(s.u32())}
			var locals uint64
			for range body.count("local declarations", maxFunctionLocals) {
				locals += uint64(body.u32())
				body.valueType()
				if locals > maxFunctionLocals {
					body.fail(fmt.Errorf("a function has more than %d locals", maxFunctionLocals))
				}
			}
			if body.err != nil {
				s.fail(body.err)
			}
		}
	case 11:
		for range s.count("data segments", maxDataSegments) {
			switch s.u32() {
			case 0:
				s.constExpr()
			case 1:
			case 2:
				s.u32()
				s.constExpr()
			default:
				s.fail(errUnchecked)
				return
			}
			s.bytes(s.u32())
		}
	case 12:
		if n := s.u32(); n > maxDataSegments {
			s.fail(fmt.Errorf("%d data segments, over the limit of %d", n, maxDataSegments))
		}
	case 13:
		s.count("tags", maxTypes)
	}
}

// checkElement walks one element segment.
func checkElement(s *reader) {
	flags := s.u32()
	if flags > 7 {
		s.fail(errUnchecked)
		return
	}
	if flags&2 != 0 && flags&1 == 0 {
		s.u32() // table index
	}
	if flags&1 == 0 {
		s.constExpr() // offset
	}
	if flags&3 != 0 {
		s.byte() // element kind or reference type
	}
	n := s.count("elements", maxElemSegments)
	for range n {
		if flags&4 != 0 {
			s.constExpr()
		} else {
			s.u32()
		}
	}
}

// checkNames walks the name section: its function and local names.
func checkNames(s *reader) {
	for !s.done() {
		id := s.byte()
		sub := &reader{b: s.bytes(s.u32())}
		switch id {
		case 1: // function names
			for range sub.count("function names", maxFunctions) {
				sub.u32()
				sub.name()
			}
		case 2: // local names
			for range sub.count("functions with local names", maxFunctions) {
				sub.u32()
				for range sub.count("local names", maxFunctionLocals) {
					sub.u32()
					sub.name()
				}
			}
		}
		if sub.err != nil {
			s.fail(sub.err)
		}
	}
}

// reader reads a WebAssembly binary. Its first error sticks: after it,
// every read returns zero, so a walk ends at once.
type reader struct {
	b   []byte
	err error
}

var errEOF = errors.New("unexpected end")

func (r *reader) done() bool { return r.err != nil || len(r.b) == 0 }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(errEOF)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(errors.New("a number is longer than 32 bits"))
	return 0
}

// skipLEB skips a LEB128 number, signed or not, of at most 64 bits.
func (r *reader) skipLEB() {
	for range 10 {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail(errors.New("a number is longer than 64 bits"))
}

func (r *reader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail(errEOF)
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) name() string { return string(r.bytes(r.u32())) }

// count reads the length of a vector of what, whose every entry takes a
// byte at least, and holds it to the limit.
func (r *reader) count(what string, limit uint32) uint32 {
	n := r.u32()
	switch {
	case r.err != nil:
		return 0
	case n > limit:
		r.fail(fmt.Errorf("%d %s, over the limit of %d", n, what, limit))
		return 0
	case uint64(n) > uint64(len(r.b)):
		r.fail(fmt.Errorf("%d %s in %d bytes", n, what, len(r.b)))
		return 0
	}
	return n
}

func (r *reader) valueTypes(n uint32) {
	for range n {
		r.valueType()
	}
}

// valueType reads a value type: a byte, or a reference type with a heap
// type after it.
func (r *reader) valueType() {
	if c := r.byte(); c == 0x63 || c == 0x64 {
		r.skipLEB()
	}
}

// limits reads the limits of a table or a memory.
func (r *reader) limits() {
	flags := r.byte()
	if flags > 3 {
		r.fail(errUnchecked) // 64-bit or shared with other flags: not for us to judge
		return
	}
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

// constExpr reads a constant expression, up to its end.
func (r *reader) constExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x42: // i32.const, i64.const
			r.skipLEB()
		case 0x43: // f32.const
			r.bytes(4)
		case 0x44: // f64.const
			r.bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			r.u32()
		case 0xd0: // ref.null
			r.skipLEB()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constants: add, sub, mul
		case 0xfd: // v128.const
			if r.u32() != 12 {
				r.fail(errUnchecked)
				return
			}
			r.bytes(16)
		default:
			r.fail(errUnchecked)
		}
	}
}
