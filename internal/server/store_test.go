package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
)

// smallDisk mounts a tmpfs of mb megabytes for a test, or skips saying
// why it cannot.
func smallDisk(t *testing.T, mb int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small disk needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(mb)+"m"); err != nil {
		t.Skipf("cannot mount a %d MB tmpfs: %v", mb, err)
	}
	// Unmounted after the node has stopped (cleanups run last in, first out).
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillDisk writes a file in dir until the disk has about leave bytes
// free, and returns its name.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	f, err := os.CreateTemp(dir, "filler-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), n)]); err != nil {
			break
		}
	}
	return f.Name()
}

// healthz returns /healthz's status and body.
func healthz(t *testing.T, n funcNode) (int, string) {
	t.Helper()
	res, err := http.Get(n.URL() + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != status {
		t.Errorf("%s: got %v, want HTTP %d", what, err, status)
	}
}

// TestSmallFullDisk: a node starts on a 256 MB data dir; with the disk
// full, writes answer 507 with a clear message and change nothing while
// reads and invocations go on, and writes work again once space is
// freed, without a restart.
func TestSmallFullDisk(t *testing.T) {
	dir := smallDisk(t, 256)
	n := startNode(t, server.Config{DataDir: dir})
	ctx := context.Background()
	n.deploy(t, helloGo(t), apitype.Config{Name: "hello", Runtime: ptr("provided")})
	if _, err := n.c.Invoke(ctx, "hello", []byte(`{"name":"a"}`), client.InvokeOptions{}); err != nil {
		t.Fatal(err)
	}

	filler := fillDisk(t, dir, 4<<20)
	waitUntil(t, 10*time.Second, "/healthz says the node cannot write", func() bool {
		status, _ := healthz(t, n)
		return status == http.StatusServiceUnavailable
	})
	if _, body := healthz(t, n); !strings.Contains(body, "free") {
		t.Errorf("/healthz on a full disk: %q", body)
	}

	_, err := deployErr(t, n, helloGo(t), apitype.Config{Name: "other", Runtime: ptr("provided")})
	wantStatus(t, "deploy on a full disk", err, http.StatusInsufficientStorage)
	var ce *client.Error
	if errors.As(err, &ce) && (ce.Type != "StorageFullException" || !strings.Contains(ce.Message, "disk is full")) {
		t.Errorf("deploy on a full disk: %+v", ce)
	}
	_, err = n.c.UpdateConfig(ctx, "hello", apitype.Config{Description: ptr("changed")}, 0)
	wantStatus(t, "update on a full disk", err, http.StatusInsufficientStorage)
	_, err = n.c.PublishEvent(ctx, "orders", []byte(`{"a":1}`), client.PublishOptions{})
	wantStatus(t, "publish on a full disk", err, http.StatusInsufficientStorage)
	_, err = n.c.CreateKey(ctx, "k")
	wantStatus(t, "a key on a full disk", err, http.StatusInsufficientStorage)
	_, err = n.c.InvokeAsync(ctx, "hello", []byte(`{"name":"e"}`), "")
	wantStatus(t, "an async invocation on a full disk", err, http.StatusInsufficientStorage)

	// Reads and invocations go on.
	f, err := n.c.GetFunction(ctx, "hello")
	if err != nil || f.Description != "" {
		t.Errorf("read on a full disk: %+v %v", f, err)
	}
	if _, err := n.c.GetFunction(ctx, "other"); err == nil {
		t.Error("the refused deploy left a function")
	}
	for i := 0; i < 3; i++ {
		if res, err := n.c.Invoke(ctx, "hello", []byte(`{"name":"b"}`), client.InvokeOptions{}); err != nil || res.FunctionError != "" {
			t.Fatalf("invoke on a full disk: %+v %v", res, err)
		}
	}
	// Their log lines are not sent to fail: dropped, and counted so.
	waitUntil(t, 10*time.Second, "log lines dropped for the full disk are counted", func() bool {
		fams, err := nodestats.Metrics(ctx, n.c)
		if err != nil {
			return false
		}
		for _, m := range fams["wisp_log_dropped_bytes_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["function"] == "hello" && labels["reason"] == "disk" && m.GetCounter().GetValue() > 0 {
				return true
			}
		}
		return false
	})

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "/healthz says ok again", func() bool {
		status, _ := healthz(t, n)
		return status == http.StatusOK
	})
	n.deploy(t, helloGo(t), apitype.Config{Name: "other", Runtime: ptr("provided")})
	if _, err := n.c.UpdateConfig(ctx, "hello", apitype.Config{Description: ptr("changed")}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.PublishEvent(ctx, "orders", []byte(`{"a":1}`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err := n.c.Invoke(ctx, "other", []byte(`{"name":"c"}`), client.InvokeOptions{}); err != nil || res.FunctionError != "" {
		t.Fatalf("invoke after the disk was freed: %+v %v", res, err)
	}
}

// exhaustDescriptors opens /dev/null until the process has no descriptor
// left, and returns a func that closes them all again.
func exhaustDescriptors(t *testing.T) func() {
	t.Helper()
	var fds []int
	release := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		fds = nil
	}
	t.Cleanup(release)
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			return release
		}
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		if len(fds) > 1<<20 {
			t.Skip("no descriptor limit to reach")
		}
	}
}

// TestRecoversAfterDescriptorsRunOut: when the node has run out of file
// descriptors once, JetStream's files keep a write error until it
// restarts; the node restarts it by itself once descriptors are back, so
// writes and metering work again without a restart of the node.
func TestRecoversAfterDescriptorsRunOut(t *testing.T) {
	n := startNode(t, server.Config{})
	ctx := context.Background()
	n.deploy(t, helloGo(t), apitype.Config{Name: "hello", Runtime: ptr("provided")})
	if _, err := n.c.Invoke(ctx, "hello", []byte(`{"name":"a"}`), client.InvokeOptions{}); err != nil {
		t.Fatal(err)
	}

	release := exhaustDescriptors(t)
	// While there are none, the node's own syncs and writes fail.
	time.Sleep(3 * time.Second) // JetStream syncs its files every 2 s
	release()

	waitUntil(t, 15*time.Second, "/healthz says ok", func() bool {
		status, _ := healthz(t, n)
		return status == http.StatusOK
	})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.c.UpdateConfig(wctx, "hello", apitype.Config{Description: ptr("after")}, 0); err != nil {
		t.Fatalf("a write after the descriptors came back: %v", err)
	}
	if _, err := n.c.PublishEvent(wctx, "orders", []byte(`{"a":1}`), client.PublishOptions{}); err != nil {
		t.Fatalf("a publish after the descriptors came back: %v", err)
	}
	if _, err := n.c.CreateKey(wctx, "k"); err != nil {
		t.Fatalf("a key after the descriptors came back: %v", err)
	}
	res, err := n.c.Invoke(wctx, "hello", []byte(`{"name":"b"}`), client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the call after recovery has a usage record", func() bool {
		recs, err := n.c.UsageRecords(ctx, "hello", "", 100)
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.RequestID == res.RequestID {
				return true
			}
		}
		return false
	})
}
