package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain makes the test binary the sandbox init when given InitArg, as
// wisp's main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		os.Exit(RunInit())
	}
	// A Go program's view of the network, run inside a sandbox.
	if len(os.Args) > 1 && os.Args[1] == interfacesProbeArg {
		os.Exit(probeInterfaces())
	}
	// Under -race, an init would sleep a second at its exit.
	if err := os.Setenv("GORACE", "atexit_sleep_ms=0"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// newTestManager returns a manager re-executing the test binary, or skips
// the test where sandboxes cannot be made.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox tests need root")
	}
	// Namespaces, tried without the package's code.
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		t.Skipf("namespaces unavailable here: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Self: self, SelfArgs: []string{InitArg}, StateDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var ids atomic.Int64

// testSpec returns a spec running script under sh, with a code dir.
func testSpec(t testing.TB, script string) Spec {
	t.Helper()
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "handler.txt"), []byte("code\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Writable by anyone on the host: only the sandbox's read-only mount
	// stops the runtime writing.
	if err := os.Chmod(code, 0o777); err != nil {
		t.Fatal(err)
	}
	return Spec{
		ID:      fmt.Sprintf("test-%d-%d", os.Getpid(), ids.Add(1)),
		Argv:    []string{"/bin/sh", "-c", script},
		Env:     []string{"PATH=/usr/bin:/bin"},
		CodeDir: code,
	}
}

// running is a started sandbox and its output.
type running struct {
	*Sandbox
	stdout, stderr *capture
}

// capture collects what a pipe carries until its end.
type capture struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// wait waits for the end of the output.
func (c *capture) wait(t testing.TB) string {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("output did not end")
	}
	return c.String()
}

// waitFor waits until the output holds s.
func (c *capture) waitFor(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(c.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output: %q", s, c.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newCapture(t testing.TB) (*capture, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			c.mu.Lock()
			c.buf.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				r.Close()
				return
			}
		}
	}()
	return c, w
}

// start starts spec with its output captured; the sandbox is closed when
// the test ends.
func start(t testing.TB, m *Manager, spec Spec) *running {
	t.Helper()
	out, outW := newCapture(t)
	errc, errW := newCapture(t)
	spec.Stdout, spec.Stderr = outW, errW
	s, err := m.Start(context.Background(), spec)
	outW.Close()
	errW.Close()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &running{Sandbox: s, stdout: out, stderr: errc}
}

// run runs spec to its end.
func run(t testing.TB, m *Manager, spec Spec) (ExitStatus, string, string) {
	t.Helper()
	r := start(t, m, spec)
	st, err := r.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st, r.stdout.wait(t), r.stderr.wait(t)
}

