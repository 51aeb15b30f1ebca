// Package archive owns reading function code archives: it reads uploaded
// zip and tar.gz archives safely, refusing any archive that is too large,
// malformed, or would write outside the directory it is unpacked into. The
// naming rules it checks entries by are apitype's (CleanEntryName,
// CleanLinkTarget), which the client's Pack follows too.
package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/wisp-dev/wisp/apitype"
)

// Limits bound what an archive may hold. The zero value means the defaults
// below; so does a zero (or negative) field.
type Limits struct {
	MaxPacked int64 // bytes of the archive itself; default 50 MiB
	// MaxUnpacked bounds the total bytes of all regular files, counted while
	// reading (never trusted from headers); default 250 MiB.
	MaxUnpacked int64
	// MaxEntries bounds the entries of the archive, and also the files and
	// directories of the unpacked tree (paths imply directories); default 10000.
	MaxEntries int
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxPacked <= 0 {
		l.MaxPacked = 50 << 20
	}
	if l.MaxUnpacked <= 0 {
		l.MaxUnpacked = 250 << 20
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 10000
	}
	return l
}

// Error is a refused archive. TooLarge says a size or entry limit was passed
// (the API answers 413); otherwise the archive is malformed or unsafe (400).
type Error struct {
	TooLarge bool
	Msg      string
}

func (e *Error) Error() string { return "archive: " + e.Msg }

