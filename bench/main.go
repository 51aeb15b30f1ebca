// Command bench measures a Wisp node against bare baselines measured in the
// same run: warm invocations through function URLs against a bare net/http
// server, cold starts against a bare fork/exec, and a burst of cold calls.
// A second node, started with InsecureNoSandbox, runs Go cold starts
// without the sandbox, alternating with the sandboxed node's, to tell what
// the sandbox costs a cold start. A third node runs WebAssembly functions
// (the wasm runtime): warm calls of a wat and a Go guest, timed inside the
// node from their REPORT lines and end to end, and a cold start after a
// restart on the same data dir against the first call, which compiled. A
// fourth node takes async invocations (events): their durable enqueue rate
// over the Invoke API against bare net/http and in process, and the rate
// at which a no-op function's events all run. It prints Markdown tables
// and writes them to bench/RESULTS.md.
//
//	go run ./bench [-duration 3s] [-trials 3] [-cold 30] [-burst 500] [-wasm-calls 200] [-async-events 20000] …
//
// With -soak it runs only the soak (soak.go): a node under hostile load
// for that long, checked against issue 12's bounds.
//
//	go run ./bench -soak 60s [-soak-conns 20000] [-soak-drain 3m]
//
// The nodes run in this process (server.Start on 127.0.0.1:0) and the load
// generator talks to them over loopback HTTP like any client, so they all
// share the machine's cores.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/sandbox"
	"github.com/wisp-dev/wisp/internal/server"
)

// options are the command's flags.
type options struct {
	duration, warmup time.Duration
	trials           int
	conns            int
	cold             int
	burst            int
	maxRequests      int
	wasmCalls        int
	asyncEvents      int
	asyncRunEvents   int
	out              string
	cpuProfile       string
	// The soak (soak.go): its length (0: no soak), idle connections and
	// how long its accepted events may take to run after it.
	soak      time.Duration
	soakConns int
	soakDrain time.Duration
}

func main() {
	// The node in this process re-executes it as its sandboxes' init.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	// The soak re-executes it to hold idle connections.
	if len(os.Args) > 1 && os.Args[1] == soakFlooderArg {
		os.Exit(runFlooder(os.Args[2:]))
	}
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time of each load run")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unrecorded warm-up before each load run")
	flag.IntVar(&o.trials, "trials", 5, "load runs per row; the table shows their median")
	flag.IntVar(&o.conns, "conns", 16, "connections of the concurrent load runs")
	flag.IntVar(&o.cold, "cold", 30, "cold starts per runtime (and bare fork/execs)")
	flag.IntVar(&o.burst, "burst", 500, "concurrent calls of the cold burst (0: skip it)")
	flag.IntVar(&o.maxRequests, "max-requests", 2_000_000, "bound on the requests recorded by one load run")
	flag.IntVar(&o.wasmCalls, "wasm-calls", 200, "measured sequential calls per WebAssembly row and kind of call (0: skip the section)")
	flag.IntVar(&o.asyncEvents, "async-events", 20_000, "events per enqueue trial of the async section (0: skip the section)")
	flag.IntVar(&o.asyncRunEvents, "async-run-events", 10_000, "events per end-to-end trial of the async section")
	flag.StringVar(&o.out, "out", filepath.Join("bench", "RESULTS.md"), `results file, relative to the module root ("": none)`)
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (node and load generator) here")
	flag.DurationVar(&o.soak, "soak", 0, "run only the soak of a node under hostile load for this long, e.g. 60s (not written to -out)")
	flag.IntVar(&o.soakConns, "soak-conns", 20_000, "idle connections the soak holds")
	flag.DurationVar(&o.soakDrain, "soak-drain", 3*time.Minute, "how long the soak waits after its end for accepted events to run")
	flag.Parse()
	if o.soak > 0 {
		if o.soakConns < 1 || o.soakDrain < 0 {
			fmt.Fprintln(os.Stderr, "bench: -soak-conns must be positive, -soak-drain not negative")
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		code := soakMain(ctx, o, commandLine())
		stop()
		os.Exit(code)
	}
	if o.trials < 1 || o.conns < 1 || o.cold < 1 || o.burst < 0 || o.wasmCalls < 0 || o.asyncEvents < 0 || o.duration <= 0 || o.warmup < 0 || o.maxRequests < o.conns {
		fmt.Fprintln(os.Stderr, "bench: -trials, -conns, -cold and -duration must be positive, -burst, -wasm-calls and -warmup not negative")
		os.Exit(2)
	}
	if o.asyncEvents > 0 && (o.asyncEvents < max(o.conns, 64) || o.asyncRunEvents < o.conns) {
		fmt.Fprintln(os.Stderr, "bench: -async-events must be 0 or at least 64 and -conns, -async-run-events at least -conns")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, commandLine()); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// commandLine is how this run was started, as a user would type it.
func commandLine() string {
	words := []string{"go run ./bench"}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,", r)
		}) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// bench is one run: what it measures against and what it found.