func TestIsolation(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, `
set -- /proc/[0-9]*; echo "procs=$*"
set -- /proc/$$/fd/*; echo "fds=$*"
echo "id=$(id -u):$(id -g):$(id -G):$(id -un)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status
tr -s ' ' < /proc/self/limits | grep -E '^Max (core file size|open files) '
for p in /etc/shadow /etc/gshadow /root /home "$STATE" /sys /run /var/lib; do
	if [ -e "$p" ]; then echo "present $p"; else echo "absent $p"; fi
done
echo "passwd=$(grep -c . /etc/passwd) $(grep ^wisp: /etc/passwd)"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo "pwd=$(pwd)"
echo "code=$(cat handler.txt)"
echo "env=$(env | grep -v -e ^PWD= -e ^OLDPWD= -e ^SHLVL= -e ^_= | sort | tr '\n' ' ')"
touch /var/task/x 2>&1; touch /usr/x 2>&1; touch /x 2>&1; touch /etc/x 2>&1; touch /dev/x 2>&1
echo x > /dev/null && echo "devnull=ok"
echo "urandom=$(head -c 16 /dev/urandom | wc -c)"
head -c 3M /dev/zero > /tmp/a && echo "tmp=ok"
dd if=/dev/zero of=/tmp/b bs=1M count=3 2>&1 | grep -o "No space left on device"
echo "tmpmode=$(stat -c %a /tmp)"
grep -E ' / | /tmp | /var/task ' /proc/self/mounts | sed 's/^/mount /'
`)
	state := m.stateDir
	spec.Env = append(spec.Env, "STATE="+state)
	spec.TmpMB = 4
	r := start(t, m, spec)
	st, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	out, errOut := r.stdout.wait(t), r.stderr.wait(t)
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	if st.Code != 0 || st.Signal != 0 || st.OOMKilled {
		t.Errorf("status %+v, want exit 0", st)
	}
	id := r.uid
	if lo, hi := m.ids.base, m.ids.base+m.ids.count; id < lo || id >= hi || r.gid != id {
		t.Errorf("uid %d, gid %d: want one id of the manager's [%d, %d)", id, r.gid, lo, hi)
	}
	want := []string{
		fmt.Sprintf("id=%[1]d:%[1]d:%[1]d:wisp\n", id),
		"CapInh:\t0000000000000000\n",
		"CapPrm:\t0000000000000000\n",
		"CapEff:\t0000000000000000\n",
		"CapBnd:\t0000000000000000\n",
		"CapAmb:\t0000000000000000\n",
		"NoNewPrivs:\t1\n",
		"Seccomp:\t2\n",
		"Seccomp_filters:\t1\n",
		// No core dumps, which a pipe core_pattern runs a host helper
		// for, and a bound on open files, which the runtime cannot raise.
		"Max core file size 0 0 bytes \n",
		fmt.Sprintf("Max open files %[1]d %[1]d files \n", maxOpenFiles),
		"absent /etc/shadow\n", "absent /etc/gshadow\n", "absent /root\n", "absent /home\n",
		"absent " + state + "\n", "absent /sys\n", "absent /run\n", "absent /var/lib\n",
		fmt.Sprintf("passwd=3 wisp:x:%[1]d:%[1]d:wisp:/tmp:/sbin/nologin\n", id),
		"hostname=wisp\n",
		"pwd=/var/task\n",
		"code=code\n",
		"env=PATH=/usr/bin:/bin STATE=" + state + " \n",
		"touch: cannot touch '/var/task/x': Read-only file system",
		"touch: cannot touch '/usr/x': Read-only file system",
		"touch: cannot touch '/x': Read-only file system",
		"touch: cannot touch '/etc/x': Read-only file system",
		"touch: cannot touch '/dev/x': Read-only file system",
		"devnull=ok\n",
		"urandom=16\n",
		"tmp=ok\n",
		"No space left on device\n",
		"tmpmode=1777\n",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in the output", w)
		}
	}
	// The shell alone: the init is hidden, being another user's, and its
	// threads took the pids after 1.
	procs, rest, _ := strings.Cut(out, "\n")
	if strings.Contains(procs, " ") || procs == "procs=/proc/1" || !strings.HasPrefix(procs, "procs=/proc/") {
		t.Errorf("got %q, want the shell's pid alone", procs)
	}
	// Stdio only, whatever this test process inherited; 3 is the glob's
	// reading of the dir.
	pid := strings.TrimPrefix(procs, "procs=/proc/")
	fds, _, _ := strings.Cut(rest, "\n")
	if want := fmt.Sprintf("fds=/proc/%[1]s/fd/0 /proc/%[1]s/fd/1 /proc/%[1]s/fd/2 /proc/%[1]s/fd/3", pid); fds != want {
		t.Errorf("got %q, want %q", fds, want)
	}
}

