package apitype

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Entry names, path elements and link targets of a code archive longer than
// these are refused: no code needs them, and a filesystem may not hold them.
const (
	MaxEntryPath   = 1024 // bytes of an entry's name or a symlink's target
	MaxPathElement = 255  // bytes of one element of an entry's name
)

// CleanEntryName is the rule a node unpacks code by for an entry's name: it
// turns the name into a clean slash-separated path relative to the root,
// refusing any name that could reach outside it. Backslashes count as
// separators: archives made on Windows use them. The root itself cleans to
// ".". A packer that writes only names this returns unchanged writes an
// archive the node reads as it was meant.
func CleanEntryName(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty entry name")
	}
	if len(raw) > MaxEntryPath {
		return "", fmt.Errorf("entry %.40q...: name longer than %d bytes", raw, MaxEntryPath)
	}
	if strings.IndexByte(raw, 0) >= 0 {
		return "", fmt.Errorf("entry %q: name contains NUL", raw)
	}
	name := strings.ReplaceAll(raw, `\`, "/")
	if isAbs(name) {
		return "", fmt.Errorf("entry %q: absolute path", raw)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("entry %q: path has a \"..\" element", raw)
		}
		if len(elem) > MaxPathElement {
			return "", fmt.Errorf("entry %q: path element longer than %d bytes", raw, MaxPathElement)
		}
	}
	return path.Clean(name), nil
}

// CleanLinkTarget is the rule a node unpacks code by for a symlink: the link
// name -> target must stay inside the root, resolved from the link's
// directory. It returns the target cleaned, and the link must be written
// with that: the kernel resolves ".." after a symlink physically, so "b/.."
// with b -> "." would leave the root. name is the link's cleaned entry name.
func CleanLinkTarget(name, target string) (string, error) {
	switch {
	case target == "":
		return "", fmt.Errorf("symlink %q: empty target", name)
	case len(target) > MaxEntryPath:
		return "", fmt.Errorf("symlink %q: target longer than %d bytes", name, MaxEntryPath)
	case strings.IndexByte(target, 0) >= 0:
		return "", fmt.Errorf("symlink %q: target contains NUL", name)
	case strings.Contains(target, `\`):
		// A backslash is an ordinary character to the kernel but a
		// separator to CleanEntryName; refuse rather than check one and
		// write the other.
		return "", fmt.Errorf("symlink %q: target %q contains a backslash", name, target)
	case isAbs(target):
		return "", fmt.Errorf("symlink %q: absolute target %q", name, target)
	}
	t := path.Clean(target)
	if r := path.Join(path.Dir(name), t); r == ".." || strings.HasPrefix(r, "../") {
		return "", fmt.Errorf("symlink %q: target %q points outside the root", name, target)
	}
	return t, nil
}

// isAbs reports whether p is rooted: by a slash, or by a Windows drive.
func isAbs(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	return len(p) >= 2 && p[1] == ':' && ('a' <= p[0]|0x20 && p[0]|0x20 <= 'z')
}