type bench struct {
	o    options
	tmp  string
	root string // the module root
	// sandboxed is the node every row runs on unless it says otherwise: a
	// default one, whose instances run in the sandbox. unsandboxed runs
	// them without it (InsecureNoSandbox), for the sandbox's cost.
	sandboxed, unsandboxed *wispNode
	seq                    int // names of fresh functions
	// loadAtStart is the machine's 1-minute load average when the run
	// began ("": unknown); others' work on it skews every row.
	loadAtStart string

	notes []string
}

// wispNode is a node under test and how the bench talks to it.
type wispNode struct {
	node    *server.Node
	api     *client.Client
	invoker *http.Client // for single timed calls; keeps its connection alive
}

// startNode starts a node in dir that discards its logs.
func startNode(ctx context.Context, dir string, insecureNoSandbox bool) (*wispNode, error) {
	return startNodeConfig(ctx, server.Config{DataDir: dir, InsecureNoSandbox: insecureNoSandbox})
}

// startNodeConfig starts a node as cfg says, listening on loopback and
// discarding its logs.
func startNodeConfig(ctx context.Context, cfg server.Config) (*wispNode, error) {
	cfg.Listen, cfg.Logger = loopback+":0", slog.New(slog.DiscardHandler)
	node, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &wispNode{node: node, api: client.New(node.URL(), node.AdminToken()), invoker: newLoopbackClient(1)}, nil
}

// stop shuts the node down.
func (n *wispNode) stop(ctx context.Context) error {
	n.invoker.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return n.node.Shutdown(sctx)
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options, command string) (err error) {
	started := time.Now()
	loadAtStart := loadAverage()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "wisp-bench-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	b := &bench{o: o, tmp: tmp, root: root, loadAtStart: loadAtStart}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	b.progress("building examples/hello-go and a bare hello binary")
	goCode, err := b.buildHelloGo(ctx)
	if err != nil {
		return err
	}
	execHello, err := b.buildExecHello(ctx)
	if err != nil {
		return err
	}

	bare, err := startBare()
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, bare.srv.Shutdown(sctx))
	}()

	if b.sandboxed, err = startNode(ctx, filepath.Join(tmp, "node"), false); err != nil {
		return err
	}
	defer func() {
		b.progress("stopping the sandboxed node")
		err = errors.Join(err, b.sandboxed.stop(ctx))
	}()
	if b.unsandboxed, err = startNode(ctx, filepath.Join(tmp, "node-unsandboxed"), true); err != nil {
		return err
	}
	defer func() {
		b.progress("stopping the unsandboxed node")
		err = errors.Join(err, b.unsandboxed.stop(ctx))
	}()

	runtimes := []*runtimeUnderTest{{label: "Go", runtime: "go", handler: "bootstrap", code: goCode}}
	for _, rt := range []struct{ label, runtime, handler, tool, dir string }{
		{"Node", "nodejs", "index.handler", "node", "hello-node"},
		{"Python", "python", "app.handler", "python3", "hello-python"},
	} {
		r := &runtimeUnderTest{label: rt.label, runtime: rt.runtime, handler: rt.handler}
		if _, err := exec.LookPath(rt.tool); err != nil {
			r.skip = rt.tool + " is not on PATH"
			b.note("%s rows skipped: %s.", rt.label, r.skip)
		} else if r.code, err = packDir(filepath.Join(root, "examples", rt.dir)); err != nil {
			return err
		}
		runtimes = append(runtimes, r)
	}

	warm, err := b.warmRuns(ctx, bare.url, runtimes[:2])
	if err != nil {
		return err
	}
	cold, err := b.coldRuns(ctx, execHello, runtimes)
	if err != nil {
		return err
	}
	var wasm *wasmResults
	if o.wasmCalls > 0 {
		if wasm, err = b.wasmRuns(ctx); err != nil {
			return fmt.Errorf("webassembly: %w", err)
		}
	}
	var burst *burstRow
	if o.burst > 0 {
		if burst, err = b.burstRun(ctx, goCode); err != nil {
			return err
		}
	}

	var async *asyncResults
	if o.asyncEvents > 0 {
		if async, err = b.asyncRuns(ctx, bare.url, goCode, warm); err != nil {
			return fmt.Errorf("async events: %w", err)
		}
	}

	var md bytes.Buffer
	b.render(&md, command, time.Since(started), warm, cold, wasm, burst, async)
	if _, err := os.Stdout.Write(md.Bytes()); err != nil {
		return err
	}
	if o.out != "" {
		out := o.out
		if !filepath.IsAbs(out) {
			out = filepath.Join(root, out)
		}
		if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
			return err
		}
		b.progress("wrote %s", out)
	}
	return nil
}

