package objects

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkLayout puts and gets objects in the layout this package
// chose and in JetStream's own Object Store, on the same embedded server,
// for the figures in the package comment.
func BenchmarkLayout(b *testing.B) {
	s := openTest(b, Config{})
	ctx := context.Background()
	mustBucket(b, s, "bench")
	obs, err := s.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "bench_obs", Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{4 << 10, 1 << 20} {
		body := pattern(size)
		name := strconv.Itoa(size>>10) + "KiB"
		b.Run("own/put/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				if _, err := s.Put(ctx, "bench", "k"+strconv.Itoa(i%100), bytes.NewReader(body), ObjectMeta{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("own/get/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				rd, _, err := s.Get(ctx, "bench", "k"+strconv.Itoa(i%100), 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rd); err != nil || n != int64(size) {
					b.Fatal(n, err)
				}
				rd.Close()
			}
		})
		b.Run("objectstore/put/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "k" + strconv.Itoa(i%100)}, bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("objectstore/get/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				rd, err := obs.Get(ctx, "k"+strconv.Itoa(i%100))
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rd); err != nil || n != int64(size) {
					b.Fatal(n, err)
				}
				rd.Close()
			}
		})
	}
}
