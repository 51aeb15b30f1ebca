package objects

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/wisp-dev/wisp/internal/store"
)

// openTest opens an object store on an embedded NATS in a temp dir.
func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	st, err := store.Open(context.Background(), store.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Logger = log
	s, err := New(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func mustBucket(t testing.TB, s *Store, name string) {
	t.Helper()
	if err := s.CreateBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// pattern is n bytes that differ from chunk to chunk and within one.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/1021)
	}
	return b
}

func get(t *testing.T, s *Store, bucket, key string, off, n int64) ([]byte, ObjectInfo, error) {
	t.Helper()
	rd, info, err := s.Get(context.Background(), bucket, key, off, n)
	if err != nil {
		return nil, info, err
	}
	defer rd.Close()
	body, err := io.ReadAll(rd)
	return body, info, err
}

func TestPutGetRoundTrip(t *testing.T) {
	s := openTest(t, Config{ChunkSize: 64 << 10})
	ctx := context.Background()
	mustBucket(t, s, "b")
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0}, {"one byte", 1}, {"one chunk exactly", 64 << 10},
		{"chunk and a byte", 64<<10 + 1}, {"many chunks", 5*(64<<10) + 123},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := pattern(tc.size)
			info, err := s.Put(ctx, "b", tc.name, bytes.NewReader(body), ObjectMeta{})
			if err != nil {
				t.Fatal(err)
			}
			sum := md5.Sum(body)
			if want := hex.EncodeToString(sum[:]); info.ETag != want || info.Size != int64(tc.size) {
				t.Fatalf("put: size %d etag %s, want %d %s", info.Size, info.ETag, tc.size, want)
			}
			got, ginfo, err := get(t, s, "b", tc.name, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("got %d bytes, not the %d put", len(got), len(body))
			}
			if ginfo.ETag != info.ETag || ginfo.Size != info.Size || !ginfo.Modified.Equal(info.Modified) {
				t.Fatalf("get info %+v, put info %+v", ginfo, info)
			}
		})
	}
}

func TestRanges(t *testing.T) {
	const chunk = 16 << 10
	s := openTest(t, Config{ChunkSize: chunk})
	mustBucket(t, s, "b")
	body := pattern(4*chunk + 100)
	if _, err := s.Put(context.Background(), "b", "k", bytes.NewReader(body), ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	size := int64(len(body))
	for _, tc := range []struct {
		name     string
		off, n   int64
		from, to int64 // the bytes of body expected
		err      error
	}{
		{name: "first byte", off: 0, n: 1, from: 0, to: 1},
		{name: "last byte", off: size - 1, n: 1, from: size - 1, to: size},
		{name: "middle across chunks", off: chunk - 10, n: 2*chunk + 20, from: chunk - 10, to: 3*chunk + 10},
		{name: "a whole chunk on its bounds", off: chunk, n: chunk, from: chunk, to: 2 * chunk},
		{name: "to the end", off: 3*chunk + 5, n: -1, from: 3*chunk + 5, to: size},
		{name: "length past the end is cut", off: size - 10, n: 1000, from: size - 10, to: size},
		{name: "at the end", off: size, n: -1, from: size, to: size},
		{name: "beyond the end", off: size + 1, n: 1, err: ErrInvalidRange},
		{name: "negative", off: -1, n: 1, err: ErrInvalidRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := get(t, s, "b", "k", tc.off, tc.n)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err == nil && !bytes.Equal(got, body[tc.from:tc.to]) {
				t.Fatalf("got %d bytes, want body[%d:%d]", len(got), tc.from, tc.to)
			}
		})
	}
}

func TestOverwriteAndDelete(t *testing.T) {
	const chunk = 16 << 10
	s := openTest(t, Config{ChunkSize: chunk})
	ctx := context.Background()
	mustBucket(t, s, "b")
	old, fresh := pattern(3*chunk), bytes.Repeat([]byte("n"), chunk+1)
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader(old), ObjectMeta{ContentType: "old"}); err != nil {
		t.Fatal(err)
	}
	// A reader of the old version that began before the overwrite.
	rd, _, err := s.Get(ctx, "b", "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	first := make([]byte, 10)
	if _, err := io.ReadFull(rd, first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader(fresh), ObjectMeta{ContentType: "new"}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("reading the old version on: %d bytes, err %v; want ErrChanged", len(rest), err)
	}
	if whole := append(first, rest...); !bytes.Equal(whole, old[:len(whole)]) {
		t.Fatal("the old version's reader got bytes that are not the old version's")
	}
	got, info, err := get(t, s, "b", "k", 0, -1)
	if err != nil || !bytes.Equal(got, fresh) || info.Meta.ContentType != "new" {
		t.Fatalf("after overwrite: %d bytes, %+v, %v", len(got), info.Meta, err)
	}
	if err := s.Delete(ctx, "b", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "b", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("head after delete: %v", err)
	}
	if _, _, err := s.Get(ctx, "b", "k", 0, -1); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.Delete(ctx, "b", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("second delete: %v", err)
	}
	// No chunk of either version is left.
	info2, err := s.mustOpen(t, "b").data.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info2.State.Msgs != 0 {
		t.Fatalf("%d chunks left after overwrite and delete", info2.State.Msgs)
	}
}