// runtimeUnderTest is an example function and its code archive.
type runtimeUnderTest struct {
	label, runtime, handler string
	code                    []byte
	skip                    string // why it is not measured; "" when it is
}

// moduleRoot finds the directory of Wisp's go.mod, from the working
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			line, _, rerr := bufio.NewReader(f).ReadLine()
			f.Close()
			if rerr == nil && strings.TrimSpace(string(line)) == "module github.com/wisp-dev/wisp" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run this from inside the wisp module (go run ./bench)")
		}
		dir = parent
	}
}

// buildHelloGo builds examples/hello-go as Lambda's provided runtimes take
// it, and returns the archive of its bootstrap.
func (b *bench) buildHelloGo(ctx context.Context) ([]byte, error) {
	dir := filepath.Join(b.tmp, "hello-go")
	if err := goBuild(ctx, filepath.Join(b.root, "examples", "hello-go"), filepath.Join(dir, "bootstrap"),
		[]string{"CGO_ENABLED=0", "GOOS=linux"}, "-tags", "lambda.norpc"); err != nil {
		return nil, err
	}
	return packDir(dir)
}

// buildExecHello builds the fork/exec baseline: a Go program that prints
// a line and exits.
func (b *bench) buildExecHello(ctx context.Context) (string, error) {
	src := filepath.Join(b.tmp, "exec-hello-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod":  "module hello\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(b.tmp, "exec-hello")
	return bin, goBuild(ctx, src, bin, []string{"CGO_ENABLED=0"})
}

// goBuild runs go build in dir with env added to this process's.
func goBuild(ctx context.Context, dir, out string, env []string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
	}
	return nil
}

func packDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	if err := archive.Pack(dir, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bareServer is the baseline: net/http answering what the examples answer.
type bareServer struct {
	srv *http.Server
	url string
}

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, "+r.URL.Query().Get("name")+"\n") //nolint:errcheck // the client left
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	return &bareServer{srv: srv, url: "http://" + ln.Addr().String() + "/hello?name=x"}, nil
}

// deploy creates a fresh function with a public URL on node n and returns
// the URL.
func (b *bench) deploy(ctx context.Context, n *wispNode, prefix string, rt *runtimeUnderTest) (name, url string, err error) {
	b.seq++
	name = fmt.Sprintf("%s-%d", prefix, b.seq)
	_, err = n.api.CreateFunction(ctx, client.Config{Name: name, Runtime: &rt.runtime, Handler: &rt.handler,
		URLAuth: ptr("none")}, bytes.NewReader(rt.code), int64(len(rt.code)), nil)
	if err != nil {
		return "", "", fmt.Errorf("deploy %s: %w", name, err)
	}
	return name, n.node.URL() + "/fn/" + name + "?name=x", nil
}

func ptr[T any](v T) *T { return &v }

