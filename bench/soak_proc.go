package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The soak's processes: the node under test (wisp server) and the
// flooders that hold its idle connections. Each is a process of its own
// because a process here may hold 20,000 descriptors (ulimit -n, soft =
// hard) and each loopback connection costs one on either side.

// soakFlooderArg, as the first argument, makes this binary a flooder.
const soakFlooderArg = "soak-flooder"

// soakFlooderMax is the most connections one flooder holds.
const soakFlooderMax = 9_000

// soakNodeStart bounds how long the node may take to listen.
const soakNodeStart = time.Minute

// soakNodeStop bounds how long the node may take to stop after SIGTERM
// (its shutdown timeout is 10 s) before it is killed.
const soakNodeStop = 30 * time.Second

// soakLogTail is how many of the node's last log lines are kept.
const soakLogTail = 20

// nodeProcess is a wisp server the soak started.
type nodeProcess struct {
	cmd     *exec.Cmd
	url     string
	token   string
	dataDir string
	exited  chan struct{} // closed once the process has ended
	exitErr error         // how it ended, once exited is closed
	// exitedAt is when it ended and bySelf whether stop had not been
	// called then; both set once exited is closed.
	exitedAt time.Time
	bySelf   bool
	stopping atomic.Bool

	mu       sync.Mutex
	warnings map[string]int // its WARN and ERROR log messages, by message; guarded by mu
	tail     []string       // its last log lines; guarded by mu
}

// startNodeProcess runs bin as a node on a free loopback port with its
// state in dataDir, and returns once it listens: the port it picked is in
// its log, its admin token in dataDir.
func startNodeProcess(ctx context.Context, bin, dataDir string) (*nodeProcess, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	n := &nodeProcess{dataDir: dataDir, exited: make(chan struct{}), warnings: map[string]int{},
		cmd: exec.Command(bin, "server", "--data-dir", dataDir, "--listen", loopback+":0", "--s3-listen", "off", "--log-json")}
	n.cmd.Stderr = pw // a file, so that Wait returns when the node ends, whoever else holds the pipe
	err = n.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	go func() {
		err := n.cmd.Wait()
		n.exitErr = cmp.Or(err, errors.New("exited with status 0"))
		n.exitedAt, n.bySelf = time.Now(), !n.stopping.Load()
		close(n.exited)
	}()
	listening := make(chan string, 1)
	go n.readLog(pr, listening)

	select {
	case n.url = <-listening:
	case <-n.exited:
		return nil, fmt.Errorf("the node ended before it listened: %w\n%s", n.exitErr, n.logTail())
	case <-time.After(soakNodeStart):
		return nil, errors.Join(fmt.Errorf("the node did not listen within %s", soakNodeStart), n.stop())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), n.stop())
	}
	if err := checkTarget(n.url); err != nil {
		return nil, errors.Join(err, n.stop())
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("the node's admin token: %w", err), n.stop())
	}
	n.token = strings.TrimSpace(string(token))
	return n, nil
}

// soakLogKinds bounds the kinds of warnings counted; the rest count as one.
const soakLogKinds = 40

// readLog reads the node's JSON log lines until the pipe closes, sends the
// URL it listens on, and counts its warnings and errors by kind.
func (n *nodeProcess) readLog(r io.ReadCloser, listening chan<- string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			URL   string `json:"url"`
			Err   string `json:"err"`
		}
		jsonErr := json.Unmarshal([]byte(line), &rec)
		if jsonErr == nil && rec.Msg == "wisp node listening" && listening != nil {
			listening <- rec.URL
			listening = nil
		}
		kind := ""
		switch {
		case jsonErr != nil:
			kind = "(not a log line) " + line
		case rec.Level == "WARN" || rec.Level == "ERROR":
			kind = rec.Level + " " + rec.Msg
			if rec.Err != "" {
				kind += ": " + rec.Err
			}
		}
		n.mu.Lock()
		if kind != "" {
			kind = logKind(cut(kind, 200), n.dataDir)
			if _, ok := n.warnings[kind]; !ok && len(n.warnings) >= soakLogKinds {
				kind = "(other kinds)"
			}
			n.warnings[kind]++
		}
		if len(n.tail) == soakLogTail {
			n.tail = n.tail[1:]
		}
		n.tail = append(n.tail, cut(line, 300))
		n.mu.Unlock()
	}
}