func TestExitStatus(t *testing.T) {
	m := newTestManager(t)
	for _, tc := range []struct {
		name   string
		script string
		term   bool // send the init SIGTERM once the script says "ready"
		want   ExitStatus
	}{
		{name: "zero", script: "exit 0", want: ExitStatus{Code: 0}},
		{name: "code", script: "exit 3", want: ExitStatus{Code: 3}},
		{name: "signal", script: "kill -KILL $$", want: ExitStatus{Code: -1, Signal: syscall.SIGKILL}},
		{name: "sigterm forwarded", script: "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
			term: true, want: ExitStatus{Code: 7}},
		{name: "orphans do not hold the end", script: "sleep 100 & exit 4", want: ExitStatus{Code: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, m, testSpec(t, tc.script))
			if tc.term {
				r.stdout.waitFor(t, "ready")
				if err := syscall.Kill(r.Pid(), syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			got, err := r.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v (stderr %q)", got, tc.want, r.stderr.wait(t))
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	m := newTestManager(t)
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{name: "bad id", edit: func(s *Spec) { s.ID = "../x" }, want: "invalid instance id"},
		{name: "relative argv", edit: func(s *Spec) { s.Argv = []string{"sh"} }, want: "absolute path"},
		{name: "no executable", edit: func(s *Spec) { s.Argv = []string{"/var/task/bootstrap"} },
			want: "start the runtime: fork/exec /var/task/bootstrap: no such file or directory"},
		{name: "no code dir", edit: func(s *Spec) { s.CodeDir = "/nonexistent/code" },
			want: "mount /nonexistent/code read-only: no such file or directory"},
		{name: "bad dir", edit: func(s *Spec) { s.Dir = "/nonexistent" }, want: "working dir: stat /nonexistent: no such file or directory"},
		{name: "bad network", edit: func(s *Spec) { s.Network = "bridge" }, want: "unknown network"},
		{name: "root read-only", edit: func(s *Spec) { s.ReadOnly = []string{"/"} }, want: "state dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, "exit 0")
			tc.edit(&spec)
			s, err := m.Start(context.Background(), spec)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to hold %q", err, tc.want)
			}
			// Nothing is left behind.
			for _, dir := range m.cg.parents {
				if _, err := os.Stat(filepath.Join(dir, spec.ID)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("cgroup %s: %v", filepath.Join(dir, spec.ID), err)
				}
			}
			if _, err := os.Stat(filepath.Join(m.stateDir, spec.ID)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("scratch dir: %v", err)
			}
		})
	}
}

func TestStartCanceled(t *testing.T) {
	m := newTestManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	spec := testSpec(t, "exit 0")
	if s, err := m.Start(ctx, spec); !errors.Is(err, context.Canceled) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestKill(t *testing.T) {
	m := newTestManager(t)
	r := start(t, m, testSpec(t, "sleep 100 & sleep 100 & (sleep 100 &); echo ready; sleep 100"))
	r.stdout.waitFor(t, "ready")
	g := r.cg
	if pids, err := g.procs(); err != nil || len(pids) < 5 {
		t.Fatalf("procs %v, %v; want the init, sh and 4 sleeps", pids, err)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	st, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if want := (ExitStatus{Code: -1, Signal: syscall.SIGKILL}); st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	if pids, err := g.procs(); err != nil || len(pids) != 0 {
		t.Errorf("after Wait, procs %v, %v; want none", pids, err)
	}
	// The output ends: nothing of the sandbox holds the pipes.
	r.stdout.wait(t)
	if err := r.Kill(); err != nil {
		t.Errorf("Kill after the end: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range g.dirs {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s: %v", dir, err)
		}
	}
	if _, err := os.Stat(r.scratch); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scratch dir: %v", err)
	}
}

func TestForkBomb(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, "b() { b | b & }; b; sleep 100")
	spec.PidsMax = 32
	r := start(t, m, spec)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		events, err := os.ReadFile(filepath.Join(r.cg.pids, "pids.events"))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := keyedValue(events, "max"); err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pids.events %q: no fork refused", events)
		}
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if pids, err := r.cg.procs(); err != nil || len(pids) != 0 {
		t.Errorf("after Wait, procs %v, %v; want none", pids, err)
	}
	if peak, err := os.ReadFile(filepath.Join(r.cg.pids, "pids.peak")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(peak))); err != nil || n > spec.PidsMax {
			t.Errorf("pids.peak %q over %d", peak, spec.PidsMax)
		}
	}
}

func TestOOM(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, "head -c 300M /dev/zero | tail")
	spec.MemoryMB = 64
	r := start(t, m, spec)
	st, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !st.OOMKilled || st.Code != 128+int(syscall.SIGKILL) {
		t.Errorf("got %+v, want OOMKilled and the shell's 137 (stderr %q)", st, r.stderr.wait(t))
	}
	if mb := r.MaxMemoryMB(); mb < 60 || mb > 64 {
		t.Errorf("MaxMemoryMB %d, want about 64", mb)
	}

	// And one that stays under its limit is not.
	r = start(t, m, testSpec(t, "head -c 10M /dev/zero | tail | wc -c"))
	st, err = r.Wait()
	if err != nil || st.OOMKilled || st.Code != 0 {
		t.Errorf("got %+v, %v; want a clean exit", st, err)
	}
	if mb := r.MaxMemoryMB(); mb < 10 {
		t.Errorf("MaxMemoryMB %d, want over 10", mb)
	}
}

