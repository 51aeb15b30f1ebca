package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/server"
)

// floodNodeEnv names the data dir of the node TestConnectionFlood runs
// as a process of its own.
const floodNodeEnv = "WISP_TEST_FLOOD_NODE_DIR"

// floodFileLimit is the flooded node's hard descriptor limit: low enough
// that the flood below outnumbers it, and as high as the sandbox init
// sets its own (it cannot raise its hard limit).
const floodFileLimit = 4096

// TestFloodNodeProcess is the node of TestConnectionFlood: this test
// binary, run again with floodNodeEnv set, with a hard descriptor limit of
// floodFileLimit and a soft one of 1,024 (the node raises it). It serves
// until its stdin closes.
func TestFloodNodeProcess(t *testing.T) {
	dir := os.Getenv(floodNodeEnv)
	if dir == "" {
		t.Skip("the node of TestConnectionFlood, run by it")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 1024, Max: floodFileLimit}); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	n := startNode(t, server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(logFile, nil))})
	if err := announce(dir, n.Node); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck // any end is the parent's word to stop
	n.stop(t)
}

// floodNodeProc is the node of TestFloodNodeProcess, running.
type floodNodeProc struct {
	url, token, dir string
	pid             int
}

// floodNode starts the node of TestFloodNodeProcess.
func floodNode(t *testing.T) floodNodeProc {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodNodeProcess$", "-test.v")
	cmd.Env = append(os.Environ(), floodNodeEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // its output says
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill() //nolint:errcheck // it may have just gone
			<-exited
		}
		if t.Failed() {
			log, err := os.ReadFile(filepath.Join(dir, "node.log"))
			if err != nil {
				t.Logf("the node's log: %v", err)
			}
			t.Logf("node process:\n%s\nnode log (last 4 KB):\n%s", out.String(), tail(string(log), 4096))
		}
	})
	url, token := announced(t, dir)
	return floodNodeProc{url: url, token: token, dir: dir, pid: cmd.Process.Pid}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// flood holds connections to a node from many goroutines: idle keep-alive
// connections that made one request, and slow senders of a body a byte
// every 2 s. Each dials again 2 to 6 s after the node closes it, so the
// flood goes on at some 1,300 connections a second.
type flood struct {
	addr  string
	stop  chan struct{}
	wg    sync.WaitGroup
	tried atomic.Int64 // dials made, whether they connected or not
	open  atomic.Int64 // connections open now
}

func startFlood(addr string, idle, slow int) *flood {
	f := &flood{addr: addr, stop: make(chan struct{})}
	for i := range idle + slow {
		f.wg.Add(1)
		go f.run(i >= idle)
	}
	return f
}

func (f *flood) end() {
	close(f.stop)
	f.wg.Wait()
}

// pause waits d, or less if the flood ends; false once it has.
func (f *flood) pause(d time.Duration) bool {
	select {
	case <-f.stop:
		return false
	case <-time.After(d):
		return true
	}
}

func (f *flood) run(slow bool) {
	defer f.wg.Done()
	d := net.Dialer{Timeout: 2 * time.Second}
	for {
		c, err := d.Dial("tcp", f.addr)
		f.tried.Add(1)
		if err == nil {
			f.open.Add(1)
			f.hold(c, slow)
			f.open.Add(-1)
		}
		if !f.pause(2*time.Second + rand.N(4*time.Second)) {
			return
		}
	}
}

// hold keeps c until the node closes it or the flood ends.
func (f *flood) hold(c net.Conn, slow bool) {
	defer c.Close()
	held := make(chan struct{})
	defer close(held)
	go func() {
		select {
		case <-f.stop:
			c.Close()
		case <-held:
		}
	}()
	if !slow {
		// One request, its answer left unread: then only a read that
		// ends tells that the node let go.
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n"); err == nil {
			io.Copy(io.Discard, c) //nolint:errcheck // its end is all that counts
		}
		return
	}
	// A function URL reads its body; this one never ends.
	if _, err := io.WriteString(c, "POST /fn/hello HTTP/1.1\r\nHost: flood\r\nContent-Length: 1000000\r\n\r\n"); err != nil {
		return
	}
	for {
		if _, err := c.Write([]byte("x")); err != nil {
			return
		}
		if !f.pause(2 * time.Second) {
			return
		}
	}
}

// openFiles counts a process's open descriptors.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestConnectionFlood: one unauthenticated client opens thousands of idle
// keep-alive connections and a few hundred slow bodies to a node whose
// descriptor limit is 4,096, and keeps reopening them as they are closed.
// While the flood holds, /healthz answers every time, an authenticated
// control API call and a function invocation answer, and the node never
// runs out of descriptors.
func TestConnectionFlood(t *testing.T) {
	needTool(t, "node")
	const (
		idle, slow = 5000, 200
		probes     = 12
	)
	node := floodNode(t)
	url := node.url
	ctx := context.Background()
	// The admin's own connections, apart from the probes' and the flood's.
	admin := client.New(url, node.token, client.WithHTTPClient(&http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}))
	fn := funcNode{c: admin}
	fn.deploy(t, filepath.Join("..", "..", "examples", "hello-node"),
		apitype.Config{Name: "hello", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), URLAuth: ptr2("none")})
	invokeHello := func(what string) {
		t.Helper()
		res, err := admin.Invoke(ctx, "hello", []byte(`{"name":"flood"}`), client.InvokeOptions{})
		if err != nil || !strings.Contains(string(res.Payload), "hello, flood") {
			t.Fatalf("%s: invocation: %s %v", what, res.Payload, err)
		}
	}
	invokeHello("before the flood")

	f := startFlood(strings.TrimPrefix(url, "http://"), idle, slow)
	defer f.end()
	// Every flooder has tried once: 5,200 connections for 4,096
	// descriptors.
	waitUntil(t, 60*time.Second, "the flood has dialed", func() bool { return f.tried.Load() >= idle+slow })

	// A prober dials anew every time, as a load balancer's does.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := range probes {
		res, err := probe.Get(url + "/healthz")
		if err != nil {
			t.Fatalf("healthz probe %d of %d under the flood (%d of its connections open): %v", i+1, probes, f.open.Load(), err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("healthz probe %d: reading the answer: %v", i+1, err)
		}
		if res.StatusCode != http.StatusOK || string(b) != "ok\n" {
			t.Fatalf("healthz probe %d: %d %q", i+1, res.StatusCode, b)
		}
		if i%4 == 0 {
			if _, _, err := admin.ListFunctions(ctx, 10, ""); err != nil {
				t.Fatalf("control API call %d under the flood: %v", i/4+1, err)
			}
			invokeHello(fmt.Sprintf("under the flood, %d", i/4+1))
		}
		// Spread the probes over a few of the slow senders' bytes.
		if !f.pause(500 * time.Millisecond) {
			break
		}
	}
	n := openFiles(t, node.pid)
	if n >= floodFileLimit {
		t.Errorf("the node holds %d descriptors, its limit is %d", n, floodFileLimit)
	}
	t.Logf("the flood dialed %d times, %d of its connections are open; the node holds %d descriptors",
		f.tried.Load(), f.open.Load(), n)
	log, err := os.ReadFile(filepath.Join(node.dir, "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "too many open files") {
		t.Error("the node ran out of descriptors")
	}
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(node.pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(limits)) {
		// Max open files  <soft>  <hard>  files
		if fields := strings.Fields(line); strings.HasPrefix(line, "Max open files") &&
			(len(fields) < 5 || fields[3] != strconv.Itoa(floodFileLimit)) {
			t.Errorf("the node did not raise its soft descriptor limit to the hard one: %q", line)
		}
	}
}
