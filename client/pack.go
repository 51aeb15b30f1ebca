package client

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
)

// PackError is a tree Pack refuses to pack: a name or symlink the node
// would refuse or read differently, or a file type a code archive cannot
// hold. Pack's other errors are the filesystem's or the writer's.
type PackError struct {
	Err error // what is wrong, naming the path
}

// The "archive: " prefix is what the wisp CLI has always printed for these.
func (e *PackError) Error() string { return "archive: " + e.Err.Error() }

func (e *PackError) Unwrap() error { return e.Err }

func packRefusef(format string, args ...any) *PackError {
	return &PackError{Err: fmt.Errorf(format, args...)}
}

// Pack writes a zip of dir to w, for Client.CreateFunction and
// Client.UpdateCode. The node addresses code by the sha256 of the archive,
// so the same tree always packs to the same bytes: entries are sorted by
// name, every time is 1980-01-01, and modes are reduced to what the node
// unpacks (0644, or 0755 for a file with any executable bit; directories
// 0755). Directories are stored, so empty ones survive. Symlinks are stored
// as zip symlinks, and must point inside dir. Anything named .git is
// skipped, at any depth.
//
// Whatever Pack writes, the node accepts (within its size limits): a name
// or link it would refuse or read differently (apitype.CleanEntryName,
// apitype.CleanLinkTarget) is refused here instead, as a *PackError.
func Pack(dir string, w io.Writer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("archive: pack: %w", err)
	}
	defer root.Close()

	var items []packItem
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.Name() == ".git" { // version control, not code
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		name, err := apitype.CleanEntryName(p)
		if err != nil {
			return &PackError{Err: err}
		}
		if name != p {
			return packRefusef("%q cannot be packed: it would unpack as %q", p, name)
		}
		it := packItem{path: p, name: p, typ: d.Type()}
		if d.IsDir() {
			it.name += "/"
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return packError(err)
	}
	slices.SortFunc(items, func(a, b packItem) int { return strings.Compare(a.name, b.name) })

	zw := zip.NewWriter(w)
	for _, it := range items {
		if err := packEntry(zw, root, it); err != nil {
			return packError(err)
		}
	}
	if err := zw.Close(); err != nil {
		return packError(err)
	}
	return nil
}

// packItem is one path of the tree to pack.
type packItem struct {
	path string      // slash-separated, relative to the root
	name string      // the zip entry name: path, with a trailing slash for a directory
	typ  fs.FileMode // type bits, not followed through symlinks
}

// packError keeps a refusal as it is and marks any other error as Pack's.
func packError(err error) error {
	if refused, ok := errors.AsType[*PackError](err); ok {
		return refused
	}
	return fmt.Errorf("archive: pack: %w", err)
}

func packEntry(zw *zip.Writer, root *os.Root, it packItem) error {
	hdr := &zip.FileHeader{
		Name:     it.name,
		Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), // the earliest a zip can hold
	}
	switch it.typ {
	case fs.ModeDir:
		hdr.SetMode(fs.ModeDir | 0o755)
		_, err := zw.CreateHeader(hdr)
		return err

	case fs.ModeSymlink:
		target, err := root.Readlink(it.path)
		if err != nil {
			return err
		}
		target, err = apitype.CleanLinkTarget(it.path, target)
		if err != nil {
			return &PackError{Err: err}
		}
		hdr.SetMode(fs.ModeSymlink | 0o777)
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		_, err = io.WriteString(fw, target)
		return err

	case 0:
		f, err := root.Open(it.path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s changed while packing", it.path)
		}
		perm := fs.FileMode(0o644)
		if fi.Mode().Perm()&0o111 != 0 {
			perm = 0o755
		}
		hdr.Method = zip.Deflate
		hdr.SetMode(perm)
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, f)
		return err
	}
	return packRefusef("%q cannot be packed: unsupported file type %v", it.path, it.typ)
}
