package client_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/archive"
)

// node is one path of a test tree: a directory, a symlink, or a file.
type node struct {
	path string
	dir  bool
	link string // symlink target
	perm fs.FileMode
	body string
}

// makeTree creates nodes under dir in order, each with its own mtime.
func makeTree(t *testing.T, dir string, nodes []node) {
	t.Helper()
	for i, n := range nodes {
		p := filepath.Join(dir, filepath.FromSlash(n.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case n.dir:
			err = os.MkdirAll(p, 0o755)
		case n.link != "":
			err = os.Symlink(n.link, p)
		default:
			if err = os.WriteFile(p, []byte(n.body), 0o600); err == nil {
				err = os.Chmod(p, n.perm) // not subject to the umask
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if n.link == "" {
			mtime := time.Date(2020+i, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func pack(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := client.Pack(dir, &buf); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

// describe reads a zip's entries in order: a file as its mode and data, a
// directory as its mode, a symlink as its target.
func describe(t *testing.T, data []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		switch m := f.Mode(); {
		case m.IsDir():
			got = append(got, fmt.Sprintf("%s dir %o", f.Name, m.Perm()))
		case m&fs.ModeSymlink != 0:
			got = append(got, fmt.Sprintf("%s -> %s", f.Name, b))
		default:
			got = append(got, fmt.Sprintf("%s %o %s", f.Name, m.Perm(), b))
		}
	}
	return got
}

var packTree = []node{
	{path: "bootstrap", perm: 0o755, body: "#!/bin/sh\n"},
	{path: "lib", dir: true},
	{path: "lib/util.js", perm: 0o664, body: "util"},
	{path: "lib/up", link: "../bootstrap"},
	{path: "lib/.git/HEAD", perm: 0o644, body: "ref"},
	{path: "a-c", perm: 0o600, body: "sorts before a/"},
	{path: "empty", dir: true},
	{path: ".git/config", perm: 0o644, body: "[core]"},
	{path: "sub/.git", perm: 0o644, body: "gitdir: ../.git/modules/sub"},
	{path: "sub/a", perm: 0o700, body: "a"},
	{path: "sub/self", link: "./../sub/./a"},
}

// packTreeSHA256 is what internal/archive's Pack, which client.Pack
// replaced, wrote for packTree. The node addresses code by this sum, so a
// change to it changes the code of every function deployed again from an
// unchanged tree. A Go release that changes compress/flate's output would
// change it too: check that nothing else did before updating it.
const packTreeSHA256 = "988c852ec9cc790f0f2f3154f40e53a96b1e23078d436f9517fc073c71a65ccc"

func TestPack(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir, packTree)
	data := pack(t, dir)

	t.Run("deterministic", func(t *testing.T) {
		if again := pack(t, dir); !bytes.Equal(again, data) {
			t.Error("packing the same dir twice gave different bytes")
		}
		// The same tree made in another order, at other times, elsewhere.
		other := t.TempDir()
		reversed := slices.Clone(packTree)
		slices.Reverse(reversed)
		makeTree(t, other, reversed)
		if got := pack(t, other); !bytes.Equal(got, data) {
			t.Error("packing an equal tree gave different bytes")
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != packTreeSHA256 {
			t.Errorf("sha256 = %s, want %s", got, packTreeSHA256)
		}
	})

	t.Run("entries", func(t *testing.T) {
		got := describe(t, data)
		want := []string{
			"a-c 644 sorts before a/",
			"bootstrap 755 #!/bin/sh\n",
			"empty/ dir 755",
			"lib/ dir 755",
			"lib/up -> ../bootstrap",
			"lib/util.js 644 util",
			"sub/ dir 755",
			"sub/a 755 a",
			"sub/self -> ../sub/a", // cleaned, as the node would write it
		}
		if !slices.Equal(got, want) {
			t.Errorf("entries:\n got %q\nwant %q", got, want)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		info, err := archive.Inspect(bytes.NewReader(data), int64(len(data)), archive.Limits{})
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.Format != archive.Zip || info.Entries != 9 {
			t.Errorf("Inspect = %+v, want a zip of 9 entries", info)
		}
		out := t.TempDir()
		if _, err := archive.Unpack(bytes.NewReader(data), int64(len(data)), out, archive.Limits{}); err != nil {
			t.Fatalf("Unpack: %v", err)
		}
		// What the node unpacks packs again to the same bytes: names,
		// modes, data and links all survived.
		if got := pack(t, out); !bytes.Equal(got, data) {
			t.Errorf("the unpacked tree packs to other entries:\n got %q\nwant %q", describe(t, got), describe(t, data))
		}
	})
}

func TestPackRefuses(t *testing.T) {
	tests := []struct {
		name string
		node node
		msg  string
	}{
		{"symlink outside", node{path: "l", link: "../x"}, `archive: symlink "l": target "../x" points outside the root`},
		{"symlink outside from a subdir", node{path: "d/l", link: "../../x"}, "points outside"},
		{"absolute symlink", node{path: "l", link: "/etc/passwd"}, "absolute target"},
		{"backslash in a name", node{path: `a\b`, perm: 0o644}, `would unpack as "a/b"`},
		{"drive-like name", node{path: "c:x", perm: 0o644}, `archive: entry "c:x": absolute path`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			makeTree(t, dir, []node{tc.node})
			err := client.Pack(dir, io.Discard)
			if err == nil {
				t.Fatal("Pack succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to contain %q", err, tc.msg)
			}
			if _, ok := errors.AsType[*client.PackError](err); !ok {
				t.Errorf("error %q is a %T, want a *client.PackError", err, err)
			}
		})
	}
}

// A tree Pack cannot read is not one it refuses.
func TestPackReadError(t *testing.T) {
	err := client.Pack(filepath.Join(t.TempDir(), "missing"), io.Discard)
	if err == nil {
		t.Fatal("Pack of a missing dir succeeded")
	}
	if _, ok := errors.AsType[*client.PackError](err); ok {
		t.Errorf("error %q is a *client.PackError, want the filesystem's", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %q, want fs.ErrNotExist", err)
	}
}
