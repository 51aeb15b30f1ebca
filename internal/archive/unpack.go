package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// Unpack extracts the archive into dir, which must exist and be empty, with
// the same checks as Inspect. On error it removes what it wrote, leaving dir
// empty. A refusal is an *Error; other errors are the filesystem's.
//
// Files get mode 0644, or 0755 if the archive gave them any executable bit;
// directories get 0755. Nothing else of the archive's modes is kept.
func Unpack(r io.ReaderAt, size int64, dir string, lim Limits) (Info, error) {
	// All writes go through an os.Root, so even a mistake in the checks
	// cannot write outside dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Info{}, fmt.Errorf("archive: unpack: %w", err)
	}
	defer root.Close()
	names, err := readNames(root)
	if err != nil {
		return Info{}, fmt.Errorf("archive: unpack: %w", err)
	}
	if len(names) > 0 {
		return Info{}, fmt.Errorf("archive: unpack: %s is not empty", dir)
	}
	u := unpacker{root: root, made: make(map[string]bool)}
	info, err := walk(r, size, lim, u.write)
	if err != nil {
		// dir was empty, so everything in it now is ours.
		if cerr := emptyRoot(root); cerr != nil {
			return Info{}, errors.Join(err, fmt.Errorf("archive: unpack: cleaning up: %w", cerr))
		}
		return Info{}, err
	}
	return info, nil
}

func readNames(root *os.Root) ([]string, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return names, err
}

// emptyRoot removes everything inside root.
func emptyRoot(root *os.Root) error {
	names, err := readNames(root)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := root.RemoveAll(name); err != nil {
			return err
		}
	}
	return nil
}

// unpacker writes checked entries under root.
type unpacker struct {
	root *os.Root
	made map[string]bool // directories already created
}

func (u *unpacker) write(e entry, data io.Reader) error {
	if e.kind == kindDir {
		return u.mkdir(e.name)
	}
	if err := u.mkdir(path.Dir(e.name)); err != nil {
		return err
	}
	var err error
	switch e.kind {
	case kindFile:
		err = u.writeFile(e, data)
	case kindSymlink:
		err = u.root.Symlink(e.target, e.name)
	case kindHardlink:
		err = u.root.Link(e.target, e.name)
	default:
		err = fmt.Errorf("unexpected entry kind %d", e.kind)
	}
	if refused, ok := errors.AsType[*Error](err); ok {
		return refused // the data was refused while being read
	}
	if err != nil {
		return fmt.Errorf("archive: unpack %q: %w", e.name, err)
	}
	return nil
}

func (u *unpacker) writeFile(e entry, data io.Reader) error {
	perm := fs.FileMode(0o644)
	if e.exec {
		perm = 0o755
	}
	// O_EXCL never follows a symlink at the name, and refuses to replace
	// anything: each path is written once.
	f, err := u.root.OpenFile(e.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	// The umask must not take bits away: the sandbox reads the code as
	// another user.
	err = f.Chmod(perm)
	if err == nil {
		_, err = io.Copy(f, data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdir creates the directory name and its missing parents, mode 0755.
func (u *unpacker) mkdir(name string) error {
	if name == "." || u.made[name] {
		return nil
	}
	if err := u.mkdir(path.Dir(name)); err != nil {
		return err
	}
	if err := u.root.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("archive: unpack %q: %w", name, err)
	}
	if err := u.root.Chmod(name, 0o755); err != nil {
		return fmt.Errorf("archive: unpack %q: %w", name, err)
	}
	u.made[name] = true
	return nil
}
