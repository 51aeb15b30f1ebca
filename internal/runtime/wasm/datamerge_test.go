package wasm

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// activeSegment encodes an active data segment of memory 0 at offset.
func activeSegment(offset int32, data string) []byte {
	return bytes.Join([][]byte{{0, 0x41}, appendSleb(nil, int64(offset)), {0x0b}, wasmName(data)}, nil)
}

// dataModule writes a module with a memory of pages, an empty _start, the
// extra sections (before the code), and a data section of segments.
func dataModule(pages int, extra [][]byte, segments ...[]byte) []byte {
	m := [][]byte{
		[]byte("\x00asm\x01\x00\x00\x00"),
		wasmSection(1, []byte{1, 0x60, 0, 0}),
		wasmSection(3, []byte{1, 0}),
		wasmSection(5, []byte{1, 0}, uleb(pages)),
		wasmSection(7, []byte{1}, wasmName("_start"), []byte{0, 0}),
	}
	m = append(m, extra...)
	m = append(m,
		wasmSection(10, []byte{1, 2, 0, 0x0b}),
		wasmSection(11, append([][]byte{uleb(len(segments))}, segments...)...),
	)
	return bytes.Join(m, nil)
}

// memoryImage instantiates a module, without running _start, in wazero's
// interpreter and returns its memory.
func memoryImage(t testing.TB, module []byte) []byte {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	mod, err := r.InstantiateModule(ctx, mustCompile(t, r, module), wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiating: %v", err)
	}
	img, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		t.Fatal("reading the memory")
	}
	return bytes.Clone(img)
}

func mustCompile(t testing.TB, r wazero.Runtime, module []byte) wazero.CompiledModule {
	t.Helper()
	c, err := r.CompileModule(context.Background(), module)
	if err != nil {
		t.Fatalf("compiling: %v", err)
	}
	return c
}

// segmentCount counts a module's data segments.
func segmentCount(t testing.TB, module []byte) int {
	t.Helper()
	_, _, payload, err := dataSection(module)
	if err != nil {
		t.Fatalf("dataSection: %v", err)
	}
	segs, err := readSegments(payload)
	if err != nil {
		t.Fatalf("readSegments: %v", err)
	}
	return len(segs)
}

func TestMergeData(t *testing.T) {
	dataCount := wasmSection(12, uleb(2))
	tests := []struct {
		name     string
		module   []byte
		want     bool // merged
		wantSegs int
	}{
		{"near ones merge", dataModule(2, nil,
			activeSegment(0, "ab"), activeSegment(10, "cd"), activeSegment(5000, "ef")), true, 2},
		{"out of order", dataModule(2, nil,
			activeSegment(5000, "ef"), activeSegment(10, "cd"), activeSegment(0, "ab"), activeSegment(1033, "gh")), true, 2},
		{"multi-byte offsets", dataModule(2, nil,
			activeSegment(100000, "xyz"), activeSegment(100500, "uvw")), true, 1},
		{"adjacent", dataModule(1, nil,
			activeSegment(0, "ab"), activeSegment(2, "cd")), true, 1},
		{"far apart", dataModule(2, nil,
			activeSegment(0, "ab"), activeSegment(2000, "cd")), false, 0},
		{"one segment", dataModule(1, nil, activeSegment(8, "ab")), false, 0},
		{"overlapping", dataModule(1, nil,
			activeSegment(0, "abcd"), activeSegment(2, "xy")), false, 0},
		{"passive", dataModule(1, nil,
			activeSegment(0, "ab"), append([]byte{1}, wasmName("cd")...)), false, 0},
		{"explicit memory index", dataModule(1, nil,
			activeSegment(0, "ab"), append([]byte{2, 0, 0x41, 4, 0x0b}, wasmName("cd")...)), false, 0},
		{"offset from a global", dataModule(1, nil,
			activeSegment(0, "ab"), append([]byte{0, 0x23, 0, 0x0b}, wasmName("cd")...)), false, 0},
		{"data count section", dataModule(1, [][]byte{dataCount},
			activeSegment(0, "ab"), activeSegment(4, "cd")), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := mergeData(tt.module, mergeGap)
			if ok != tt.want {
				t.Fatalf("merged = %v, want %v", ok, tt.want)
			}
			if !ok {
				if !bytes.Equal(got, tt.module) {
					t.Errorf("not merged, but the module changed")
				}
				return
			}
			if n := segmentCount(t, got); n != tt.wantSegs {
				t.Errorf("%d segments, want %d", n, tt.wantSegs)
			}
			if !bytes.Equal(memoryImage(t, got), memoryImage(t, tt.module)) {
				t.Errorf("the memory differs once merged")
			}
		})
	}
}

func TestMergeDataGo(t *testing.T) {
	module, err := os.ReadFile(filepath.Join(exampleDir, "main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	merged, ok := mergeData(module, mergeGap)
	if !ok {
		t.Fatal("the Go example was not merged")
	}
	before, after := segmentCount(t, module), segmentCount(t, merged)
	t.Logf("data segments: %d, merged %d; %d bytes, merged %d", before, after, len(module), len(merged))
	if after*10 > before {
		t.Errorf("%d segments merged into %d, want far fewer", before, after)
	}
	if !bytes.Equal(memoryImage(t, merged), memoryImage(t, module)) {
		t.Errorf("the memory differs once merged")
	}
}

func FuzzMergeData(f *testing.F) {
	f.Add(dataModule(2, nil, activeSegment(5000, "ef"), activeSegment(10, "cd"), activeSegment(0, "ab")))
	f.Add(dataModule(1, nil, activeSegment(0, "abcd"), activeSegment(2, "xy")))
	f.Add(dataModule(1, nil, activeSegment(-1, "a"), activeSegment(0, "b")))
	f.Add(tinyModule("_start", 1, ""))
	f.Fuzz(func(t *testing.T, module []byte) {
		merged, ok := mergeData(module, mergeGap)
		if !ok {
			if !bytes.Equal(merged, module) {
				t.Fatal("not merged, but the module changed")
			}
			return
		}
		// The same bytes land at the same places, and zeros elsewhere.
		_, _, p1, err := dataSection(module)
		if err != nil {
			t.Fatal(err)
		}
		_, _, p2, err := dataSection(merged)
		if err != nil {
			t.Fatalf("the merged module: %v", err)
		}
		s1, err1 := readSegments(p1)
		s2, err2 := readSegments(p2)
		if err1 != nil || err2 != nil {
			t.Fatalf("segments: %v, merged %v", err1, err2)
		}
		if got, want := image(s2), image(s1); !maps.Equal(got, want) {
			t.Fatalf("the memory differs once merged")
		}
	})
}

// image is the non-zero bytes segments write, by address.
func image(segs []segment) map[uint64]byte {
	img := make(map[uint64]byte)
	for _, s := range segs {
		for i, b := range s.data {
			if b != 0 {
				img[uint64(s.offset)+uint64(i)] = b
			}
		}
	}
	return img
}