// call makes one timed call to node n and checks it was answered as the
// examples answer.
func (n *wispNode) call(ctx context.Context, url string) (time.Duration, error) {
	return n.callWant(ctx, url, "hello, x")
}

// callWant makes one timed call to node n and checks it was answered 200
// with a body that begins with want.
func (n *wispNode) callWant(ctx context.Context, url, want string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := n.invoker.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(want)) {
		return 0, fmt.Errorf("%s: %d %q", url, resp.StatusCode, body)
	}
	return took, nil
}

// loadRow is one target at one concurrency, over the trials.
type loadRow struct {
	target string
	conns  int
	skip   string
	p50    []float64 // seconds, one per trial
	p99    []float64
	rps    []float64
	errors int
	// ratio is, per trial, p50 over the baseline's p50 (1 connection) or
	// req/s over the baseline's req/s (more), paired with the baseline
	// run of the same trial; empty for the baseline.
	ratio []float64
}

// warmRuns measures the bare server and the Go and Node examples' function
// URLs in closed loops, interleaved trial by trial so drift hits each
// target alike.
func (b *bench) warmRuns(ctx context.Context, bareURL string, rts []*runtimeUnderTest) ([]*loadRow, error) {
	type target struct {
		label, url string
		skip       string
	}
	targets := []target{{label: "bare net/http", url: bareURL}}
	for _, rt := range rts {
		t := target{label: "Wisp " + rt.label + ", sandboxed", skip: rt.skip}
		if rt.skip == "" {
			_, url, err := b.deploy(ctx, b.sandboxed, "warm-"+rt.runtime, rt)
			if err != nil {
				return nil, err
			}
			t.url = url
			if _, err := b.sandboxed.call(ctx, url); err != nil {
				return nil, err
			}
			// Start as many instances as the concurrent runs will use,
			// so no run's warm-up is spent on cold starts.
			for range 2 {
				res, err := runBurst(ctx, url, b.o.conns)
				if err != nil {
					return nil, err
				}
				if len(res.Statuses) > 0 {
					return nil, fmt.Errorf("warming %s: answers other than 200: %v", url, res.Statuses)
				}
			}
		}
		targets = append(targets, t)
	}

	var rows []*loadRow
	for _, conns := range []int{1, b.o.conns} {
		for _, t := range targets {
			rows = append(rows, &loadRow{target: t.label, conns: conns, skip: t.skip})
		}
	}
	for trial := range b.o.trials {
		for i, row := range rows {
			t := targets[i%len(targets)]
			if t.skip != "" {
				continue
			}
			b.progress("warm trial %d/%d: %s, %d conns", trial+1, b.o.trials, t.label, row.conns)
			res, err := runLoad(ctx, loadConfig{URL: t.url, Conns: row.conns, Warmup: b.o.warmup,
				Duration: b.o.duration, MaxRequests: b.o.maxRequests})
			if err != nil {
				return nil, err
			}
			row.p50 = append(row.p50, percentile(res.Latencies, 50).Seconds())
			row.p99 = append(row.p99, percentile(res.Latencies, 99).Seconds())
			row.rps = append(row.rps, res.RPS())
			row.errors += res.Errors
			if i%len(targets) != 0 {
				base := rows[i-i%len(targets)]
				if row.conns == 1 {
					row.ratio = append(row.ratio, row.p50[trial]/base.p50[trial])
				} else {
					row.ratio = append(row.ratio, row.rps[trial]/base.rps[trial])
				}
			}
		}
	}
	return rows, nil
}

// coldRow is the cold starts of one runtime on one node, or the fork/exec
// baseline.
type coldRow struct {
	target      string
	runtime     string // "" for the baseline
	unsandboxed bool   // measured on the node without the sandbox
	skip        string
	trials      []time.Duration // in the order they ran
	took        []time.Duration // sorted
}