func refusef(format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// refused reports a broken naming rule of apitype's as a refusal.
func refused(err error) *Error {
	return &Error{Msg: err.Error()}
}

func tooLargef(format string, args ...any) *Error {
	return &Error{TooLarge: true, Msg: fmt.Sprintf(format, args...)}
}

// corrupt reports a reader's error as a refusal, keeping a refusal that is
// already one (a limit passed deep inside a decompressor stays TooLarge).
func corrupt(entry string, err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if entry == "" {
		return refusef("corrupt archive: %v", err)
	}
	return refusef("entry %q: corrupt: %v", entry, err)
}

// Format is an archive's format, told by its first bytes.
type Format int

const (
	Zip Format = iota + 1
	TarGz
)

func (f Format) String() string {
	switch f {
	case Zip:
		return "zip"
	case TarGz:
		return "tar.gz"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Info describes an accepted archive.
type Info struct {
	Format   Format
	Entries  int   // entries read from the archive, directories included
	Unpacked int64 // bytes of all regular files
}

// Inspect reads every entry of the archive, reading all file data and
// counting bytes as they are read, and checks it, writing nothing.
// Every error it returns is an *Error.
func Inspect(r io.ReaderAt, size int64, lim Limits) (Info, error) {
	return walk(r, size, lim, func(entry, io.Reader) error { return nil })
}

// kind is what an entry puts at its path.
type kind int

const (
	kindImplied kind = iota // a directory implied by a deeper path, not an entry
	kindDir
	kindFile
	kindSymlink
	kindHardlink
)

// entry is one checked archive entry.
type entry struct {
	name   string // cleaned, slash-separated, relative to the root, never "."
	kind   kind
	exec   bool   // kindFile: the archive gave it an executable bit
	target string // kindSymlink: the cleaned target; kindHardlink: the earlier file's name
}

// tarOverhead is what each tar entry may add to the decompressed stream
// besides file data: its header, pax records, long names and padding. One
// more is allowed for the end marker and the padding to a whole record.
const tarOverhead = 8 << 10

// walk checks the archive and calls fn for each entry it accepts, in archive
// order. For a regular file, data yields its bytes; whatever fn leaves unread
// is read after it returns, so every byte is counted and every checksum
// verified. Every refusal is an *Error; fn's own errors are returned as they are.
func walk(r io.ReaderAt, size int64, lim Limits, fn func(e entry, data io.Reader) error) (Info, error) {
	lim = lim.WithDefaults()
	if size > lim.MaxPacked {
		return Info{}, tooLargef("archive is %d bytes, more than %d", size, lim.MaxPacked)
	}
	if size < 0 {
		return Info{}, refusef("negative archive size %d", size)
	}
	sr := io.NewSectionReader(r, 0, size)
	var magic [4]byte
	n, err := io.ReadFull(sr, magic[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return Info{}, corrupt("", err)
	}
	w := &walker{
		lim:   lim,
		fn:    fn,
		paths: make(map[string]kind),
		files: counter{max: lim.MaxUnpacked, what: "unpacked size"},
	}
	switch {
	case n == 4 && (bytes.Equal(magic[:], []byte("PK\x03\x04")) || bytes.Equal(magic[:], []byte("PK\x05\x06"))):
		w.info.Format = Zip
		err = w.zip(sr, size)
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		w.info.Format = TarGz
		if _, err := sr.Seek(0, io.SeekStart); err != nil {
			return Info{}, corrupt("", err)
		}
		err = w.tarGz(sr)
	default:
		return Info{}, refusef("unsupported format: want a zip or a tar.gz")
	}
	if err != nil {
		return Info{}, err
	}
	w.info.Unpacked = w.files.n
	return w.info, nil
}

// walker holds one walk's state: what the archive has put where so far, and
// the bytes read.
type walker struct {
	lim  Limits
	fn   func(entry, io.Reader) error
	info Info
	// paths maps each path an entry has put in place, and each directory
	// those paths imply, to its kind, so later entries are checked against it.
	paths map[string]kind
	files counter // bytes of regular files, across the archive
}

func (w *walker) zip(sr *io.SectionReader, size int64) error {
	zr, err := zip.NewReader(sr, size)
	// ErrInsecurePath (with GODEBUG=zipinsecurepath=0) still gives a usable
	// reader; our own name checks refuse such entries and name them.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return corrupt("", err)
	}
	// The central directory says how many entries there are: refuse early.
	if len(zr.File) > w.lim.MaxEntries {
		return tooLargef("more than %d entries", w.lim.MaxEntries)
	}
	for _, f := range zr.File {
		if err := w.count(); err != nil {
			return err
		}
		mode := f.Mode()
		var k kind
		switch mode.Type() {
		case 0:
			k = kindFile
		case fs.ModeDir:
			k = kindDir
		case fs.ModeSymlink:
			k = kindSymlink
		default:
			return refusef("entry %q: unsupported type %v", f.Name, mode.Type())
		}
		name, skip, err := w.place(f.Name, k)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		e := entry{name: name, kind: k, exec: mode.Perm()&0o111 != 0}
		switch k {
		case kindDir:
			if err := w.fn(e, nil); err != nil {
				return err
			}
		case kindSymlink:
			target, err := readTarget(f)
			if err != nil {
				return err
			}
			if e.target, err = linkTarget(name, target); err != nil {
				return err
			}
			if err := w.fn(e, nil); err != nil {
				return err
			}
		case kindFile:
			rc, err := f.Open()
			if err != nil {
				return corrupt(f.Name, err)
			}
			err = w.file(e, rc)
			if cerr := rc.Close(); err == nil && cerr != nil {
				err = corrupt(f.Name, cerr)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// readTarget reads a zip symlink's target, its data, reading to the end so
// the checksum is verified.
func readTarget(f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", corrupt(f.Name, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, apitype.MaxEntryPath+1))
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", corrupt(f.Name, err)
	}
	if len(b) > apitype.MaxEntryPath {
		return "", refusef("symlink %q: target longer than %d bytes", f.Name, apitype.MaxEntryPath)
	}
	return string(b), nil
}

func (w *walker) tarGz(r io.Reader) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return corrupt("", err)
	}
	// Headers, padding and the data of entries that are not read (a
	// directory may claim data) are decompressed too: bound the whole
	// stream, so a bomb hidden there still stops.
	stream := &counter{
		r:    gz,
		max:  w.lim.MaxUnpacked + int64(w.lim.MaxEntries+1)*tarOverhead,
		what: "decompressed tar stream",
	}
	tr := tar.NewReader(stream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// ErrInsecurePath (with GODEBUG=tarinsecurepath=0) comes with a
		// usable header; our own name checks refuse it and name it.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return corrupt("", err)
		}
		if err := w.count(); err != nil {
			return err
		}
		var k kind
		switch hdr.Typeflag {
		case tar.TypeReg:
			k = kindFile
		case tar.TypeDir:
			k = kindDir
		case tar.TypeSymlink:
			k = kindSymlink
		case tar.TypeLink:
			k = kindHardlink
		case tar.TypeXGlobalHeader:
			continue // pax defaults for later entries; archive/tar applies them
		default:
			return refusef("entry %q: unsupported type %s", hdr.Name, tarType(hdr.Typeflag))
		}
		name, skip, err := w.place(hdr.Name, k)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		e := entry{name: name, kind: k, exec: hdr.Mode&0o111 != 0}
		switch k {
		case kindSymlink:
			if e.target, err = linkTarget(name, hdr.Linkname); err != nil {
				return err
			}
		case kindHardlink:
			if e.target, err = w.hardlinkTarget(name, hdr.Linkname); err != nil {
				return err
			}
		case kindFile:
			if err := w.file(e, tr); err != nil {
				return err
			}
			continue
		}
		if err := w.fn(e, nil); err != nil {
			return err
		}
	}
	// The tar end marker may come before the end of the gzip stream: read
	// the rest so a truncated stream or a bad checksum is still caught.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return corrupt("", err)
	}
	return nil
}

// tarType names a tar type flag for an error.
func tarType(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeGNUSparse:
		return "sparse file"
	}
	return fmt.Sprintf("%q", t)
}

// file hands a regular file's data to fn through the archive-wide counter,
// then reads whatever fn left.
func (w *walker) file(e entry, r io.Reader) error {
	w.files.r, w.files.entry = r, e.name
	if err := w.fn(e, &w.files); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, &w.files); err != nil {
		return err
	}
	return nil
}