// logKind is a log message with the data dir and every number taken out,
// so that messages differing only in those count together.
func logKind(msg, dataDir string) string {
	msg = strings.ReplaceAll(msg, dataDir, "DATA")
	var b strings.Builder
	digits := false
	for _, r := range msg {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('N')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

// cut is s, shortened to at most n bytes.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (n *nodeProcess) logTail() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// alive says whether the node process still runs.
func (n *nodeProcess) alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// died says whether the node ended before stop was called, and when.
func (n *nodeProcess) died() (bool, time.Time) {
	if n.alive() {
		return false, time.Time{}
	}
	return n.bySelf, n.exitedAt
}

// stop asks the node to stop (SIGTERM) and kills it if it has not within
// soakNodeStop. It returns how it ended unless it ended before stop; once
// it has ended, stop does nothing.
func (n *nodeProcess) stop() error {
	n.stopping.Store(true)
	if !n.alive() {
		return nil
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-n.exited:
		var exit *exec.ExitError
		if errors.As(n.exitErr, &exit) {
			return fmt.Errorf("the node stopped with %w", n.exitErr)
		}
		return nil
	case <-time.After(soakNodeStop):
	}
	n.cmd.Process.Kill() //nolint:errcheck // it may have ended meanwhile; exited says when it has
	<-n.exited
	return fmt.Errorf("the node did not stop within %s of SIGTERM and was killed", soakNodeStop)
}

// processRSS is the resident set (VmRSS) of process pid, in bytes: its own
// memory, not its children's.
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

// parseVmRSS reads the VmRSS line of a /proc/PID/status.
func parseVmRSS(status string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("status: no VmRSS line")
}

// processFDs counts the descriptors process pid holds.
func processFDs(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return len(names), err
}

// processFDLimit is the soft limit on process pid's descriptors, as
// /proc/PID/limits says it ("" when it cannot be read).
func processFDLimit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error { //nolint:errcheck // a file that went away counts 0
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// flooderStats is what a flooder reports, once a second, on its stdout.
type flooderStats struct {
	Open       int64  `json:"open"`        // connections it holds now
	Opened     int64  `json:"opened"`      // connections it opened, in all
	Closed     int64  `json:"closed"`      // connections the node closed (or reset)
	DialErrors int64  `json:"dial_errors"` // connections it could not open
	Err        string `json:"err,omitempty"`
}

func (s *flooderStats) add(o flooderStats) {
	s.Open += o.Open
	s.Opened += o.Opened
	s.Closed += o.Closed
	s.DialErrors += o.DialErrors
	if o.Err != "" {
		s.Err = o.Err
	}
}

// flooder is a flooder process, as its parent sees it.
type flooder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // closing it ends the flooder
	done  chan struct{}  // closed once it has ended

	mu   sync.Mutex
	last flooderStats // guarded by mu
}

// startFlooders starts enough flooders to hold conns idle connections to
// addr, each this binary re-executed.
func startFlooders(addr string, conns int) ([]*flooder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	procs := (conns + soakFlooderMax - 1) / soakFlooderMax
	var out []*flooder
	for i := range procs {
		share := conns / procs
		if i < conns%procs {
			share++
		}
		f := &flooder{done: make(chan struct{}),
			cmd: exec.Command(exe, soakFlooderArg, "-addr", addr, "-conns", strconv.Itoa(share))}
		f.cmd.Stderr = os.Stderr
		stdout, err := f.cmd.StdoutPipe()
		if err == nil {
			f.stdin, err = f.cmd.StdinPipe()
		}
		if err == nil {
			err = f.cmd.Start()
		}
		if err != nil {
			return nil, errors.Join(err, stopFlooders(out))
		}
		go func() {
			dec := json.NewDecoder(stdout)
			for {
				var s flooderStats
				if dec.Decode(&s) != nil {
					break
				}
				f.mu.Lock()
				f.last = s
				f.mu.Unlock()
			}
			f.cmd.Wait() //nolint:errcheck // a flooder that failed said why on stderr
			close(f.done)
		}()
		out = append(out, f)
	}
	return out, nil
}

// sumFlooders adds up the flooders' last reports.
func sumFlooders(fs []*flooder) flooderStats {
	var s flooderStats
	for _, f := range fs {
		f.mu.Lock()
		s.add(f.last)
		f.mu.Unlock()
	}
	return s
}

// stopFlooders closes the flooders' stdin, which ends them, and kills any
// that has not ended 10 s later.
func stopFlooders(fs []*flooder) error {
	for _, f := range fs {
		f.stdin.Close()
	}
	var errs []error
	deadline := time.After(10 * time.Second)
	for _, f := range fs {
		select {
		case <-f.done:
		case <-deadline:
			errs = append(errs, fmt.Errorf("flooder %d did not end; killed", f.cmd.Process.Pid))
			f.cmd.Process.Kill() //nolint:errcheck // it may have ended meanwhile
			<-f.done
		}
	}
	return errors.Join(errs...)
}

// Flooder side: how fast a flooder dials and redials.
const (
	flooderDials      = 64 // dials under way at once
	flooderDialWait   = 5 * time.Second
	flooderBackoff    = 50 * time.Millisecond // after a connection that lasted under a second, doubling
	flooderBackoffMax = time.Second
)

// runFlooder is a flooder's main: it holds -conns idle connections to
// -addr (on loopback), sending nothing, reopens each one the node closes,
// reports its figures on stdout every second, and ends when its stdin
// does.
func runFlooder(args []string) int {
	fs := flag.NewFlagSet(soakFlooderArg, flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port of the node, on "+loopback)
	conns := fs.Int("conns", 0, "connections to hold")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if host, _, err := net.SplitHostPort(*addr); err != nil || host != loopback || *conns < 1 || *conns > soakFlooderMax {
		fmt.Fprintf(os.Stderr, "bench %s: -addr must be %s:PORT and -conns 1 to %d\n", soakFlooderArg, loopback, soakFlooderMax)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck // an error ends it as EOF does
		cancel()
	}()
	var c connCounts
	dials := make(chan struct{}, flooderDials)
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() { c.hold(ctx, *addr, dials) })
	}
	enc := json.NewEncoder(os.Stdout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			if enc.Encode(c.stats()) != nil {
				cancel()
			}
		case <-ctx.Done():
		}
	}
	wg.Wait()
	return 0
}