func (s *Store) mustOpen(t *testing.T, name string) *bucket {
	t.Helper()
	b, err := s.bucket(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMetadataRoundTrip(t *testing.T) {
	s := openTest(t, Config{})
	ctx := context.Background()
	mustBucket(t, s, "b")
	meta := ObjectMeta{
		ContentType: "image/png", ContentEncoding: "gzip", ContentDisposition: `attachment; filename="a b.png"`,
		ContentLanguage: "fr", CacheControl: "max-age=60", Expires: "Wed, 21 Oct 2015 07:28:00 GMT",
		User:      map[string]string{"owner": "ada", "note": "ünïcode ✓"},
		Checksums: map[string]string{"CRC32": "AAAAAA==", "SHA256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
	}
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader([]byte("x")), meta); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(ctx, "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.Meta, meta) {
		t.Fatalf("head meta %+v, want %+v", info.Meta, meta)
	}
}

func TestTooLarge(t *testing.T) {
	s := openTest(t, Config{ChunkSize: 1 << 10, MaxObjectSize: 4 << 10})
	ctx := context.Background()
	mustBucket(t, s, "b")
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader(pattern(4<<10+1)), ObjectMeta{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("put past the max: %v", err)
	}
	if _, err := s.Head(ctx, "b", "k"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("head after a refused put: %v", err)
	}
	if info, _ := s.mustOpen(t, "b").data.Info(ctx); info.State.Msgs != 0 {
		t.Fatalf("%d chunks of a refused put left", info.State.Msgs)
	}
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader(pattern(4<<10)), ObjectMeta{}); err != nil {
		t.Fatalf("put of the max: %v", err)
	}
}

func TestBucketFull(t *testing.T) {
	s := openTest(t, Config{ChunkSize: 16 << 10, BucketBytes: 256 << 10})
	ctx := context.Background()
	mustBucket(t, s, "b")
	_, err := s.Put(ctx, "b", "k", bytes.NewReader(pattern(512<<10)), ObjectMeta{})
	if !errors.Is(err, ErrBucketFull) {
		t.Fatalf("put past the bucket's bytes: %v", err)
	}
	if _, err := s.Put(ctx, "b", "small", bytes.NewReader(pattern(1<<10)), ObjectMeta{}); err != nil {
		t.Fatalf("a small put after a refused one: %v", err)
	}
}

func TestBuckets(t *testing.T) {
	s := openTest(t, Config{})
	ctx := context.Background()
	for _, name := range []string{"zeta", "alpha.with.dots", "mid-dash"} {
		mustBucket(t, s, name)
	}
	if err := s.CreateBucket(ctx, "zeta"); !errors.Is(err, ErrBucketExists) {
		t.Fatalf("second create: %v", err)
	}
	list, err := s.ListBuckets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list {
		names = append(names, b.Name)
		if b.Created.IsZero() {
			t.Fatalf("bucket %s has no creation time", b.Name)
		}
	}
	if want := []string{"alpha.with.dots", "mid-dash", "zeta"}; !slices.Equal(names, want) {
		t.Fatalf("buckets %v, want %v", names, want)
	}
	if _, err := s.HeadBucket(ctx, "nope"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("head of a missing bucket: %v", err)
	}
	if _, err := s.Put(ctx, "nope", "k", bytes.NewReader(nil), ObjectMeta{}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("put into a missing bucket: %v", err)
	}
	if _, err := s.Put(ctx, "zeta", "k", bytes.NewReader([]byte("x")), ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "zeta"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete of a bucket with an object: %v", err)
	}
	if err := s.Delete(ctx, "zeta", "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "zeta"); err != nil {
		t.Fatalf("delete of the emptied bucket: %v", err)
	}
	if _, err := s.HeadBucket(ctx, "zeta"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("head after delete: %v", err)
	}
	if _, err := s.Put(ctx, "zeta", "k", bytes.NewReader(nil), ObjectMeta{}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("put into a deleted bucket: %v", err)
	}
	// The name is free again, and the bucket starts empty.
	mustBucket(t, s, "zeta")
	if got, _, err := s.List(ctx, "zeta", "", "", 10); err != nil || len(got) != 0 {
		t.Fatalf("recreated bucket lists %v, %v", got, err)
	}
}

func keysOf(list []ObjectSummary) []string {
	var keys []string
	for _, o := range list {
		keys = append(keys, o.Key)
	}
	return keys
}

func TestListOrder(t *testing.T) {
	s := openTest(t, Config{})
	ctx := context.Background()
	mustBucket(t, s, "b")
	keys := []string{"a", "a/", "a/b", "a/b/c", "a0", "ab", "b", "é", "日本/語", "z", "A", "a b", "a\x01", "~"}
	for _, k := range keys {
		if _, err := s.Put(ctx, "b", k, bytes.NewReader([]byte(k)), ObjectMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted) // Go compares strings by bytes, as S3 orders keys
	for _, tc := range []struct {
		name, prefix, after string
		max                 int
		want                []string
		more                bool
	}{
		{name: "all", max: 100, want: sorted},
		{name: "prefix a/", prefix: "a/", max: 100, want: []string{"a/", "a/b", "a/b/c"}},
		{name: "prefix a", prefix: "a", max: 100, want: []string{"a", "a\x01", "a b", "a/", "a/b", "a/b/c", "a0", "ab"}},
		{name: "after a prefix of others", after: "a", max: 2, want: []string{"a\x01", "a b"}, more: true},
		{name: "after, within prefix", prefix: "a/", after: "a/b", max: 100, want: []string{"a/b/c"}},
		{name: "after before the prefix", prefix: "a/", after: "0", max: 100, want: []string{"a/", "a/b", "a/b/c"}},
		{name: "after past the prefix", prefix: "a/", after: "b", max: 100},
		{name: "unicode prefix", prefix: "日本", max: 100, want: []string{"日本/語"}},
		{name: "max exactly what there is", prefix: "a/", max: 3, want: []string{"a/", "a/b", "a/b/c"}},
		{name: "no match", prefix: "q", max: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, more, err := s.List(ctx, "b", tc.prefix, tc.after, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keysOf(got), tc.want) || more != tc.more {
				t.Fatalf("got %q more %v, want %q more %v", keysOf(got), more, tc.want, tc.more)
			}
		})
	}
	// A listing right after a write sees it; one after a delete does not.
	if _, err := s.Put(ctx, "b", "a/new", bytes.NewReader([]byte("n")), ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "b", "a/b"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.List(ctx, "b", "a/", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/", "a/b/c", "a/new"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("after writes: %q, want %q", keysOf(got), want)
	}
	if got[2].Size != 1 || got[2].ETag == "" || got[2].Modified.IsZero() {
		t.Fatalf("summary %+v", got[2])
	}
}

func TestListPaging(t *testing.T) {
	s := openTest(t, Config{})
	ctx := context.Background()
	mustBucket(t, s, "b")
	const n = 10000
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("k/%x", i*7919%n) // not in the order they are put
		if _, err := s.Put(ctx, "b", want[i], bytes.NewReader(nil), ObjectMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	var got []string
	after, pages := "", 0
	for {
		page, more, err := s.List(ctx, "b", "k/", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, keysOf(page)...)
		if !more {
			break
		}
		after = page[len(page)-1].Key
	}
	if !slices.Equal(got, want) || pages != 10 {
		t.Fatalf("%d keys in %d pages; want each of %d once, in order, in 10 pages", len(got), pages, n)
	}
}

// TestMaxBuckets: past MaxBuckets a new bucket is refused and nothing is
// made; an existing one still answers that it exists; a deleted one makes
// room.
func TestMaxBuckets(t *testing.T) {
	s := openTest(t, Config{MaxBuckets: 2})
	ctx := context.Background()
	mustBucket(t, s, "a")
	mustBucket(t, s, "b")
	if err := s.CreateBucket(ctx, "c"); !errors.Is(err, ErrTooManyBuckets) {
		t.Fatalf("a third bucket of 2: %v, want ErrTooManyBuckets", err)
	}
	if _, err := s.HeadBucket(ctx, "c"); !errors.Is(err, ErrNoSuchBucket) {
		t.Errorf("the refused bucket: %v, want ErrNoSuchBucket", err)
	}
	if err := s.CreateBucket(ctx, "a"); !errors.Is(err, ErrBucketExists) {
		t.Errorf("an existing bucket at the cap: %v, want ErrBucketExists", err)
	}
	if err := s.DeleteBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	mustBucket(t, s, "c")
}