// coldRuns times bare fork/execs, then one call to each of o.cold fresh
// functions per runtime on the sandboxed node. Go's trials alternate with
// as many on the unsandboxed node, so drift hits both alike.
func (b *bench) coldRuns(ctx context.Context, execHello string, rts []*runtimeUnderTest) ([]*coldRow, error) {
	b.progress("cold: %d bare fork/execs", b.o.cold)
	base := &coldRow{target: "bare fork/exec (Go hello, run to exit)"}
	if err := exec.CommandContext(ctx, execHello).Run(); err != nil { // into the page cache
		return nil, err
	}
	for range b.o.cold {
		start := time.Now()
		if err := exec.CommandContext(ctx, execHello).Run(); err != nil {
			return nil, err
		}
		base.trials = append(base.trials, time.Since(start))
	}
	base.took = slices.Sorted(slices.Values(base.trials))
	rows := []*coldRow{base}

	type leg struct {
		node *wispNode
		row  *coldRow
	}
	for _, rt := range rts {
		row := &coldRow{target: "Wisp " + rt.label + ", sandboxed", runtime: rt.runtime, skip: rt.skip}
		rows = append(rows, row)
		if rt.skip != "" {
			continue
		}
		legs := []leg{{b.sandboxed, row}}
		if rt.runtime == "go" {
			un := &coldRow{target: "Wisp " + rt.label + ", unsandboxed", runtime: rt.runtime, unsandboxed: true}
			rows = append(rows, un)
			legs = append(legs, leg{b.unsandboxed, un})
			b.progress("cold: %d fresh %s functions on each node, sandboxed and unsandboxed alternating", b.o.cold, rt.label)
		} else {
			b.progress("cold: %d fresh %s functions", b.o.cold, rt.label)
		}
		// One untimed round first: each node unpacks each code archive
		// once, and that is a deploy's cost, not a cold start's.
		for i := range b.o.cold + 1 {
			for _, l := range legs {
				took, err := b.coldStart(ctx, l.node, rt)
				if err != nil {
					return nil, err
				}
				if i > 0 {
					l.row.trials = append(l.row.trials, took)
				}
			}
		}
		for _, l := range legs {
			l.row.took = slices.Sorted(slices.Values(l.row.trials))
		}
	}
	return rows, nil
}

// coldStart deploys a fresh function on node n, times its first call and
// deletes it.
func (b *bench) coldStart(ctx context.Context, n *wispNode, rt *runtimeUnderTest) (time.Duration, error) {
	name, url, err := b.deploy(ctx, n, "cold-"+rt.runtime, rt)
	if err != nil {
		return 0, err
	}
	took, err := n.call(ctx, url)
	if err != nil {
		return 0, err
	}
	return took, n.api.DeleteFunction(ctx, name, 0)
}

// sandboxCost is what the sandbox adds to a cold start: the sandboxed p50
// less the unsandboxed p50, and the median of the differences of trials
// paired in the order they ran (the i-th of each).
func sandboxCost(sandboxed, unsandboxed *coldRow) (p50, paired time.Duration) {
	p50 = percentile(sandboxed.took, 50) - percentile(unsandboxed.took, 50)
	var diffs []float64
	for i := range min(len(sandboxed.trials), len(unsandboxed.trials)) {
		diffs = append(diffs, float64(sandboxed.trials[i]-unsandboxed.trials[i]))
	}
	return p50, time.Duration(median(diffs))
}

// sandboxCostGoal is the most the sandbox may add to a Go cold start's p50.
const sandboxCostGoal = 3 * time.Millisecond

// burstRow is what the cold burst found.
type burstRow struct {
	calls     int
	res       burstResult
	instances int    // distinct instances in the function's logs; -1: unknown
	reports   int    // REPORT lines in the function's logs
	logErr    string // why the logs could not be read
}

// burstRun deploys a fresh Go function and calls it o.burst times at once.
func (b *bench) burstRun(ctx context.Context, goCode []byte) (*burstRow, error) {
	rt := &runtimeUnderTest{label: "Go", runtime: "go", handler: "bootstrap", code: goCode}
	name, url, err := b.deploy(ctx, b.sandboxed, "burst-go", rt)
	if err != nil {
		return nil, err
	}
	b.progress("cold burst: %d calls to %s at once", b.o.burst, name)
	res, err := runBurst(ctx, url, b.o.burst)
	if err != nil {
		return nil, err
	}
	row := &burstRow{calls: b.o.burst, res: res, instances: -1}
	// The node tells how many instances served the burst through the
	// function's logs; they reach the store shortly after the answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids := map[string]bool{}
		reports := 0
		err := b.sandboxed.api.Logs(ctx, name, client.LogsOptions{}, func(r client.LogRecord) error {
			if r.Instance != "" {
				ids[r.Instance] = true
			}
			if r.Stream == "platform" && strings.HasPrefix(r.Message, "REPORT ") {
				reports++
			}
			return nil
		})
		if err != nil {
			row.logErr = err.Error()
			break
		}
		row.instances, row.reports = len(ids), reports
		if reports >= len(res.Latencies) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return row, nil
}

