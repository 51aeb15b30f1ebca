package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// member describes one entry of a test archive.
type member struct {
	name string
	body string      // file data, or a symlink's target
	mode fs.FileMode // type and permission bits; zero means a 0644 file
	link string      // tar only: a hard link to this earlier entry
	typ  byte        // tar only: a raw type flag (devices, fifos), overriding mode
}

const (
	sym  = fs.ModeSymlink | 0o777
	dirM = fs.ModeDir | 0o755
)

func (m member) fileMode() fs.FileMode {
	if m.mode == 0 {
		return 0o644
	}
	return m.mode
}

func zipOf(tb testing.TB, ms ...member) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		hdr := &zip.FileHeader{Name: m.name, Method: zip.Deflate}
		if m.fileMode().IsDir() {
			hdr.Method = zip.Store
		}
		hdr.SetMode(m.fileMode())
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			tb.Fatal(err)
		}
		if !m.fileMode().IsDir() {
			if _, err := io.WriteString(w, m.body); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func tarGzOf(tb testing.TB, ms ...member) []byte {
	tb.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, m := range ms {
		mode := m.fileMode()
		hdr := &tar.Header{Name: m.name, Mode: int64(mode.Perm())}
		if mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		switch {
		case m.typ != 0:
			hdr.Typeflag = m.typ
		case m.link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, m.link
		case mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, m.body
		case mode.IsDir():
			hdr.Typeflag = tar.TypeDir
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(m.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, m.body); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// readTree describes every path under dir: a file as its mode and data, a
// directory as its mode, a symlink as its target.
func readTree(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	got := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[filepath.ToSlash(rel)] = "-> " + target
		case d.IsDir():
			got[filepath.ToSlash(rel)] = fmt.Sprintf("dir %o", info.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[filepath.ToSlash(rel)] = fmt.Sprintf("%o %s", info.Mode().Perm(), b)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := readTree(t, dir)
	if !maps.Equal(got, want) {
		t.Errorf("unpacked tree:\n got %v\nwant %v", got, want)
	}
}

func TestUnpack(t *testing.T) {
	members := []member{
		{name: "bootstrap", body: "#!/bin/sh\necho hi\n", mode: 0o755},
		{name: "lib/", mode: dirM},
		{name: "lib/util.js", body: "exports.x = 1\n"},
		{name: "lib/odd", body: "odd", mode: fs.ModeSetuid | 0o777},
		{name: "lib/up", body: "../bootstrap", mode: sym},
		{name: "current", body: "./lib/util.js", mode: sym},
		{name: "self", body: ".", mode: sym},
		{name: "deep/er/file.txt", body: "implied parents"},
		{name: "empty/", mode: dirM},
	}
	want := map[string]string{
		"bootstrap":        "755 #!/bin/sh\necho hi\n",
		"lib":              "dir 755",
		"lib/util.js":      "644 exports.x = 1\n",
		"lib/odd":          "755 odd", // setuid and world-write dropped
		"lib/up":           "-> ../bootstrap",
		"current":          "-> lib/util.js", // written cleaned
		"self":             "-> .",
		"deep":             "dir 755",
		"deep/er":          "dir 755",
		"deep/er/file.txt": "644 implied parents",
		"empty":            "dir 755",
	}
	var unpacked int64
	for _, m := range members {
		if m.fileMode().IsRegular() {
			unpacked += int64(len(m.body))
		}
	}
	tests := []struct {
		name string
		data []byte
		want Info
	}{
		{"zip", zipOf(t, members...), Info{Format: Zip, Entries: len(members), Unpacked: unpacked}},
		{"tar.gz", tarGzOf(t, members...), Info{Format: TarGz, Entries: len(members), Unpacked: unpacked}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Inspect(bytes.NewReader(tc.data), int64(len(tc.data)), Limits{})
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if got != tc.want {
				t.Errorf("Inspect = %+v, want %+v", got, tc.want)
			}
			dir := t.TempDir()
			got, err = Unpack(bytes.NewReader(tc.data), int64(len(tc.data)), dir, Limits{})
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if got != tc.want {
				t.Errorf("Unpack = %+v, want %+v", got, tc.want)
			}
			checkTree(t, dir, want)
		})
	}
}

// TestUnpackTarball covers what tar(1) makes: a "./" root entry, "./"
// prefixes, pax headers and hard links.
func TestUnpackTarball(t *testing.T) {
	data := tarGzOf(t,
		member{name: "./", mode: dirM},
		member{name: "./bootstrap", body: "run", mode: 0o755},
		member{name: "./again", link: "./bootstrap"},
		member{name: "./" + strings.Repeat("n", 200), body: "long name"}, // needs pax or GNU headers
	)
	want := map[string]string{
		"bootstrap":              "755 run",
		"again":                  "755 run",
		strings.Repeat("n", 200): "644 long name",
	}
	dir := t.TempDir()
	got, err := Unpack(bytes.NewReader(data), int64(len(data)), dir, Limits{})
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if want := (Info{Format: TarGz, Entries: 4, Unpacked: int64(len("run") + len("long name"))}); got != want {
		t.Errorf("Unpack = %+v, want %+v", got, want)
	}
	checkTree(t, dir, want)
}

func TestUnpackNeedsEmptyDir(t *testing.T) {
	data := zipOf(t, member{name: "a", body: "new"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(bytes.NewReader(data), int64(len(data)), dir, Limits{}); err == nil {
		t.Fatal("Unpack into a non-empty dir succeeded")
	}
	checkTree(t, dir, map[string]string{"keep": "644 old"})
}

// bomb is a file of n zeros: a few bytes deflated.
func bomb(n int) string { return string(make([]byte, n)) }

// lyingZip holds one deflated file of n zeros whose header claims claim bytes.
func lyingZip(tb testing.TB, n int, claim uint64) []byte {
	tb.Helper()
	zeros := make([]byte, n)
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := fw.Write(zeros); err != nil {
		tb.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               "bomb",
		Method:             zip.Deflate,
		CRC32:              crc32.ChecksumIEEE(zeros),
		CompressedSize64:   uint64(comp.Len()),
		UncompressedSize64: claim,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(comp.Bytes()); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// flip returns data with the byte at i inverted.
func flip(data []byte, i int) []byte {
	data = slices.Clone(data)
	data[i] ^= 0xff
	return data
}

func TestRefuse(t *testing.T) {
	good := zipOf(t, member{name: "a", body: strings.Repeat("hello ", 100)})
	goodTar := tarGzOf(t, member{name: "a", body: strings.Repeat("hello ", 100)})
	// A stored file's data sits right after its 30-byte local header and name.
	stored := func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "a", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, "some data"); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()
	tarTrailing := func(tail []byte) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		if err := tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := gz.Write(tail); err != nil {
			t.Fatal(err)
		}
		if err := gz.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	small := Limits{MaxUnpacked: 64 << 10}

	tests := []struct {
		name     string
		data     []byte
		lim      Limits
		tooLarge bool
		msg      string // part of the error
	}{
		// Names.
		{name: "zip traversal", data: zipOf(t, member{name: "../x"}), msg: `"../x": path has a ".." element`},
		{name: "zip nested traversal", data: zipOf(t, member{name: "a/../../x"}), msg: `".." element`},
		{name: "zip dotdot that stays inside", data: zipOf(t, member{name: "a/../x"}), msg: `".." element`},
		{name: "tar traversal", data: tarGzOf(t, member{name: "../x"}), msg: `".." element`},
		{name: "zip absolute", data: zipOf(t, member{name: "/x"}), msg: `"/x": absolute path`},
		{name: "tar absolute", data: tarGzOf(t, member{name: "/etc/x"}), msg: "absolute path"},
		{name: "zip drive", data: zipOf(t, member{name: `C:\x`}), msg: "absolute path"},
		{name: "zip drive relative", data: zipOf(t, member{name: "c:x"}), msg: "absolute path"},
		{name: "zip backslash rooted", data: zipOf(t, member{name: `\x`}), msg: "absolute path"},
		{name: "zip backslash traversal", data: zipOf(t, member{name: `..\x`}), msg: `".." element`},
		{name: "zip empty name", data: zipOf(t, member{name: ""}), msg: "empty entry name"},
		{name: "zip NUL", data: zipOf(t, member{name: "a\x00b"}), msg: "NUL"},
		{name: "zip root as file", data: zipOf(t, member{name: "."}), msg: `".": names the root`},
		{name: "zip long element", data: zipOf(t, member{name: strings.Repeat("a", 256)}), msg: "longer than 255"},
		{name: "zip long name", data: zipOf(t, member{name: strings.Repeat("a/", 520)}), msg: "longer than 1024"},

		// Links.
		{name: "zip link outside", data: zipOf(t, member{name: "l", body: "../x", mode: sym}), msg: `symlink "l": target "../x" points outside`},
		{name: "zip link outside from a subdir", data: zipOf(t, member{name: "d/l", body: "../../x", mode: sym}), msg: "points outside"},
		{name: "zip link outside through dots", data: zipOf(t, member{name: "l", body: "a/../..", mode: sym}), msg: "points outside"},
		{name: "zip absolute link", data: zipOf(t, member{name: "l", body: "/etc/passwd", mode: sym}), msg: "absolute target"},
		{name: "zip backslash link", data: zipOf(t, member{name: "l", body: `..\x`, mode: sym}), msg: "backslash"},
		{name: "zip empty link", data: zipOf(t, member{name: "l", body: "", mode: sym}), msg: "empty target"},
		{name: "tar link outside", data: tarGzOf(t, member{name: "d/l", body: "../../x", mode: sym}), msg: "points outside"},
		{name: "tar absolute link", data: tarGzOf(t, member{name: "l", body: "/etc", mode: sym}), msg: "absolute target"},
		{name: "tar hard link to nothing", data: tarGzOf(t, member{name: "h", link: "x"}), msg: `hard link "h": target "x" is not an earlier file`},
		{name: "tar hard link to a later file", data: tarGzOf(t, member{name: "h", link: "x"}, member{name: "x"}), msg: "not an earlier file"},
		{name: "tar hard link to a dir", data: tarGzOf(t, member{name: "d/", mode: dirM}, member{name: "h", link: "d"}), msg: "not an earlier file"},
		{name: "tar hard link to a symlink", data: tarGzOf(t, member{name: "x"}, member{name: "l", body: "x", mode: sym}, member{name: "h", link: "l"}), msg: "not an earlier file"},
		{name: "tar hard link outside", data: tarGzOf(t, member{name: "h", link: "../etc/passwd"}), msg: "not an earlier file"},
		{name: "tar hard link absolute", data: tarGzOf(t, member{name: "h", link: "/etc/passwd"}), msg: "not an earlier file"},

		// Types.
		{name: "zip fifo", data: zipOf(t, member{name: "p", mode: fs.ModeNamedPipe | 0o644}), msg: `"p": unsupported type`},
		{name: "zip device", data: zipOf(t, member{name: "d", mode: fs.ModeDevice | 0o644}), msg: "unsupported type"},
		{name: "tar fifo", data: tarGzOf(t, member{name: "p", typ: tar.TypeFifo}), msg: `"p": unsupported type fifo`},
		{name: "tar char device", data: tarGzOf(t, member{name: "c", typ: tar.TypeChar}), msg: "character device"},
		{name: "tar block device", data: tarGzOf(t, member{name: "b", typ: tar.TypeBlock}), msg: "block device"},

		// Collisions, and writing through links.
		{name: "zip duplicate", data: zipOf(t, member{name: "a"}, member{name: "a"}), msg: `duplicate entry "a"`},
		{name: "zip duplicate once cleaned", data: zipOf(t, member{name: "a"}, member{name: "./a"}), msg: `duplicate entry "./a"`},
		{name: "zip duplicate dir", data: zipOf(t, member{name: "d/", mode: dirM}, member{name: "d/", mode: dirM}), msg: "duplicate entry"},
		{name: "zip file then dir", data: zipOf(t, member{name: "a"}, member{name: "a/", mode: dirM}), msg: "duplicate entry"},
		{name: "tar duplicate", data: tarGzOf(t, member{name: "a"}, member{name: "a"}), msg: "duplicate entry"},
		{name: "zip file as parent", data: zipOf(t, member{name: "a"}, member{name: "a/b"}), msg: `"a/b": parent "a" is a file`},
		{name: "zip file over a dir", data: zipOf(t, member{name: "a/b"}, member{name: "a"}), msg: "conflicts with a directory"},
		{name: "zip symlink over a dir", data: zipOf(t, member{name: "a/b"}, member{name: "a", body: "x", mode: sym}), msg: "conflicts with a directory"},
		{name: "zip through symlink", data: zipOf(t, member{name: "sub/", mode: dirM}, member{name: "a", body: "sub", mode: sym}, member{name: "a/x"}), msg: `"a/x": parent "a" is a symlink`},
		{name: "zip through dot symlink", data: zipOf(t, member{name: "a", body: ".", mode: sym}, member{name: "a/x"}), msg: "is a symlink"},
		{name: "tar through symlink", data: tarGzOf(t, member{name: "d/a", body: "..", mode: sym}, member{name: "d/a/b/x"}), msg: `parent "d/a" is a symlink`},

		// Sizes.
		{name: "zip over MaxPacked", data: good, lim: Limits{MaxPacked: 100}, tooLarge: true, msg: "more than 100"},
		{name: "tar over MaxPacked", data: goodTar, lim: Limits{MaxPacked: 10}, tooLarge: true, msg: "more than 10"},
		{name: "zip too many entries", data: zipOf(t, member{name: "a"}, member{name: "b"}, member{name: "c"}), lim: Limits{MaxEntries: 2}, tooLarge: true, msg: "more than 2 entries"},
		{name: "tar too many entries", data: tarGzOf(t, member{name: "a"}, member{name: "b"}, member{name: "c"}), lim: Limits{MaxEntries: 2}, tooLarge: true, msg: "more than 2 entries"},
		{name: "zip too many implied dirs", data: zipOf(t, member{name: "a/b/c/d"}), lim: Limits{MaxEntries: 3}, tooLarge: true, msg: "more than 3 files and directories"},
		{name: "zip bomb", data: zipOf(t, member{name: "bomb", body: bomb(256 << 10)}), lim: small, tooLarge: true, msg: `unpacked size passes 65536 bytes (at entry "bomb")`},
		{name: "zip bomb claiming 1 TiB", data: lyingZip(t, 256<<10, 1<<40), lim: small, tooLarge: true, msg: "unpacked size passes"},
		{name: "zip bomb over many files", data: zipOf(t, member{name: "a", body: bomb(40 << 10)}, member{name: "b", body: bomb(40 << 10)}), lim: small, tooLarge: true, msg: `(at entry "b")`},
		{name: "tar bomb", data: tarGzOf(t, member{name: "bomb", body: bomb(256 << 10)}), lim: small, tooLarge: true, msg: "unpacked size passes"},
		// Past the tar end marker, nothing counts as file data, but the
		// stream is still decompressed: it is bounded too.
		{name: "tar bomb after the end", data: tarTrailing(make([]byte, 1<<20)), lim: Limits{MaxUnpacked: 64 << 10, MaxEntries: 1}, tooLarge: true, msg: "decompressed tar stream passes"},

		// Corruption. Go's zip reader sees data longer than its header says
		// before our counter does: the lie makes it corrupt, not too large.
		{name: "zip bomb claiming 10 bytes", data: lyingZip(t, 256<<10, 10), lim: small, msg: `entry "bomb": corrupt`},
		{name: "zip truncated", data: good[:len(good)/2], msg: "corrupt archive"},
		{name: "tar truncated", data: goodTar[:len(goodTar)/2], msg: "corrupt"},
		{name: "tar without its gzip trailer", data: goodTar[:len(goodTar)-4], msg: "corrupt"},
		{name: "zip checksum", data: flip(stored, 30+len("a")), msg: `entry "a": corrupt: zip: checksum error`},
		{name: "tar checksum", data: flip(tarTrailing(nil), len(tarTrailing(nil))-6), msg: "corrupt"},
		{name: "tar corrupt", data: flip(goodTar, len(goodTar)/2), msg: "corrupt"},
		{name: "tar trailing garbage", data: append(slices.Clone(goodTar), "garbage"...), msg: "corrupt"},
		{name: "zip bad directory", data: flip(good, len(good)-22), msg: "corrupt archive"},
		{name: "not an archive", data: []byte("hello, world"), msg: "unsupported format"},
		{name: "empty", data: nil, msg: "unsupported format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Inspect(bytes.NewReader(tc.data), int64(len(tc.data)), tc.lim)
			checkRefusal(t, "Inspect", err, tc.tooLarge, tc.msg)

			dir := t.TempDir()
			_, err = Unpack(bytes.NewReader(tc.data), int64(len(tc.data)), dir, tc.lim)
			checkRefusal(t, "Unpack", err, tc.tooLarge, tc.msg)
			if got := readTree(t, dir); len(got) != 0 {
				t.Errorf("Unpack left %v behind", got)
			}
		})
	}
}

func checkRefusal(t *testing.T, op string, err error, tooLarge bool, msg string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s accepted the archive", op)
		return
	}
	e, ok := err.(*Error)
	if !ok {
		t.Errorf("%s: error %v (%T) is not an *Error", op, err, err)
		return
	}
	if e.TooLarge != tooLarge {
		t.Errorf("%s: TooLarge = %v, want %v (error %v)", op, e.TooLarge, tooLarge, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: error %q, want it to contain %q", op, err, msg)
	}
}
