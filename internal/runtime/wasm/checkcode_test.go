package wasm

import (
	"archive/zip"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/registry"
)

// staged is an uploaded zip holding files, as a deploy stages it.
func staged(t *testing.T, files map[string][]byte) *registry.Staged {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := registry.Stage(&buf, t.TempDir(), archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCheckCode(t *testing.T) {
	code := staged(t, map[string][]byte{"main.wasm": tinyModule("_start", 0, ""), "junk.wasm": []byte("not a module")})
	for _, tt := range []struct {
		name, runtime, handler string
		wantErr                string // "" to accept
	}{
		{"a valid module", "wasm", "main.wasm", ""},
		{"no such module", "wasm", "other.wasm", `the handler "other.wasm" names no module in the code`},
		{"not a module", "wasm", "junk.wasm", "not a WebAssembly module"},
		{"another runtime is not looked at", "python", "junk.wasm", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCode(context.Background(), tt.runtime, tt.handler, code)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckCode: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckCode: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
