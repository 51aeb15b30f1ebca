package objects

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// genReader gives n bytes of a pattern without holding them.
type genReader struct{ left, at int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.left))
	for i := range n {
		p[i] = byte(g.at + int64(i))
	}
	g.left -= int64(n)
	g.at += int64(n)
	return n, nil
}

// heapPeak samples the Go heap in use (the embedded server's included)
// while run runs, and returns its peak over the heap before. Each sample
// follows a GC, so it is what is held, not the garbage between two GCs:
// a get makes a chunk of garbage per chunk (the client library's copy
// of each message), which GOGC lets pile up to twice what is held
// (93-135 MiB seen here without the GCs).
func heapPeak(t *testing.T, run func()) uint64 {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	run()
	close(stop)
	wg.Wait()
	return peak.Load() - min(peak.Load(), base)
}

func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of MiB")
	}
	size := int64(memTestSize)
	// 64 MiB is the node's bound (issue: RSS grows under 64 MB while a
	// large object moves); the race detector's instrumentation holds more,
	// so it gets half as much again rather than a bound it nearly touches.
	bound := uint64(64 << 20)
	if raceEnabled {
		bound = 96 << 20
	}
	s := openTest(t, Config{})
	ctx := context.Background()
	mustBucket(t, s, "b")
	grew := heapPeak(t, func() {
		info, err := s.Put(ctx, "b", "big", &genReader{left: size}, ObjectMeta{})
		if err != nil || info.Size != size {
			t.Fatalf("put: %+v, %v", info, err)
		}
	})
	t.Logf("put of %d MiB: heap grew %d MiB at most", size>>20, grew>>20)
	if grew > bound {
		t.Errorf("put of %d MiB grew the heap by %d MiB, more than %d", size>>20, grew>>20, bound>>20)
	}
	grew = heapPeak(t, func() {
		rd, _, err := s.Get(ctx, "b", "big", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		want, buf := &genReader{left: size}, make([]byte, 64<<10)
		wbuf := make([]byte, len(buf))
		for {
			n, err := io.ReadFull(rd, buf)
			if n > 0 {
				want.Read(wbuf[:n]) //nolint:errcheck // a generator
				for i := range n {
					if buf[i] != wbuf[i] {
						t.Fatalf("byte %d differs", want.at-int64(n)+int64(i))
					}
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if want.left != 0 {
			t.Fatalf("read %d bytes short", want.left)
		}
	})
	t.Logf("get of %d MiB: heap grew %d MiB at most", size>>20, grew>>20)
	if grew > bound {
		t.Errorf("get of %d MiB grew the heap by %d MiB, more than %d", size>>20, grew>>20, bound>>20)
	}
}
