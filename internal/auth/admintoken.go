package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// AdminTokenFile is the admin token file's name in a node's data dir.
const AdminTokenFile = "admin.token"

// AdminToken returns the control API's bearer token kept in dataDir,
// making it (32 random bytes, hex, readable by the node's user only) on a
// node's first start.
func AdminToken(dataDir string, log *slog.Logger) (string, error) {
	path := filepath.Join(dataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		log.Info("admin token", "file", path)
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("server: read admin token: %w", err)
	}
	buf := make([]byte, 32)
	rand.Read(buf) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: write admin token: %w", err)
	}
	log.Info("admin token created", "file", path)
	return tok, nil
}
