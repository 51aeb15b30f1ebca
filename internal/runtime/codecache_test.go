package runtime

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cacheZip returns a zip holding an executable bootstrap, a plain file in a
// subdirectory and a symlink, and its sha256.
func cacheZip(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, mode fs.FileMode, body string) {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			t.Fatal(err)
		}
	}
	add("bootstrap", 0o755, "#!/bin/sh\necho hi\n")
	add("lib/data.txt", 0o644, "data")
	add("lib/link", fs.ModeSymlink|0o777, "data.txt")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:])
}

// cacheDir returns a temporary cache dir whose read-only trees are made
// removable again when the test ends.
func cacheDir(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		if err := removeTree(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

// countingFetch serves data and counts its calls.
type countingFetch struct {
	data  []byte
	calls atomic.Int32
	delay time.Duration
}

func (f *countingFetch) fetch(ctx context.Context, sha string) (io.ReadCloser, error) {
	f.calls.Add(1)
	time.Sleep(f.delay) // let concurrent callers pile up behind this one
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

func TestCodeCacheConcurrentUnpackOnce(t *testing.T) {
	data, sha := cacheZip(t)
	dir := cacheDir(t)
	f := &countingFetch{data: data, delay: 50 * time.Millisecond}
	c := NewCodeCache(dir, f.fetch)

	const callers = 10
	var wg sync.WaitGroup
	dirs := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { dirs[i], errs[i] = c.Dir(t.Context(), sha) })
	}
	wg.Wait()

	want := filepath.Join(dir, sha)
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: Dir: %v", i, errs[i])
		}
		if dirs[i] != want {
			t.Errorf("caller %d: Dir = %q, want %q", i, dirs[i], want)
		}
	}
	if got := f.calls.Load(); got != 1 {
		t.Errorf("fetch called %d times, want 1", got)
	}
	got, err := os.ReadFile(filepath.Join(want, "lib", "link"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "data" {
		t.Errorf("lib/link reads %q, want %q", got, "data")
	}
	// Nothing temporary is left beside the unpacked code.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("cache dir holds %q, want only %s", names, sha)
	}
}

func TestCodeCacheReadOnly(t *testing.T) {
	data, sha := cacheZip(t)
	f := &countingFetch{data: data}
	got, err := NewCodeCache(cacheDir(t), f.fetch).Dir(t.Context(), sha)
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	tests := []struct {
		name string
		path string
		want fs.FileMode
	}{
		{name: "root dir", path: ".", want: fs.ModeDir | 0o555},
		{name: "subdir", path: "lib", want: fs.ModeDir | 0o555},
		{name: "executable", path: "bootstrap", want: 0o555},
		{name: "plain file", path: "lib/data.txt", want: 0o444},
		{name: "symlink", path: "lib/link", want: fs.ModeSymlink},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(got, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			mode := fi.Mode()
			if mode.Type() == fs.ModeSymlink {
				mode = fs.ModeSymlink // a link's own bits mean nothing
			}
			if mode != tt.want {
				t.Errorf("mode = %v, want %v", mode, tt.want)
			}
		})
	}
}

func TestCodeCacheRefuses(t *testing.T) {
	data, sha := cacheZip(t)
	other := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		sha     string
		data    []byte
		fetched bool // whether fetch may be called
		msg     string
	}{
		{name: "content differs from its name", sha: other, data: data, fetched: true, msg: "fetched archive has sha256 " + sha},
		{name: "not an archive", sha: hashOf("hello"), data: []byte("hello"), fetched: true, msg: "unsupported format"},
		{name: "path traversal", sha: "../" + sha[3:], fetched: false, msg: "invalid sha256"},
		{name: "upper case", sha: strings.ToUpper(sha), fetched: false, msg: "invalid sha256"},
		{name: "short", sha: sha[:63], fetched: false, msg: "invalid sha256"},
		{name: "empty", sha: "", fetched: false, msg: "invalid sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := cacheDir(t)
			f := &countingFetch{data: tt.data}
			got, err := NewCodeCache(dir, f.fetch).Dir(t.Context(), tt.sha)
			if err == nil {
				t.Fatalf("Dir = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want it to say %q", err, tt.msg)
			}
			if calls := f.calls.Load(); !tt.fetched && calls != 0 {
				t.Errorf("fetch called %d times, want 0", calls)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("cache dir holds %d entries after a refusal, want none", len(entries))
			}
		})
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCodeCacheFetchError(t *testing.T) {
	data, sha := cacheZip(t)
	dir := cacheDir(t)
	var fail atomic.Bool
	fail.Store(true)
	fetch := func(ctx context.Context, sha string) (io.ReadCloser, error) {
		if fail.Load() {
			return nil, errors.New("store unavailable")
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	c := NewCodeCache(dir, fetch)
	if _, err := c.Dir(t.Context(), sha); err == nil || !strings.Contains(err.Error(), "store unavailable") {
		t.Fatalf("Dir err = %v, want the fetch error", err)
	}
	// A failure is not remembered.
	fail.Store(false)
	got, err := c.Dir(t.Context(), sha)
	if err != nil {
		t.Fatalf("Dir after the store came back: %v", err)
	}
	if want := filepath.Join(dir, sha); got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
}

func TestCodeCacheReuse(t *testing.T) {
	data, sha := cacheZip(t)
	dir := cacheDir(t)
	first, err := NewCodeCache(dir, (&countingFetch{data: data}).fetch).Dir(t.Context(), sha)
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}

	// A new cache on the same dir, as after a restart, fetches nothing.
	f := &countingFetch{data: data}
	got, err := NewCodeCache(dir, f.fetch).Dir(t.Context(), sha)
	if err != nil {
		t.Fatalf("Dir on a new cache: %v", err)
	}
	if got != first {
		t.Errorf("Dir = %q, want %q", got, first)
	}
	if calls := f.calls.Load(); calls != 0 {
		t.Errorf("fetch called %d times, want 0", calls)
	}
}

func TestCodeCacheCallerGone(t *testing.T) {
	data, sha := cacheZip(t)
	dir := cacheDir(t)
	f := &countingFetch{data: data, delay: 100 * time.Millisecond}
	c := NewCodeCache(dir, f.fetch)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Dir(ctx, sha); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dir err = %v, want context.Canceled", err)
	}
	// The unpack it started goes on, and the next caller gets it.
	got, err := c.Dir(t.Context(), sha)
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	if want := filepath.Join(dir, sha); got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	if calls := f.calls.Load(); calls != 1 {
		t.Errorf("fetch called %d times, want 1", calls)
	}
}