func TestNetworkNone(t *testing.T) {
	m := newTestManager(t)
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	_, port, _ := net.SplitHostPort(host.Addr().String())
	spec := testSpec(t, `
if (exec 3<>/dev/tcp/127.0.0.1/$HOSTPORT) 2>/dev/null; then echo host=reached; else echo host=unreachable; fi
for port in 9001 9002; do
	exec 3<>/dev/tcp/127.0.0.1/$port
	printf 'GET /ping HTTP/1.0\r\nHost: x\r\n\r\n' >&3
	tail -n 1 <&3; echo
	exec 3<&-
done
`)
	spec.Argv[0] = "/bin/bash"
	spec.Env = append(spec.Env, "HOSTPORT="+port)
	r := start(t, m, spec)
	runtimeAPI, wispAPI := r.Listeners()
	if runtimeAPI == nil || wispAPI == nil {
		t.Fatal("no listeners")
	}
	for _, l := range []net.Listener{runtimeAPI, wispAPI} {
		if got := l.Addr().String(); got != RuntimeAPIAddr && got != WispAPIAddr {
			t.Errorf("listener at %s", got)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pong from %s on %s", r.URL.Path, l.Addr())
		})}
		go srv.Serve(l)
		defer srv.Close()
	}
	st, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	out := r.stdout.wait(t)
	for _, want := range []string{"host=unreachable\n", "pong from /ping on 127.0.0.1:9001\n", "pong from /ping on 127.0.0.1:9002\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q (stderr %q)", want, out, r.stderr.wait(t))
		}
	}
	if st.Code != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestNetworkHost(t *testing.T) {
	m := newTestManager(t)
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from the host\n")
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(host.Addr().String())
	spec := testSpec(t, `exec 3<>/dev/tcp/127.0.0.1/$HOSTPORT && cat <&3`)
	spec.Argv[0] = "/bin/bash"
	spec.Env = append(spec.Env, "HOSTPORT="+port)
	spec.Network = "host"
	r := start(t, m, spec)
	if a, b := r.Listeners(); a != nil || b != nil {
		t.Errorf("listeners %v %v with the host's network", a, b)
	}
	if _, err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if out := r.stdout.wait(t); out != "hello from the host\n" {
		t.Errorf("got %q (stderr %q)", out, r.stderr.wait(t))
	}
}

func TestReadOnlyPaths(t *testing.T) {
	m := newTestManager(t)
	extra := t.TempDir()
	if err := os.Chmod(extra, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(extra, "lib.txt"), []byte("extra\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := t.TempDir()
	if err := os.Chmod(rt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rt, "bootstrap.sh"), []byte("echo runtime\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `cat "$EXTRA/lib.txt"; . /var/runtime/bootstrap.sh; touch "$EXTRA/x" 2>&1`
	spec := testSpec(t, script)
	spec.ReadOnly = []string{extra}
	spec.RuntimeDir = rt
	spec.Env = append(spec.Env, "EXTRA="+extra)
	// An interpreter outside the system dirs, as pyenv installs them.
	matches, _ := filepath.Glob("/root/.pyenv/versions/3.*/bin/python3")
	if len(matches) > 0 {
		spec.ReadOnly = append(spec.ReadOnly, filepath.Dir(filepath.Dir(matches[0])))
		spec.Argv[2] += "; " + matches[0] + ` -c 'import json, ssl; print("python", json.dumps([1]))'`
	}
	st, out, errOut := run(t, m, spec)
	want := []string{"extra\n", "runtime\n", "Read-only file system"}
	if len(matches) > 0 {
		want = append(want, "python [1]\n")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in %q (stderr %q)", w, out, errOut)
		}
	}
	if st.Code != 0 {
		t.Errorf("status %+v", st)
	}
}

// BenchmarkStart measures a sandbox's start to exit of /bin/true against
// a bare fork/exec of it in the same run, and reports the ratio.
func BenchmarkStart(b *testing.B) {
	m := newTestManager(b)
	code := b.TempDir()
	if err := os.Chmod(code, 0o755); err != nil {
		b.Fatal(err)
	}
	var sandboxed, bare []time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := m.Start(context.Background(), Spec{ID: fmt.Sprintf("bench-%d", ids.Add(1)), Argv: []string{"/bin/true"}, CodeDir: code})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Wait(); err != nil {
			b.Fatal(err)
		}
		sandboxed = append(sandboxed, time.Since(t0))
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(t0))
	}
	slices.Sort(sandboxed)
	slices.Sort(bare)
	ms, mb := sandboxed[len(sandboxed)/2], bare[len(bare)/2]
	b.ReportMetric(float64(ms)/float64(mb), "x-forkexec")
	b.ReportMetric(float64(ms.Microseconds()), "µs-median-sandbox")
	b.ReportMetric(float64(mb.Microseconds()), "µs-median-forkexec")
}

