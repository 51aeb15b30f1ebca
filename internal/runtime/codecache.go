package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/wisp-dev/wisp/internal/archive"
)

// CodeCache unpacks code artifacts once per sha256 into Dir/<sha> and hands
// out the directory, read-only. An unpacked directory appears under its
// name only complete (it is renamed into place), so a directory found there,
// from this run or an earlier one, is used as it is.
type CodeCache struct {
	dir   string
	fetch func(ctx context.Context, sha string) (io.ReadCloser, error)

	mu       sync.Mutex
	inflight map[string]*unpacking // guarded by mu: unpacks under way, by sha
}

// unpacking is one unpack under way; its fields are set before done is
// closed.
type unpacking struct {
	done chan struct{}
	dir  string
	err  error
}

// NewCodeCache returns a cache that keeps its directories in dir (created
// when first needed) and gets the archive of a code artifact from fetch.
func NewCodeCache(dir string, fetch func(ctx context.Context, sha string) (io.ReadCloser, error)) *CodeCache {
	return &CodeCache{dir: dir, fetch: fetch, inflight: make(map[string]*unpacking)}
}

// Dir returns the unpacked directory of the code with this sha256, fetching
// and unpacking it on first use. Concurrent callers for one sha wait for one
// unpack. The unpack runs on even if every caller's ctx ends (it is kept
// for the next caller); a failed unpack is not remembered, so the next call
// tries again.
func (c *CodeCache) Dir(ctx context.Context, sha string) (string, error) {
	if !validSHA256(sha) {
		return "", fmt.Errorf("runtime: code cache: invalid sha256 %q", sha)
	}
	final := filepath.Join(c.dir, sha)
	if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
		return final, nil
	}

	c.mu.Lock()
	u, ok := c.inflight[sha]
	if !ok {
		u = &unpacking{done: make(chan struct{})}
		c.inflight[sha] = u
		// Detached from this caller: the others waiting for it must not
		// fail because the first of them went away.
		go c.unpack(context.WithoutCancel(ctx), sha, u)
	}
	c.mu.Unlock()

	select {
	case <-u.done:
		return u.dir, u.err
	case <-ctx.Done():
		return "", fmt.Errorf("runtime: code %s: %w", sha, ctx.Err())
	}
}

func (c *CodeCache) unpack(ctx context.Context, sha string, u *unpacking) {
	u.dir, u.err = c.unpackOnce(ctx, sha)
	c.mu.Lock()
	delete(c.inflight, sha)
	c.mu.Unlock()
	close(u.done)
}

// unpackOnce fetches, checks and unpacks the code into Dir/<sha>, unless a
// directory is already there.
func (c *CodeCache) unpackOnce(ctx context.Context, sha string) (string, error) {
	final := filepath.Join(c.dir, sha)
	// Another caller's unpack may have finished between our Lstat and
	// taking the lock.
	if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", fmt.Errorf("runtime: code cache: %w", err)
	}

	f, size, err := c.download(ctx, sha)
	if err != nil {
		return "", err
	}
	dir, err := c.unpackArchive(f, size, sha)
	// The archive is only needed until it is unpacked. Should removing it
	// fail, the unpacked code is still in place for the next call.
	return dir, errors.Join(err, f.Close(), os.Remove(f.Name()))
}

// unpackArchive unpacks the archive f into a temporary directory, makes it
// read-only and renames it to Dir/<sha>.
func (c *CodeCache) unpackArchive(f *os.File, size int64, sha string) (string, error) {
	final := filepath.Join(c.dir, sha)
	tmp, err := os.MkdirTemp(c.dir, ".unpack-*")
	if err != nil {
		return "", fmt.Errorf("runtime: code cache: %w", err)
	}
	if _, err := archive.Unpack(f, size, tmp, archive.Limits{}); err != nil {
		return "", errors.Join(fmt.Errorf("runtime: code %s: %w", sha, err), removeTree(tmp))
	}
	if err := makeReadOnly(tmp); err != nil {
		return "", errors.Join(fmt.Errorf("runtime: code %s: %w", sha, err), removeTree(tmp))
	}
	if err := os.Rename(tmp, final); err != nil {
		// Someone else (another cache on this dir) put it there first.
		if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
			return final, removeTree(tmp)
		}
		return "", errors.Join(fmt.Errorf("runtime: code %s: %w", sha, err), removeTree(tmp))
	}
	return final, nil
}

// download fetches the archive into a temporary file in the cache dir,
// hashing it on the way, and refuses it unless its sha256 is sha. On
// success the caller closes and removes the file.
func (c *CodeCache) download(ctx context.Context, sha string) (*os.File, int64, error) {
	rc, err := c.fetch(ctx, sha)
	if err != nil {
		return nil, 0, fmt.Errorf("runtime: fetch code %s: %w", sha, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(c.dir, ".fetch-*")
	if err != nil {
		return nil, 0, fmt.Errorf("runtime: code cache: %w", err)
	}
	fail := func(err error) (*os.File, int64, error) {
		f.Close()
		return nil, 0, errors.Join(err, os.Remove(f.Name()))
	}
	// Unpack refuses more than MaxPacked anyway; stop reading just past it
	// so a bad fetch cannot fill the disk.
	maxPacked := archive.Limits{}.WithDefaults().MaxPacked
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, maxPacked+1))
	if err != nil {
		return fail(fmt.Errorf("runtime: fetch code %s: %w", sha, err))
	}
	if size > maxPacked {
		return fail(fmt.Errorf("runtime: code %s: archive larger than %d bytes", sha, maxPacked))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fail(fmt.Errorf("runtime: code %s: fetched archive has sha256 %s", sha, got))
	}
	return f, size, nil
}

// makeReadOnly takes every write bit off the tree at dir: files become 0444,
// or 0555 if executable, and directories 0555. Directories go last, from the
// deepest up, though as the owner we could chmod inside them either way.
func makeReadOnly(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, path)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o444)
			if info.Mode().Perm()&0o111 != 0 {
				mode = 0o555
			}
			return os.Chmod(path, mode)
		}
		// Symlinks: chmod would follow them, and their own mode means
		// nothing.
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return err
		}
	}
	return nil
}

// removeTree removes a temporary tree that may have been made read-only.
func removeTree(dir string) error {
	// Give back write permission on directories, so their entries can be
	// removed when we are not root.
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return nil
	})
	return errors.Join(err, os.RemoveAll(dir))
}

// validSHA256 reports whether s is a sha256 in lower-case hex, so it is safe
// to use as a file name.
func validSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
