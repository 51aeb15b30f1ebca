package auth

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// The first call makes a token only the node's user reads; later calls
// return it, and a token written by hand (with a newline) is taken as it is.
func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	tok, err := AdminToken(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 {
		t.Errorf("token %q: %d characters, want 64", tok, len(tok))
	}
	fi, err := os.Stat(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("token file mode %v, want 0600", got)
	}
	again, err := AdminToken(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if again != tok {
		t.Errorf("second call: %q, want the first token %q", again, tok)
	}
	if err := os.WriteFile(filepath.Join(dir, AdminTokenFile), []byte("  by-hand\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := AdminToken(dir, log); err != nil || got != "by-hand" {
		t.Errorf("a token written by hand: %q, %v; want by-hand", got, err)
	}
}

// An unreadable token file stops the node rather than being replaced.
func TestAdminTokenUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, AdminTokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := AdminToken(dir, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a token path that is a directory: no error")
	}
}