func TestNewManagerErrors(t *testing.T) {
	newTestManager(t) // skips where sandboxes cannot be made
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  ManagerConfig
		want string
	}{
		{name: "no self", cfg: ManagerConfig{StateDir: t.TempDir()}, want: "Self is required"},
		{name: "negative ids", cfg: ManagerConfig{Self: self, StateDir: t.TempDir(), IDBase: -5},
			want: "ids -5+65536: not a range of host ids past root"},
		{name: "missing self", cfg: ManagerConfig{Self: "/nonexistent/wisp", StateDir: t.TempDir()},
			want: "the init executable: stat /nonexistent/wisp"},
		// Self runs, but not as the init: it exits without answering.
		{name: "args that do not reach the init", cfg: ManagerConfig{Self: self, SelfArgs: []string{"-test.run=^$"}, StateDir: t.TempDir()},
			want: "sandbox: namespaces: trial init (" + self + " -test.run=^$): control socket: closed by the peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewManager(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzValidID checks validID against the regexp it replaces, which was
// too slow to compile at each init's start.
func FuzzValidID(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	for _, id := range []string{"", "a", "fn-1.v2_x", ".x", "-x", "_x", "a/b", "a b", "é", "a\n",
		strings.Repeat("a", 128), strings.Repeat("a", 129)} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := validID(id), re.MatchString(id); got != want {
			t.Errorf("validID(%q) = %v, want %v", id, got, want)
		}
	})
}

// MaxMemoryMB says the peak as it is now at every call (its file is kept
// open between reads).
func TestMaxMemoryRead(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, "sleep 1; head -c 40M /dev/zero | tail; sleep 30")
	r := start(t, m, spec)
	if mb := r.MaxMemoryMB(); mb <= 0 || mb >= 40 {
		t.Fatalf("MaxMemoryMB at the start %d, want a few MB", mb)
	}
	deadline := time.Now().Add(20 * time.Second)
	for r.MaxMemoryMB() < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("MaxMemoryMB %d after the shell held 40 MB, want 40 or more", r.MaxMemoryMB())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Kill() //nolint:errcheck // the test is over
}

// The instances of one group share a cgroup of the group's for the CPU,
// removed with the last of them.
func TestGroups(t *testing.T) {
	m := newTestManager(t)
	a, b := testSpec(t, "sleep 30"), testSpec(t, "sleep 30")
	a.Group, b.Group = "fn-test-group", "fn-test-group"
	ra, rb := start(t, m, a), start(t, m, b)
	group := filepath.Dir(ra.cg.cpu)
	if filepath.Base(group) != groupPrefix+"fn-test-group" || filepath.Dir(rb.cg.cpu) != group {
		t.Fatalf("cpu cgroups %s and %s, want both in a group's", ra.cg.cpu, rb.cg.cpu)
	}
	ra.Kill() //nolint:errcheck // checked below
	ra.Wait() //nolint:errcheck // killed
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(group); err != nil {
		t.Fatalf("the group went with one of its two instances: %v", err)
	}
	rb.Kill() //nolint:errcheck // checked below
	rb.Wait() //nolint:errcheck // killed
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(group); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the group stays after its last instance: %v", err)
	}
	bad := testSpec(t, "true")
	bad.Group = "../escape"
	if _, err := m.Start(context.Background(), bad); err == nil {
		t.Fatal("a group named ../escape was taken")
	}
}

// On a node whose hard limit on open files is under the sandbox's, the
// sandbox takes the node's rather than failing to start. A hard limit
// lowered cannot be raised again without CAP_SYS_RESOURCE, so the test
// lowers it in a process of its own: this test binary, run again.
func TestOpenFilesUnderLowHardLimit(t *testing.T) {
	const low = 2048
	if os.Getenv("WISP_TEST_LOW_NOFILE") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenFilesUnderLowHardLimit$", "-test.v")
		cmd.Env = append(os.Environ(), "WISP_TEST_LOW_NOFILE=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("the test in a process with a hard limit of %d: %v\n%s", low, err, out)
		}
		return
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: low, Max: low}); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t)
	r := start(t, m, testSpec(t, "ulimit -Hn; ulimit -n"))
	st, err := r.Wait()
	if err != nil || st.Code != 0 {
		t.Fatalf("exit %+v, %v; stderr %q", st, err, r.stderr.wait(t))
	}
	if out := r.stdout.wait(t); out != "2048\n2048\n" {
		t.Errorf("limits inside %q, want 2048 twice", out)
	}
}

// A node starting removes the empty cgroups a killed node left, once
// they are old enough not to be another node's in the making.
func TestStaleCgroupsSwept(t *testing.T) {
	m := newTestManager(t)
	parent := m.cg.parents["cpu"]
	if m.cg.version == 2 {
		parent = m.cg.parents[""]
	}
	stale, young := filepath.Join(parent, "test-stale-"+strconv.Itoa(os.Getpid())), filepath.Join(parent, "test-young-"+strconv.Itoa(os.Getpid()))
	for _, dir := range []string{stale, young} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Rmdir(dir) })
	}
	old := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Skipf("cannot age a cgroup here: %v", err)
	}
	newTestManager(t)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale cgroup is still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("the young cgroup went: %v", err)
	}
}
