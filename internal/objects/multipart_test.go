package objects

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"
)

func mustUpload(t *testing.T, s *Store, bucket, key string) string {
	t.Helper()
	id, err := s.CreateUpload(context.Background(), bucket, key, ObjectMeta{ContentType: "text/x"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustPart(t *testing.T, s *Store, bucket, key, id string, n int, body []byte) PartInfo {
	t.Helper()
	p, err := s.PutPart(context.Background(), bucket, key, id, n, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// multipartETag is S3's: the MD5 of the parts' binary MD5s, and their count.
func multipartETag(parts ...[]byte) string {
	var sums []byte
	for _, p := range parts {
		s := md5.Sum(p)
		sums = append(sums, s[:]...)
	}
	s := md5.Sum(sums)
	return fmt.Sprintf("%s-%d", hex.EncodeToString(s[:]), len(parts))
}

func chunksLeft(t *testing.T, s *Store, bucket string) uint64 {
	t.Helper()
	info, err := s.mustOpen(t, bucket).data.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

const testChunk = 16 << 10

func TestMultipartRoundTrip(t *testing.T) {
	s := openTest(t, Config{ChunkSize: testChunk, MinPartSize: 2 * testChunk})
	ctx := context.Background()
	mustBucket(t, s, "b")
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader(pattern(3*testChunk)), ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	id := mustUpload(t, s, "b", "k")
	// Sizes off the chunk bounds, so parts end inside chunks.
	bodies := [][]byte{pattern(2*testChunk + 100), bytes.Repeat([]byte("q"), 3*testChunk-7), []byte("tail")}
	var done []CompletedPart
	for i, body := range bodies {
		p := mustPart(t, s, "b", "k", id, i+1, body)
		sum := md5.Sum(body)
		if p.ETag != hex.EncodeToString(sum[:]) || p.Size != int64(len(body)) {
			t.Fatalf("part %d: %+v", i+1, p)
		}
		done = append(done, CompletedPart{Number: p.Number, ETag: `"` + p.ETag + `"`})
	}
	info, err := s.Complete(ctx, "b", "k", id, done)
	if err != nil {
		t.Fatal(err)
	}
	whole := slices.Concat(bodies...)
	if want := multipartETag(bodies...); info.ETag != want || info.Size != int64(len(whole)) {
		t.Fatalf("complete: %+v, want etag %s size %d", info, want, len(whole))
	}
	if info.Meta.ContentType != "text/x" {
		t.Fatalf("meta %+v, not the upload's", info.Meta)
	}
	size := int64(len(whole))
	p1, p2 := int64(len(bodies[0])), int64(len(bodies[0])+len(bodies[1]))
	for _, tc := range []struct {
		name   string
		off, n int64
	}{
		{"whole", 0, -1},
		{"across the first bound", p1 - 10, 20},
		{"a whole part on its bounds", p1, p2 - p1},
		{"from inside the first to the last", 5, size - 6},
		{"last part alone", p2, -1},
		{"last byte", size - 1, 1},
		{"at the end", size, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := get(t, s, "b", "k", tc.off, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			end := size
			if tc.n >= 0 {
				end = tc.off + tc.n
			}
			if !bytes.Equal(got, whole[tc.off:end]) {
				t.Fatalf("got %d bytes, want whole[%d:%d]", len(got), tc.off, end)
			}
		})
	}
	// The old object's chunks are gone; the parts' are the object's.
	if got, want := chunksLeft(t, s, "b"), uint64(3+3+1); got != want {
		t.Fatalf("%d chunks stored, want the parts' %d", got, want)
	}
	// A retried Complete gets the same object; the upload is gone.
	again, err := s.Complete(ctx, "b", "k", id, done)
	if err != nil || again.ETag != info.ETag || again.Size != info.Size {
		t.Fatalf("retried complete: %+v, %v", again, err)
	}
	if _, err := s.PutPart(ctx, "b", "k", id, 1, bytes.NewReader([]byte("x"))); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("part after complete: %v", err)
	}
	if list, _, err := s.List(ctx, "b", "", "", 10); err != nil || len(list) != 1 || list[0].ETag != info.ETag {
		t.Fatalf("listing %+v, %v", list, err)
	}
	// A plain Put over the multipart object drops every part's chunks.
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader([]byte("plain")), ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	if got := chunksLeft(t, s, "b"); got != 1 {
		t.Fatalf("%d chunks after a put over the multipart object, want 1", got)
	}
}

func TestMultipartPartReplaced(t *testing.T) {
	s := openTest(t, Config{ChunkSize: testChunk, MinPartSize: 1})
	ctx := context.Background()
	mustBucket(t, s, "b")
	id := mustUpload(t, s, "b", "k")
	mustPart(t, s, "b", "k", id, 1, pattern(3*testChunk))
	p := mustPart(t, s, "b", "k", id, 1, []byte("second"))
	if got := chunksLeft(t, s, "b"); got != 1 {
		t.Fatalf("%d chunks after a part was replaced, want 1", got)
	}
	mustPart(t, s, "b", "k", id, 2, []byte("unlisted"))
	info, err := s.Complete(ctx, "b", "k", id, []CompletedPart{{Number: 1, ETag: p.ETag}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := get(t, s, "b", "k", 0, -1); err != nil || string(got) != "second" || info.ETag != multipartETag([]byte("second")) {
		t.Fatalf("got %q, %v, etag %s", got, err, info.ETag)
	}
	if got := chunksLeft(t, s, "b"); got != 1 {
		t.Fatalf("%d chunks after complete, want the listed part's 1", got)
	}
	if err := s.Delete(ctx, "b", "k"); err != nil {
		t.Fatal(err)
	}
	if got := chunksLeft(t, s, "b"); got != 0 {
		t.Fatalf("%d chunks after delete", got)
	}
}

func TestMultipartRefused(t *testing.T) {
	s := openTest(t, Config{ChunkSize: testChunk, MinPartSize: testChunk})
	ctx := context.Background()
	mustBucket(t, s, "b")
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader([]byte("old")), ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	id := mustUpload(t, s, "b", "k")
	big, small := pattern(testChunk), []byte("small")
	p1 := mustPart(t, s, "b", "k", id, 1, big)
	p2 := mustPart(t, s, "b", "k", id, 2, small)
	p3 := mustPart(t, s, "b", "k", id, 3, big)
	for _, tc := range []struct {
		name  string
		parts []CompletedPart
		want  error
	}{
		{"none", nil, ErrInvalidPart},
		{"out of order", []CompletedPart{{3, p3.ETag}, {1, p1.ETag}}, ErrInvalidPartOrder},
		{"repeated", []CompletedPart{{1, p1.ETag}, {1, p1.ETag}}, ErrInvalidPartOrder},
		{"missing part", []CompletedPart{{1, p1.ETag}, {4, p3.ETag}}, ErrInvalidPart},
		{"wrong etag", []CompletedPart{{1, p3.ETag + "0"}, {3, p3.ETag}}, ErrInvalidPart},
		{"too small but last", []CompletedPart{{1, p1.ETag}, {2, p2.ETag}, {3, p3.ETag}}, ErrEntityTooSmall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Complete(ctx, "b", "k", id, tc.parts); !errors.Is(err, tc.want) {
				t.Fatalf("complete: %v, want %v", err, tc.want)
			}
			if got, _, err := get(t, s, "b", "k", 0, -1); err != nil || string(got) != "old" {
				t.Fatalf("object after a refused complete: %q, %v", got, err)
			}
			if parts, _, err := s.ListParts(ctx, "b", "k", id, 0, 10); err != nil || len(parts) != 3 {
				t.Fatalf("parts after a refused complete: %+v, %v", parts, err)
			}
		})
	}
	if _, err := s.PutPart(ctx, "b", "k", id, 0, bytes.NewReader(nil)); !errors.Is(err, ErrInvalidPartNumber) {
		t.Fatalf("part 0: %v", err)
	}
	if _, err := s.PutPart(ctx, "b", "other", id, 1, bytes.NewReader(nil)); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("part under another key: %v", err)
	}
	// The upload still completes, the small part last.
	info, err := s.Complete(ctx, "b", "k", id, []CompletedPart{{1, p1.ETag}, {2, p2.ETag}})
	if err != nil || info.Size != int64(len(big)+len(small)) {
		t.Fatalf("complete after refusals: %+v, %v", info, err)
	}
}

func TestMultipartAbort(t *testing.T) {
	s := openTest(t, Config{ChunkSize: testChunk})
	ctx := context.Background()
	mustBucket(t, s, "b")
	id := mustUpload(t, s, "b", "k")
	mustPart(t, s, "b", "k", id, 1, pattern(2*testChunk))
	mustPart(t, s, "b", "k", id, 2, pattern(10))
	if err := s.Abort(ctx, "b", "k", id); err != nil {
		t.Fatal(err)
	}
	if got := chunksLeft(t, s, "b"); got != 0 {
		t.Fatalf("%d chunks after abort", got)
	}
	for name, err := range map[string]error{
		"abort again":   s.Abort(ctx, "b", "k", id),
		"abort unknown": s.Abort(ctx, "b", "k", "NOPE"),
		"list parts":    func() error { _, _, err := s.ListParts(ctx, "b", "k", id, 0, 10); return err }(),
		"complete": func() error {
			_, err := s.Complete(ctx, "b", "k", id, []CompletedPart{{1, "x"}})
			return err
		}(),
	} {
		if !errors.Is(err, ErrNoSuchUpload) {
			t.Errorf("%s after abort: %v", name, err)
		}
	}
	if _, err := s.Head(ctx, "b", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("head after abort: %v", err)
	}
	if ups, _, err := s.ListUploads(ctx, "b", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Fatalf("uploads after abort: %+v, %v", ups, err)
	}
}

func TestMultipartListing(t *testing.T) {
	s := openTest(t, Config{ChunkSize: testChunk})
	ctx := context.Background()
	mustBucket(t, s, "b")
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	// Two uploads of "a", in this order, after "b"'s: the order is by key,
	// then by initiation, not by id.
	ids := map[string]string{}
	for _, u := range []struct{ name, key string }{{"b", "b"}, {"a1", "a"}, {"a2", "a"}, {"c", "c"}} {
		ids[u.name] = mustUpload(t, s, "b", u.key)
	}
	var got []string
	keyMarker, idMarker, pages := "", "", 0
	for {
		page, more, err := s.ListUploads(ctx, "b", "", keyMarker, idMarker, 1)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range page {
			got = append(got, u.Key+"/"+u.UploadID)
		}
		if !more {
			break
		}
		keyMarker, idMarker = page[len(page)-1].Key, page[len(page)-1].UploadID
	}
	if want := []string{"a/" + ids["a1"], "a/" + ids["a2"], "b/" + ids["b"], "c/" + ids["c"]}; !slices.Equal(got, want) || pages != 4 {
		t.Fatalf("uploads %q in %d pages, want %q in 4", got, pages, want)
	}
	if page, _, err := s.ListUploads(ctx, "b", "", "a", "", 10); err != nil || len(page) != 2 || page[0].Key != "b" {
		t.Fatalf("after key marker a: %+v, %v", page, err)
	}
	if page, _, err := s.ListUploads(ctx, "b", "c", "", "", 10); err != nil || len(page) != 1 || page[0].Key != "c" {
		t.Fatalf("prefix c: %+v, %v", page, err)
	}
	id := ids["b"]
	for _, n := range []int{7, 2, 10, 1} {
		mustPart(t, s, "b", "b", id, n, []byte{byte(n)})
	}
	var numbers []int
	after := 0
	for {
		page, more, err := s.ListParts(ctx, "b", "b", id, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			numbers = append(numbers, p.Number)
			if p.Size != 1 || p.Modified.IsZero() {
				t.Fatalf("part %+v", p)
			}
		}
		if !more {
			break
		}
		after = page[len(page)-1].Number
	}
	if want := []int{1, 2, 7, 10}; !slices.Equal(numbers, want) {
		t.Fatalf("parts %v, want %v", numbers, want)
	}
}

func TestSweepUploads(t *testing.T) {
	s := openTest(t, Config{ChunkSize: testChunk, UploadMaxAge: time.Hour})
	ctx := context.Background()
	mustBucket(t, s, "b")
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return start }
	old := mustUpload(t, s, "b", "old")
	mustPart(t, s, "b", "old", old, 1, pattern(3*testChunk))
	s.now = func() time.Time { return start.Add(50 * time.Minute) }
	fresh := mustUpload(t, s, "b", "fresh")
	mustPart(t, s, "b", "fresh", fresh, 1, []byte("f"))
	n, err := s.SweepUploads(ctx, start.Add(61*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1", n, err)
	}
	ups, _, err := s.ListUploads(ctx, "b", "", "", "", 10)
	if err != nil || len(ups) != 1 || ups[0].UploadID != fresh {
		t.Fatalf("uploads after sweep: %+v, %v", ups, err)
	}
	if got := chunksLeft(t, s, "b"); got != 1 {
		t.Fatalf("%d chunks after sweep, want the fresh part's 1", got)
	}
	// A bucket with an upload in flight deletes, as S3's does, with it.
	if err := s.DeleteBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	mustBucket(t, s, "b")
	if ups, _, err := s.ListUploads(ctx, "b", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Fatalf("uploads of a recreated bucket: %+v, %v", ups, err)
	}
}

func TestMultipartMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of MiB")
	}
	const parts = 6
	partSize := int64(memTestSize / parts)
	bound := uint64(64 << 20)
	if raceEnabled {
		bound = 96 << 20
	}
	s := openTest(t, Config{})
	ctx := context.Background()
	mustBucket(t, s, "b")
	id := mustUpload(t, s, "b", "big")
	var done []CompletedPart
	grew := heapPeak(t, func() {
		for n := 1; n <= parts; n++ {
			p, err := s.PutPart(ctx, "b", "big", id, n, &genReader{left: partSize})
			if err != nil {
				t.Fatal(err)
			}
			done = append(done, CompletedPart{Number: n, ETag: p.ETag})
		}
		if _, err := s.Complete(ctx, "b", "big", id, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("upload of %d parts: heap grew %d MiB at most", parts, grew>>20)
	if grew > bound {
		t.Errorf("upload grew the heap by %d MiB, more than %d", grew>>20, bound>>20)
	}
	grew = heapPeak(t, func() {
		rd, info, err := s.Get(ctx, "b", "big", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		n, err := io.Copy(io.Discard, rd)
		if err != nil || n != parts*partSize || info.Size != n {
			t.Fatalf("read %d of %d bytes: %v", n, info.Size, err)
		}
	})
	t.Logf("get of %d parts: heap grew %d MiB at most", parts, grew>>20)
	if grew > bound {
		t.Errorf("get grew the heap by %d MiB, more than %d", grew>>20, bound>>20)
	}
}
