package archive

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	if err := Pack(dir, &buf); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

func TestPack(t *testing.T) {
	nodes := []node{
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
	}
	want := map[string]string{
		"bootstrap":   "755 #!/bin/sh\n",
		"lib":         "dir 755",
		"lib/util.js": "644 util",
		"lib/up":      "-> ../bootstrap",
		"a-c":         "644 sorts before a/",
		"empty":       "dir 755",
		"sub":         "dir 755",
		"sub/a":       "755 a",
	}

	dir := t.TempDir()
	makeTree(t, dir, nodes)
	data := pack(t, dir)

	t.Run("deterministic", func(t *testing.T) {
		if again := pack(t, dir); !bytes.Equal(again, data) {
			t.Error("packing the same dir twice gave different bytes")
		}
		// The same tree made in another order, at other times, elsewhere.
		other := t.TempDir()
		reversed := slices.Clone(nodes)
		slices.Reverse(reversed)
		makeTree(t, other, reversed)
		if got := pack(t, other); !bytes.Equal(got, data) {
			t.Error("packing an equal tree gave different bytes")
		}
	})

	t.Run("entries", func(t *testing.T) {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		want := []string{"a-c", "bootstrap", "empty/", "lib/", "lib/up", "lib/util.js", "sub/", "sub/a"}
		if !slices.Equal(names, want) {
			t.Errorf("entries = %q, want %q", names, want)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		info, err := Inspect(bytes.NewReader(data), int64(len(data)), Limits{})
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.Format != Zip || info.Entries != 8 {
			t.Errorf("Inspect = %+v, want a zip of 8 entries", info)
		}
		out := t.TempDir()
		if _, err := Unpack(bytes.NewReader(data), int64(len(data)), out, Limits{}); err != nil {
			t.Fatalf("Unpack: %v", err)
		}
		checkTree(t, out, want)
	})
}

func TestPackRefuses(t *testing.T) {
	tests := []struct {
		name string
		node node
		msg  string
	}{
		{"symlink outside", node{path: "l", link: "../x"}, `symlink "l": target "../x" points outside`},
		{"symlink outside from a subdir", node{path: "d/l", link: "../../x"}, "points outside"},
		{"absolute symlink", node{path: "l", link: "/etc/passwd"}, "absolute target"},
		{"backslash in a name", node{path: `a\b`, perm: 0o644}, `would unpack as "a/b"`},
		{"drive-like name", node{path: "c:x", perm: 0o644}, "absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			makeTree(t, dir, []node{tc.node})
			var buf bytes.Buffer
			err := Pack(dir, &buf)
			if err == nil {
				t.Fatal("Pack succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to contain %q", err, tc.msg)
			}
		})
	}
}