// render writes the results as Markdown.
func (b *bench) render(w io.Writer, command string, took time.Duration, warm []*loadRow, cold []*coldRow,
	wasm *wasmResults, burst *burstRow, async *asyncResults) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Wisp benchmark\n\n")
	p("- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("- Go: %s %s/%s; CPUs: %d (GOMAXPROCS %d)\n", goruntime.Version(), goruntime.GOOS, goruntime.GOARCH,
		goruntime.NumCPU(), goruntime.GOMAXPROCS(0))
	p("- command: `%s` (took %s)\n", command, took.Round(time.Second))
	if b.loadAtStart != "" {
		p("- 1-minute load average at the start and the end of the run: %s, %s\n", b.loadAtStart, loadAverage())
	}
	p("- up to four nodes (`server.Start`, each with its own data dir and embedded NATS; the third runs the WebAssembly rows\n" +
		"  and is restarted once, the fourth the async events rows) and the load generator share this process and its cores;\n" +
		"  every call goes over loopback HTTP to 127.0.0.1, except the rows marked in-process.\n")
	p("- every Wisp row runs on the default node, whose instances run in the sandbox (namespaces + cgroups, its init\n" +
		"  re-executing this binary), except the row marked unsandboxed: that node has `InsecureNoSandbox`.\n\n")

	p("## Warm invoke: `GET /fn/NAME?name=x` (url_auth none) against bare `net/http`\n\n")
	p("Closed loop: each connection sends its next request when the last answer arrives; %s warm-up, then %s measured.\n",
		b.o.warmup, b.o.duration)
	p("Each figure is the median of %d trials; the ratio is the median of per-trial ratios to the baseline run of the same trial\n"+
		"(in brackets: the lowest and highest of them).\n\n", b.o.trials)
	p("| target | conns | p50 | p99 | req/s | errors | vs bare | goal |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range warm {
		if r.skip != "" {
			p("| %s | %d | – | – | – | – | – | skipped: %s |\n", r.target, r.conns, r.skip)
			continue
		}
		ratio, goal := "1×", ""
		if len(r.ratio) > 0 {
			x := median(r.ratio)
			if r.conns == 1 {
				ratio = fmt.Sprintf("p50 %.2f×", x)
				goal = check(x <= 2) + " p50 ≤ 2× bare"
			} else {
				ratio = fmt.Sprintf("req/s %.2f×", x)
				goal = check(x >= 0.3) + " req/s ≥ 0.3× bare"
			}
			if len(r.ratio) > 1 {
				ratio += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(r.ratio), slices.Max(r.ratio))
			}
		}
		p("| %s | %d | %s | %s | %s | %d | %s | %s |\n", r.target, r.conns,
			fmtSeconds(median(r.p50)), fmtSeconds(median(r.p99)), fmtRate(median(r.rps)), r.errors, ratio, goal)
	}

	p("\n## Cold start: one call to a function with no instance, end to end\n\n")
	p("Each trial deploys a fresh function (the code is stored once per node) and times only its first call; %d trials per row.\n", b.o.cold)
	p("The sandboxed and unsandboxed Go trials alternate, one on each node in turn.\n")
	p("The baseline is `exec.Command` of a static Go hello binary, run to exit.\n\n")
	var goSandboxed, goUnsandboxed *coldRow
	for _, r := range cold {
		if r.runtime == "go" && r.skip == "" && len(r.took) > 0 {
			if r.unsandboxed {
				goUnsandboxed = r
			} else {
				goSandboxed = r
			}
		}
	}
	var cost, pairedCost time.Duration
	haveCost := goSandboxed != nil && goUnsandboxed != nil
	if haveCost {
		cost, pairedCost = sandboxCost(goSandboxed, goUnsandboxed)
	}
	p("| target | trials | p50 | p99 | vs fork/exec p50 | sandbox cost (p50 Δ) | goal |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	base := percentile(cold[0].took, 50)
	for _, r := range cold {
		if r.skip != "" {
			p("| %s | – | – | – | – | – | skipped: %s |\n", r.target, r.skip)
			continue
		}
		p50 := percentile(r.took, 50)
		delta, goal := "", ""
		if r == goSandboxed {
			goal = check(p50 <= 10*time.Millisecond) + " p50 ≤ 10 ms"
			if haveCost {
				delta = fmtDelta(cost)
				goal += "; " + check(cost <= sandboxCostGoal) + " sandbox cost ≤ " + fmtGoalMS(sandboxCostGoal)
			}
		}
		p("| %s | %d | %s | %s | %.1f× | %s | %s |\n", r.target, len(r.took), fmtDuration(p50),
			fmtDuration(percentile(r.took, 99)), float64(p50)/float64(base), delta, goal)
	}
	if haveCost {
		p("\nSandbox cost of a Go cold start: p50 sandboxed − p50 unsandboxed = %s − %s = **%s** — %s goal ≤ %s.\n",
			fmtDuration(percentile(goSandboxed.took, 50)), fmtDuration(percentile(goUnsandboxed.took, 50)),
			fmtDelta(cost), check(cost <= sandboxCostGoal), fmtGoalMS(sandboxCostGoal))
		p("(The median of the %d differences of trials paired as they alternated: %s.)\n",
			min(len(goSandboxed.trials), len(goUnsandboxed.trials)), fmtDelta(pairedCost))
	}

	if burst != nil {
		p("\n## Cold burst: %d calls at once to a fresh Go function (sandboxed)\n\n", burst.calls)
		p("Each call on its own connection, all released together; latencies are of the 200 answers.\n\n")
		p("| calls | errors | p50 | p99 | max | instances started | goal |\n")
		p("| ---: | --- | ---: | ---: | ---: | ---: | --- |\n")
		lat := burst.res.Latencies
		var slowest time.Duration
		if len(lat) > 0 {
			slowest = lat[len(lat)-1]
		}
		instances := "not told"
		if burst.instances >= 0 {
			instances = strconv.Itoa(burst.instances)
			if burst.reports < len(lat) {
				instances += fmt.Sprintf(" (logs hold %d of %d REPORT lines)", burst.reports, len(lat))
			}
		}
		nerr := burst.calls - len(lat)
		p("| %d | %s | %s | %s | %s | %s | %s zero errors |\n", burst.calls, fmtStatuses(nerr, burst.res.Statuses),
			fmtDuration(percentile(lat, 50)), fmtDuration(percentile(lat, 99)), fmtDuration(slowest), instances, check(nerr == 0))
		if burst.logErr != "" {
			b.note("Reading the burst function's logs failed: %s", burst.logErr)
		}
	}

	if wasm != nil {
		b.renderWasm(w, wasm)
	}
	if async != nil {
		b.renderAsync(w, async)
	}

	if len(b.notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range b.notes {
			p("- %s\n", n)
		}
	}
}

// loadAverage is the machine's 1-minute load average, "" where it cannot
// be read.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(b), " ")
	return first
}

func check(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// fmtStatuses is an error count with what the errors were.
func fmtStatuses(n int, statuses map[int]int) string {
	if n == 0 {
		return "0"
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(statuses)) {
		what := strconv.Itoa(code)
		if code == 0 {
			what = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%d× %s", statuses[code], what))
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

func fmtSeconds(s float64) string { return fmtDuration(time.Duration(s * float64(time.Second))) }

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// fmtGoalMS is a goal's duration in whole or fractional ms, as "3 ms".
func fmtGoalMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + " ms"
}

// fmtDelta is a signed duration.
func fmtDelta(d time.Duration) string {
	if d < 0 {
		return "−" + fmtDuration(-d)
	}
	return "+" + fmtDuration(d)
}

func fmtRate(r float64) string {
	s := strconv.Itoa(int(r + 0.5))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
