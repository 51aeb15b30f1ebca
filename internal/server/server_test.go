package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/server"
)

func staged(t *testing.T, dir string, files map[string]string) *registry.Staged {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body)) //nolint:errcheck // into a buffer
	}
	zw.Close()
	s, err := registry.Stage(&buf, dir, archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ptr[T any](v T) *T { return &v }

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, server.Config{DataDir: dir})
	tok := n.AdminToken()
	n.stop(t)
	fi, err := os.Stat(filepath.Join(dir, auth.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if len(tok) < 32 {
		t.Errorf("token %q is short", tok)
	}
	n = startNode(t, server.Config{DataDir: dir})
	if n.AdminToken() != tok {
		t.Errorf("restart made a new token")
	}
	n2 := startNode(t, server.Config{DataDir: t.TempDir(), AdminToken: "given"})
	if n2.AdminToken() != "given" {
		t.Errorf("configured token not used")
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := startNode(t, server.Config{DataDir: dir})
	reg := n.Registry()
	f, err := reg.Create(ctx, registry.Config{Name: "hello", Runtime: ptr("nodejs"), Handler: ptr("index.handler")},
		staged(t, t.TempDir(), map[string]string{"index.js": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Publish(ctx, "hello", "v1", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.PutAlias(ctx, "hello", registry.Alias{Name: "live", Version: 1}, 0); err != nil {
		t.Fatal(err)
	}
	n.stop(t)

	n = startNode(t, server.Config{DataDir: dir})
	reg = n.Registry()
	got, err := reg.Get(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got.CodeSHA256 != f.CodeSHA256 || got.Revision != f.Revision {
		t.Errorf("after restart: %+v, want %+v", got, f)
	}
	if _, err := reg.GetVersion(ctx, "hello", 1); err != nil {
		t.Error(err)
	}
	if a, err := reg.GetAlias(ctx, "hello", "live"); err != nil || a.Version != 1 {
		t.Errorf("alias after restart: %+v %v", a, err)
	}
	rc, err := reg.Code(ctx, f.CodeSHA256)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
}

func TestTwoNodesShareNATS(t *testing.T) {
	ctx := context.Background()
	a := startNode(t, server.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if !strings.HasPrefix(a.NATSURL(), "nats://127.0.0.1:") {
		t.Fatalf("NATS URL %q", a.NATSURL())
	}
	b := startNode(t, server.Config{DataDir: t.TempDir(), NATSURL: a.NATSURL()})

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := b.Registry().Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Registry().Create(ctx, registry.Config{Name: "hello", Runtime: ptr("provided")},
		staged(t, t.TempDir(), map[string]string{"bootstrap": "#!/bin/sh\n"})); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c.Kind != registry.KindFunction || c.Function != "hello" || c.Deleted {
			t.Errorf("change %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node b did not see node a's deploy")
	}
	f, err := b.Registry().Get(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := b.Registry().Code(ctx, f.CodeSHA256)
	if err != nil {
		t.Fatalf("node b cannot read the code: %v", err)
	}
	rc.Close()
	if err := b.Registry().Delete(ctx, "hello", 0); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c.Function != "hello" || !c.Deleted {
			t.Errorf("change %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delete change")
	}
	if _, err := a.Registry().Get(ctx, "hello"); err == nil {
		t.Error("node a still sees a function node b deleted")
	}
}

func TestPortInUse(t *testing.T) {
	a := startNode(t, server.Config{DataDir: t.TempDir()})
	_, err := server.Start(context.Background(), server.Config{DataDir: t.TempDir(), Listen: strings.TrimPrefix(a.URL(), "http://")})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("second node on a taken port: %v", err)
	}
}

// A second Shutdown, and one at the same time as the first, return the
// first's result rather than block.
func TestShutdownTwice(t *testing.T) {
	n := startNode(t, server.Config{DataDir: t.TempDir()})
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- n.Shutdown(context.Background()) }()
	}
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a second Shutdown blocks")
		}
	}
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("a third shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Shutdown after the node stopped blocks")
	}
}

// A node that fails part way through its start closes what it opened:
// the same data dir starts a node at once after, on the same port.
func TestFailedStartCleansUp(t *testing.T) {
	dir := t.TempDir()
	// The wasm runtime's cache dir is a file: the start fails late, with
	// the store, the registry, the logs and the sandbox open.
	if err := os.WriteFile(filepath.Join(dir, "wasm-cache"), []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if n, err := server.Start(context.Background(), server.Config{DataDir: dir, Listen: addr}); err == nil {
		stop(t, n)
		t.Fatal("a node started with its wasm cache dir a file")
	} else if !strings.Contains(err.Error(), "wasm") {
		t.Errorf("the failed start's error: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "wasm-cache")); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, server.Config{DataDir: dir, Listen: addr})
	n.stop(t)
}
