package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/wisp-dev/wisp/internal/archive"
)

// Staged is an uploaded archive that passed every check, held in a temp
// file until the registry stores it. Close removes the file.
type Staged struct {
	SHA256 string
	Size   int64
	Info   archive.Info
	file   *os.File
}

// ErrTooLarge is an upload over the packed-size limit.
var ErrTooLarge = errors.New("registry: code archive is too large")

// Stage copies an uploaded archive from r into a temp file in dir, hashing
// it, and checks every entry with lim. Nothing is stored yet.
func Stage(r io.Reader, dir string, lim archive.Limits) (*Staged, error) {
	lim = lim.WithDefaults()
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("registry: stage upload: %w", err)
	}
	s := &Staged{file: f}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, lim.MaxPacked+1))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("registry: read upload: %w", err)
	}
	if n > lim.MaxPacked {
		s.Close()
		return nil, fmt.Errorf("code archive is over %d MB: %w", lim.MaxPacked>>20, ErrTooLarge)
	}
	s.SHA256, s.Size = hex.EncodeToString(h.Sum(nil)), n
	s.Info, err = archive.Inspect(f, n, lim)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close removes the staged file.
func (s *Staged) Close() error {
	if s == nil || s.file == nil {
		return nil
	}
	s.file.Close()
	err := os.Remove(s.file.Name())
	s.file = nil
	return err
}

// ReadFile returns a file of the staged archive, at most max bytes.
func (s *Staged) ReadFile(name string, max int64) ([]byte, error) {
	return archive.ReadFile(s.file, s.Size, archive.Limits{}, name, max)
}
