package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" && cfg.URL == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = 100 * time.Millisecond
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
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
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			break
		}
		if err != nil {
			release()
			t.Fatal(err)
		}
		fds = append(fds, fd)
		if len(fds) > 1<<20 {
			release()
			t.Skip("no descriptor limit to reach")
		}
	}
	t.Cleanup(release)
	return release
}

// TestRecoversFromDescriptorExhaustion: running out of descriptors leaves
// the embedded server's filestores with a sticky write error, so that
// every write fails until JetStream restarts. The store restarts it by
// itself once descriptors are to be had again.
func TestRecoversFromDescriptorExhaustion(t *testing.T) {
	s := openTest(t, Config{})
	ctx := context.Background()
	if _, err := s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "t", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	kv, err := s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.JS.Publish(ctx, "t.a", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); !h.Writable {
		t.Fatalf("a fresh store is not writable: %+v", h)
	}

	release := exhaustDescriptors(t)
	// Writes go on while the descriptors are gone, as a flood's would;
	// the server's periodic sync needs files too.
	failed := false
	deadline := time.Now().Add(20 * time.Second)
	for !failed && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := s.JS.Publish(pctx, "t.a", []byte("during"))
		cancel()
		failed = err != nil && s.Writable() != nil
	}
	release()
	if !failed {
		t.Fatal("writes never failed while the process had no descriptors")
	}

	waitFor(t, "the store is writable again", func() bool { return s.Writable() == nil })
	if h := s.Health(); h.Restarts < 1 {
		t.Errorf("health %+v: want a JetStream restart", h)
	}
	for _, subj := range []string{"t.a", "t.b"} {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.JS.Publish(pctx, subj, []byte("after"))
		cancel()
		if err != nil {
			t.Fatalf("publish after recovery: %v", err)
		}
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("a bucket write after recovery: %v", err)
	}
	m, err := s.JS.Stream(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	first, err := m.GetMsg(ctx, 1)
	if err != nil || string(first.Data) != "before" {
		t.Fatalf("the message stored before: %v %q", err, first.Data)
	}
}

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
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file in dir until the disk has at most leave bytes free.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	free, _, err := diskSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "filler-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), n)]); err != nil {
			break // full
		}
	}
	return f.Name()
}

// TestFullDisk: under the reserve, writes are refused with ErrFull
// before JetStream runs out of space; a disk filled past that (JetStream
// then turns itself off) works again once space is freed, without a
// restart of the node.
func TestFullDisk(t *testing.T) {
	dir := smallDisk(t, 256)
	s := openTest(t, Config{Dir: dir})
	ctx := context.Background()
	sp := s.Space()
	if sp.Bytes <= 0 || sp.Bytes > 256<<20 || sp.Reserve != minReserve {
		t.Fatalf("space of a 256 MB disk: %+v", sp)
	}
	if _, err := s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "t", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}

	// Under the reserve: refused at the edge.
	filler := fill(t, dir, sp.Reserve/2)
	waitFor(t, "the store says it is full", func() bool { return errors.Is(s.Writable(), ErrFull) })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store is writable again", func() bool { return s.Writable() == nil })

	// Full to the last byte, with a write that goes through anyway.
	filler = fill(t, dir, 0)
	big := make([]byte, 512<<10)
	for i := 0; i < 3; i++ {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		s.JS.Publish(pctx, "t.a", big) //nolint:errcheck // expected to fail
		cancel()
	}
	waitFor(t, "the store says it is full", func() bool { return errors.Is(s.Writable(), ErrFull) })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store is writable again", func() bool { return s.Writable() == nil })
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.JS.Publish(pctx, "t.a", []byte("after")); err != nil {
		t.Fatalf("publish once space is back: %v (health %+v)", err, s.Health())
	}
}