// connCounts are a flooder's figures.
type connCounts struct {
	open, opened, closed, dialErrors atomic.Int64
	lastErr                          atomic.Pointer[string]
}

func (c *connCounts) stats() flooderStats {
	s := flooderStats{Open: c.open.Load(), Opened: c.opened.Load(), Closed: c.closed.Load(), DialErrors: c.dialErrors.Load()}
	if e := c.lastErr.Load(); e != nil {
		s.Err = *e
	}
	return s
}

// hold keeps one connection to addr open, reading nothing but its end,
// until ctx ends.
func (c *connCounts) hold(ctx context.Context, addr string, dials chan struct{}) {
	d := net.Dialer{Timeout: flooderDialWait}
	backoff := flooderBackoff
	for {
		select {
		case dials <- struct{}{}:
		case <-ctx.Done():
			return
		}
		conn, err := d.DialContext(ctx, "tcp", addr)
		<-dials
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err != nil {
			c.dialErrors.Add(1)
			msg := err.Error()
			c.lastErr.Store(&msg)
		} else {
			c.open.Add(1)
			c.opened.Add(1)
			opened := time.Now()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			io.Copy(io.Discard, conn) //nolint:errcheck // EOF or a reset: the node closed it either way
			stop()
			conn.Close()
			c.open.Add(-1)
			if ctx.Err() != nil {
				return
			}
			c.closed.Add(1)
			if time.Since(opened) >= time.Second {
				backoff = flooderBackoff
				continue
			}
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, flooderBackoffMax)
	}
}