// count counts one more entry read from the archive.
func (w *walker) count() error {
	w.info.Entries++
	if w.info.Entries > w.lim.MaxEntries {
		return tooLargef("more than %d entries", w.lim.MaxEntries)
	}
	return nil
}

// place checks an entry's name against the entries before it and records
// it. skip is true for the root directory itself ("./" in many tarballs),
// which is already there.
func (w *walker) place(raw string, k kind) (name string, skip bool, err error) {
	name, err = cleanName(raw)
	if err != nil {
		return "", false, err
	}
	if name == "." {
		if k == kindDir {
			return "", true, nil
		}
		return "", false, refusef("entry %q: names the root directory", raw)
	}
	// Every parent must be a directory, never a symlink: writing through a
	// link an earlier entry made could write anywhere it points.
	for i := range len(name) {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		switch pk, ok := w.paths[parent]; {
		case !ok:
			w.paths[parent] = kindImplied
		case pk == kindSymlink:
			return "", false, refusef("entry %q: parent %q is a symlink", raw, parent)
		case pk == kindFile || pk == kindHardlink:
			return "", false, refusef("entry %q: parent %q is a file", raw, parent)
		}
	}
	switch prev, ok := w.paths[name]; {
	case !ok:
		w.paths[name] = k
	case prev == kindImplied && k == kindDir:
		w.paths[name] = kindDir
	case prev == kindImplied:
		return "", false, refusef("entry %q: conflicts with a directory of the same name", raw)
	default:
		return "", false, refusef("duplicate entry %q", raw)
	}
	if len(w.paths) > w.lim.MaxEntries {
		return "", false, tooLargef("more than %d files and directories", w.lim.MaxEntries)
	}
	return name, false, nil
}

// hardlinkTarget checks that a hard link names an earlier regular file,
// so it adds no new data and cannot reach outside the archive.
func (w *walker) hardlinkTarget(name, target string) (string, error) {
	t, err := cleanName(target)
	if k := w.paths[t]; err != nil || k != kindFile && k != kindHardlink {
		return "", refusef("hard link %q: target %q is not an earlier file", name, target)
	}
	return t, nil
}

// cleanName is apitype.CleanEntryName, its refusal an *Error.
func cleanName(raw string) (string, error) {
	name, err := apitype.CleanEntryName(raw)
	if err != nil {
		return "", refused(err)
	}
	return name, nil
}

// linkTarget is apitype.CleanLinkTarget, its refusal an *Error.
func linkTarget(name, target string) (string, error) {
	t, err := apitype.CleanLinkTarget(name, target)
	if err != nil {
		return "", refused(err)
	}
	return t, nil
}

// counter counts the bytes read through it and fails once they pass max:
// headers can lie about sizes, bytes read cannot. Other read errors become
// refusals naming the entry being read.
type counter struct {
	r     io.Reader
	n     int64 // bytes read so far
	max   int64
	what  string // what is counted, for the error
	entry string // the entry being read, if any
}

func (c *counter) Read(p []byte) (int, error) {
	left := c.max - c.n
	if left < 0 {
		return 0, c.tooLarge()
	}
	// Ask for at most one byte past the limit: enough to see it passed.
	if int64(len(p)) > left {
		p = p[:left+1]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, c.tooLarge()
	}
	if err != nil && err != io.EOF {
		return n, corrupt(c.entry, err)
	}
	return n, err
}

func (c *counter) tooLarge() *Error {
	if c.entry == "" {
		return tooLargef("%s passes %d bytes", c.what, c.max)
	}
	return tooLargef("%s passes %d bytes (at entry %q)", c.what, c.max, c.entry)
}

// ErrNoFile is a ReadFile of a name the archive does not hold as a file.
var ErrNoFile = errors.New("archive: no such file")

// ReadFile returns the contents of the regular file name (a slash path
// relative to the root) in the archive, reading at most max bytes of it, with
// the same checks as Inspect.
func ReadFile(r io.ReaderAt, size int64, lim Limits, name string, max int64) ([]byte, error) {
	want := path.Clean(strings.TrimPrefix(name, "./"))
	var data []byte
	found := false
	_, err := walk(r, size, lim, func(e entry, rd io.Reader) error {
		if e.kind != kindFile || e.name != want {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(rd, max+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > max {
			return tooLargef("%s is more than %d bytes", name, max)
		}
		data, found = b, true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", name, ErrNoFile)
	}
	return data, nil
}
