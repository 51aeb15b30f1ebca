package archive

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzInspect(f *testing.F) {
	good := []member{
		{name: "bootstrap", body: "#!/bin/sh\n", mode: 0o755},
		{name: "lib/", mode: dirM},
		{name: "lib/a.js", body: "a"},
		{name: "lib/up", body: "../bootstrap", mode: sym},
	}
	goodZip := zipOf(f, good...)
	f.Add(goodZip)
	f.Add(tarGzOf(f, good...))
	f.Add(tarGzOf(f,
		member{name: "./", mode: dirM},
		member{name: "./x", body: "x"},
		member{name: "h", link: "x"},
		member{name: "d/s", body: "..", mode: sym},
	))
	// "a" -> "b/.." with b -> ".": lexically inside, but outside if written
	// as is, since the kernel takes ".." after following b.
	f.Add(zipOf(f, member{name: "b", body: ".", mode: sym}, member{name: "a", body: "b/..", mode: sym}))
	f.Add(zipOf(f, member{name: "../x"}))
	f.Add(zipOf(f, member{name: "a", body: ".", mode: sym}, member{name: "a/x"}))
	f.Add(goodZip[:len(goodZip)/2])
	f.Add([]byte("PK\x05\x06"))

	lim := Limits{MaxPacked: 1 << 20, MaxUnpacked: 1 << 20, MaxEntries: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Inspect(bytes.NewReader(data), int64(len(data)), lim)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Inspect: %v (%T) is not an *Error", err, err)
			}
			return
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		got, err := Unpack(bytes.NewReader(data), int64(len(data)), dir, lim)
		if err != nil {
			t.Fatalf("Inspect accepted the archive, Unpack refused it: %v", err)
		}
		if got != info {
			t.Errorf("Unpack = %+v, Inspect = %+v", got, info)
		}
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("Unpack wrote beside its dir: %v", entries)
		}
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			if escapes(t, dir, filepath.ToSlash(rel)) {
				t.Errorf("%s resolves outside the dir", rel)
			}
			if d.Type()&fs.ModeSymlink == 0 {
				info, err := d.Info()
				if err != nil {
					return err
				}
				if perm := info.Mode().Perm(); perm != 0o644 && perm != 0o755 {
					t.Errorf("%s has mode %o", rel, perm)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// escapes reports whether resolving rel from dir, following symlinks as the
// kernel does (a ".." after a symlink goes up from where the link led),
// ever leaves dir. It is written apart from the package's lexical checks,
// to catch what they miss.
func escapes(tb testing.TB, dir, rel string) bool {
	todo := strings.Split(rel, "/")
	var at []string // the directories walked down from dir, physically
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return true
			}
			at = at[:len(at)-1]
			continue
		}
		p := filepath.Join(dir, filepath.Join(at...), c)
		fi, err := os.Lstat(p)
		if err != nil {
			return false // resolution stops: nothing is reached
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.IsDir() && len(todo) > 0 {
				return false // not a directory: resolution stops
			}
			at = append(at, c)
			continue
		}
		if hops++; hops > 40 {
			return false // the kernel gives up too (ELOOP)
		}
		target, err := os.Readlink(p)
		if err != nil {
			tb.Fatal(err)
		}
		if filepath.IsAbs(target) {
			return true
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return false
}
