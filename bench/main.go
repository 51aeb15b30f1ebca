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
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/internal/sandbox"
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
