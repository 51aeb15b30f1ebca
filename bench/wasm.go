package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// The WebAssembly section's goals: the p50 inside the node of a warm
// invocation of each guest.
const (
	wasmWatGoal   = 100 * time.Microsecond
	wasmGoGoal    = 3 * time.Millisecond
	wasmReuseGoal = 100 * time.Microsecond
)

// wasmWarmups are the untimed calls of each kind before a row's measured
// ones.
const wasmWarmups = 20

// wasmRow is one wasm guest's warm invocations.
type wasmRow struct {
	target string
	goal   time.Duration // of the p50 inside the node
	skip   string        // why it is not measured; "" when it is
	// inNode is the REPORT lines' Duration of the measured Invoke calls,
	// sorted; invokeE2E and urlE2E are the end-to-end latencies of the
	// measured Invoke API and function URL calls, sorted.
	inNode, invokeE2E, urlE2E []time.Duration
	calls                     int // measured Invoke calls
}

// wasmRestart is the Go guest's first call after its deploy, which
// compiles the module, against its first call on a node restarted on the
// same data dir, which should find it in the compilation cache.
type wasmRestart struct {
	skip string
	// first and restarted are end to end; their Init Durations are from
	// the REPORT lines (0: not in the log tail).
	first, restarted         time.Duration
	firstInit, restartedInit time.Duration
	// The entries in the node's compilation cache dir before and after
	// each call.
	cacheBeforeFirst, cacheAfterFirst         int
	cacheBeforeRestarted, cacheAfterRestarted int
	shutdown, startup                         time.Duration // of the node restart
}

// wasmResults is what the WebAssembly section found.
type wasmResults struct {
	rows    []*wasmRow
	restart *wasmRestart
}

// wasmRuns measures the wasm runtime on a node of its own, whose data dir
// it restarts a node on at the end.
func (b *bench) wasmRuns(ctx context.Context) (_ *wasmResults, err error) {
	out := &wasmResults{}
	dir := filepath.Join(b.tmp, "node-wasm")
	cacheDir := filepath.Join(dir, "wasm-cache") // where server.Start puts the driver's cache
	n, err := startNode(ctx, dir, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if n != nil {
			err = errors.Join(err, n.stop(ctx))
		}
	}()

	// 1. The wat guest: the smallest module.
	wat := &wasmRow{target: "wat guest (examples/hello-wasm-wat), fresh instance", goal: wasmWatGoal}
	out.rows = append(out.rows, wat)
	watCode, skip, err := b.buildWat(ctx)
	switch {
	case err != nil:
		return nil, err
	case skip != "":
		wat.skip = skip
		b.note("The wat guest's row is skipped: %s.", skip)
	default:
		name, url, err := b.deployWasm(ctx, n, "wasm-wat", watCode, false)
		if err != nil {
			return nil, err
		}
		if _, err := b.wasmInvoke(ctx, n, name, `"hello from wat"`); err != nil { // compiles it
			return nil, err
		}
		b.progress("wasm: %d Invoke and %d function URL calls to the wat guest", b.o.wasmCalls, b.o.wasmCalls)
		if err := b.measureWasm(ctx, n, wat, name, url, `"hello from wat"`, `{"greeting":"hello from wat"}`); err != nil {
			return nil, err
		}
	}

	// 2. The Go guest, whose first call also starts the restart's
	// comparison.
	goRow := &wasmRow{target: "Go guest (examples/hello-wasm-go), fresh instance", goal: wasmGoGoal}
	out.rows = append(out.rows, goRow)
	rs := &wasmRestart{}
	out.restart = rs
	b.progress("wasm: building examples/hello-wasm-go for wasip1")
	goCode, err := b.buildWasmGo(ctx, "hello-wasm-go")
	if err != nil {
		return nil, err
	}
	goName, goURL, err := b.deployWasm(ctx, n, "wasm-go", goCode, false)
	if err != nil {
		return nil, err
	}
	rs.cacheBeforeFirst = countFiles(cacheDir)
	first, err := b.wasmInvoke(ctx, n, goName, `"hello, x"`)
	if err != nil {
		return nil, err
	}
	rs.cacheAfterFirst = countFiles(cacheDir)
	rs.first, rs.firstInit = first.took, first.init
	b.progress("wasm: the Go guest's first call took %s; %d Invoke and %d function URL calls", fmtDuration(rs.first),
		b.o.wasmCalls, b.o.wasmCalls)
	if err := b.measureWasm(ctx, n, goRow, goName, goURL, `"hello, x"`, "hello, x"); err != nil {
		return nil, err
	}

	// 2b. The Go guest in reuse mode, if this tree has it.
	reuse := &wasmRow{target: "Go guest, reuse mode (examples/hello-wasm-go-reuse)", goal: wasmReuseGoal}
	out.rows = append(out.rows, reuse)
	if why := b.measureReuse(ctx, n, reuse); why != "" {
		reuse.skip = "not available yet (see the notes)"
		b.note("Go guest, reuse mode: not available yet: %s.", why)
	} else if p := percentile(goRow.inNode, 50); p > 0 && percentile(reuse.inNode, 50) > p/2 {
		b.note("The reuse mode's p50 inside the node is not below half the fresh Go guest's: the node may not keep " +
			"its instance between calls yet.")
	}

	// 3. A node restarted on the same data dir: the Go guest's first call
	// should find its machine code in the compilation cache.
	b.progress("wasm: restarting the node on the same data dir")
	start := time.Now()
	err = n.stop(ctx)
	n = nil
	if err != nil {
		return nil, fmt.Errorf("stopping the wasm node: %w", err)
	}
	rs.shutdown = time.Since(start)
	start = time.Now()
	if n, err = startNode(ctx, dir, false); err != nil {
		return nil, fmt.Errorf("restarting the wasm node: %w", err)
	}
	rs.startup = time.Since(start)
	if err := n.api.Health(ctx); err != nil { // and a connection to it
		return nil, err
	}
	rs.cacheBeforeRestarted = countFiles(cacheDir)
	again, err := b.wasmInvoke(ctx, n, goName, `"hello, x"`)
	if err != nil {
		return nil, fmt.Errorf("after the restart: %w", err)
	}
	rs.cacheAfterRestarted = countFiles(cacheDir)
	rs.restarted, rs.restartedInit = again.took, again.init
	b.progress("wasm: the Go guest's first call after the restart took %s", fmtDuration(rs.restarted))
	return out, nil
}

// buildWat assembles the wat example with wabt's wat2wasm and returns its
// code archive, or why it cannot.
func (b *bench) buildWat(ctx context.Context) (code []byte, skip string, err error) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		return nil, "wat2wasm (wabt) is not on PATH", nil
	}
	dir := filepath.Join(b.tmp, "hello-wasm-wat")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, wat2wasm, filepath.Join(b.root, "examples", "hello-wasm-wat", "hello.wat"),
		"-o", filepath.Join(dir, "main.wasm"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("wat2wasm: %w\n%s", err, out)
	}
	code, err = packDir(dir)
	return code, "", err
}

// buildWasmGo builds examples/<example> for WASI preview 1 and returns its
// code archive, main.wasm.
func (b *bench) buildWasmGo(ctx context.Context, example string, flags ...string) ([]byte, error) {
	dir := filepath.Join(b.tmp, example)
	if err := goBuild(ctx, filepath.Join(b.root, "examples", example), filepath.Join(dir, "main.wasm"),
		[]string{"GOOS=wasip1", "GOARCH=wasm"}, flags...); err != nil {
		return nil, err
	}
	return packDir(dir)
}

// deployWasm creates a fresh wasm function, handler main.wasm, with a
// public URL on node n.
func (b *bench) deployWasm(ctx context.Context, n *wispNode, prefix string, code []byte, reuse bool) (name, url string, err error) {
	rt := &runtimeUnderTest{runtime: "wasm", handler: "main.wasm", code: code}
	if !reuse {
		return b.deploy(ctx, n, prefix, rt)
	}
	b.seq++
	name = fmt.Sprintf("%s-%d", prefix, b.seq)
	_, err = n.api.CreateFunction(ctx, apitype.Config{Name: name, Runtime: &rt.runtime, Handler: &rt.handler,
		URLAuth: ptr("none"), Reuse: ptr(true)}, bytes.NewReader(code), int64(len(code)), nil)
	if err != nil {
		return "", "", fmt.Errorf("deploy %s: %w", name, err)
	}
	return name, n.node.URL() + "/fn/" + name + "?name=x", nil
}

// wasmCall is one Invoke API call.
type wasmCall struct {
	requestID string
	took      time.Duration // end to end
	init      time.Duration // the REPORT line's Init Duration; 0 if none or no tail
}

// wasmInvoke calls function name through the Invoke API with the event
// {"name":"x"}, asking for the log tail, and checks the answer holds want.
func (b *bench) wasmInvoke(ctx context.Context, n *wispNode, name, want string) (wasmCall, error) {
	start := time.Now()
	res, err := n.api.Invoke(ctx, name, []byte(`{"name":"x"}`), client.InvokeOptions{Tail: true})
	took := time.Since(start)
	if err != nil {
		return wasmCall{}, fmt.Errorf("invoke %s: %w", name, err)
	}
	if res.FunctionError != "" || !bytes.Contains(res.Payload, []byte(want)) {
		return wasmCall{}, fmt.Errorf("invoke %s: %s %s", name, res.FunctionError, res.Payload)
	}
	c := wasmCall{requestID: res.RequestID, took: took}
	for line := range strings.Lines(string(res.LogTail)) {
		if r, ok := parseReport(strings.TrimRight(line, "\r\n")); ok && r.requestID == res.RequestID {
			c.init = r.init
		}
	}
	return c, nil
}

// measureWasm makes wasmWarmups untimed and then o.wasmCalls timed
// sequential calls of function name through the Invoke API, and as many
// through its function URL, and reads the Invoke calls' durations inside
// the node from their REPORT lines.
func (b *bench) measureWasm(ctx context.Context, n *wispNode, row *wasmRow, name, url, wantInvoke, wantURL string) error {
	var ids []string
	for i := range wasmWarmups + b.o.wasmCalls {
		c, err := b.wasmInvoke(ctx, n, name, wantInvoke)
		if err != nil {
			return err
		}
		if i >= wasmWarmups {
			ids = append(ids, c.requestID)
			row.invokeE2E = append(row.invokeE2E, c.took)
		}
	}
	for i := range wasmWarmups + b.o.wasmCalls {
		took, err := n.callWant(ctx, url, wantURL)
		if err != nil {
			return err
		}
		if i >= wasmWarmups {
			row.urlE2E = append(row.urlE2E, took)
		}
	}
	slices.Sort(row.invokeE2E)
	slices.Sort(row.urlE2E)
	row.calls = len(ids)

	durations, err := reportDurations(ctx, n, name, ids)
	if err != nil {
		return err
	}
	if len(durations) < len(ids) {
		b.note("%s: the logs held the REPORT lines of %d of the %d measured calls; its figures inside the node are of those.",
			row.target, len(durations), len(ids))
	}
	row.inNode = slices.Sorted(slices.Values(durations))
	return nil
}

// reportDurations reads the logs of function name until they hold the
// REPORT lines of the invocations ids, or for 10 s, and returns those
// lines' Durations.
func reportDurations(ctx context.Context, n *wispNode, name string, ids []string) ([]time.Duration, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []time.Duration
		err := n.api.Logs(ctx, name, client.LogsOptions{}, func(rec apitype.LogRecord) error {
			if rec.Stream != "platform" {
				return nil
			}
			if r, ok := parseReport(rec.Message); ok && want[r.requestID] {
				got = append(got, r.duration)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("logs of %s: %w", name, err)
		}
		if len(got) >= len(ids) || time.Now().After(deadline) {
			return got, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// measureReuse builds, deploys and measures the Go guest in reuse mode,
// or says why it cannot.
func (b *bench) measureReuse(ctx context.Context, n *wispNode, row *wasmRow) (whyNot string) {
	const example = "hello-wasm-go-reuse"
	if _, err := os.Stat(filepath.Join(b.root, "examples", example, "main.go")); err != nil {
		return "this tree has no examples/" + example
	}
	// The example is a reactor (-buildmode=c-shared); should it be a
	// command instead, a plain build is the second try.
	var whys []string
	for _, flags := range [][]string{{"-buildmode=c-shared"}, nil} {
		how := strings.Join(append([]string{"go build"}, flags...), " ")
		b.progress("wasm: %s of examples/%s", how, example)
		code, err := b.buildWasmGo(ctx, example, flags...)
		if err != nil {
			whys = append(whys, how+": "+firstLine(err.Error()))
			continue
		}
		name, url, err := b.deployWasm(ctx, n, "wasm-go-reuse", code, true)
		if err != nil {
			whys = append(whys, how+": "+firstLine(err.Error()))
			continue
		}
		if f, err := n.api.GetFunction(ctx, name); err != nil || !f.Reuse {
			whys = append(whys, fmt.Sprintf("%s: the function was deployed but is not in reuse mode (%v)", how, err))
			continue
		}
		if _, err := b.wasmInvoke(ctx, n, name, `"hello, x"`); err != nil {
			whys = append(whys, how+": "+firstLine(err.Error()))
			continue
		}
		if err := b.measureWasm(ctx, n, row, name, url, `"hello, x"`, "hello, x"); err != nil {
			*row = wasmRow{target: row.target, goal: row.goal}
			whys = append(whys, how+": "+firstLine(err.Error()))
			continue
		}
		return ""
	}
	return strings.Join(whys, "; ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// report is what a REPORT line says.
type report struct {
	requestID      string
	duration, init time.Duration
}

// parseReport reads a REPORT line (telemetry.ReportLine):
//
//	REPORT RequestId: <id>	Duration: 0.05 ms	Billed Duration: 1 ms	…	Init Duration: 5.67 ms
func parseReport(line string) (report, bool) {
	rest, ok := strings.CutPrefix(line, "REPORT RequestId: ")
	if !ok {
		return report{}, false
	}
	fields := strings.Split(rest, "\t")
	r := report{requestID: fields[0]}
	haveDuration := false
	for _, f := range fields[1:] {
		key, value, _ := strings.Cut(f, ": ")
		switch key {
		case "Duration":
			d, err := parseMillis(value)
			if err != nil {
				return report{}, false
			}
			r.duration, haveDuration = d, true
		case "Init Duration":
			d, err := parseMillis(value)
			if err != nil {
				return report{}, false
			}
			r.init = d
		}
	}
	if !haveDuration || r.requestID == "" {
		return report{}, false
	}
	return r, true
}

// parseMillis reads "12.34 ms".
func parseMillis(s string) (time.Duration, error) {
	num, ok := strings.CutSuffix(s, " ms")
	if !ok {
		return 0, fmt.Errorf("%q is not in ms", s)
	}
	x, err := strconv.ParseFloat(num, 64)
	if err != nil || x < 0 || math.IsInf(x, 0) {
		return 0, fmt.Errorf("%q is not a duration in ms", s)
	}
	return time.Duration(math.Round(x * float64(time.Millisecond))), nil
}

// countFiles counts the regular files under dir; 0 if it does not exist.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck // a count of what is there
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// renderWasm writes the WebAssembly section.
func (b *bench) renderWasm(w io.Writer, res *wasmResults) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n## WebAssembly: the wasm runtime (wazero; each module compiled once)\n\n")
	p("A node of its own (own data dir) runs the wasm functions, handler `main.wasm`: the wat example assembled with\n"+
		"`wat2wasm`, and the Go example built with `GOOS=wasip1 GOARCH=wasm`. After one untimed cold call and %d untimed\n"+
		"warm-up calls of each kind, each row makes %d sequential calls through the Invoke API (event `{\"name\":\"x\"}`), then\n"+
		"%d through the function URL (`GET /fn/NAME?name=x`). *Inside the node* is the `Duration:` of each measured Invoke\n"+
		"call's REPORT line, read back with the Logs API: the node's own time for the invocation, the fresh instance's\n"+
		"instantiation included (the REPORT line has 10 µs resolution).\n\n", wasmWarmups, b.o.wasmCalls, b.o.wasmCalls)
	p("| guest | calls | inside the node p50 | inside the node p99 | Invoke API p50 (end to end) | function URL p50 (end to end) | goal |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range res.rows {
		if r.skip != "" {
			p("| %s | – | – | – | – | – | %s |\n", r.target, r.skip)
			continue
		}
		p50 := percentile(r.inNode, 50)
		p("| %s | %d | %s | %s | %s | %s | %s p50 inside the node ≤ %s |\n", r.target, r.calls, fmtDuration(p50),
			fmtDuration(percentile(r.inNode, 99)), fmtDuration(percentile(r.invokeE2E, 50)),
			fmtDuration(percentile(r.urlE2E, 50)), check(len(r.inNode) > 0 && p50 <= r.goal), fmtGoalMS(r.goal))
	}

	rs := res.restart
	if rs == nil {
		return
	}
	p("\n### Cold start after a node restart, without compiling again\n\n")
	p("The Go guest's first Invoke call after its deploy compiles the module (and writes it to the compilation cache\n" +
		"under the node's data dir). Then the node is shut down and a new one started on the same data dir\n")
	p("(shutdown %s, start %s), and the Go guest's first call on it is timed the same way, end to end.\n"+
		"The compilation cache's files are counted before and after each call: a call that compiled adds one.\n\n",
		fmtDuration(rs.shutdown), fmtDuration(rs.startup))
	p("| Go guest's first call | end to end | Init Duration (REPORT) | compilation cache files |\n")
	p("| --- | ---: | ---: | ---: |\n")
	initOf := func(d time.Duration) string {
		if d <= 0 {
			return "–"
		}
		return fmtDuration(d)
	}
	p("| after its deploy (compiles) | %s | %s | %d → %d |\n", fmtDuration(rs.first), initOf(rs.firstInit),
		rs.cacheBeforeFirst, rs.cacheAfterFirst)
	p("| after a node restart on the same data dir | %s | %s | %d → %d |\n", fmtDuration(rs.restarted),
		initOf(rs.restartedInit), rs.cacheBeforeRestarted, rs.cacheAfterRestarted)
	compiledFirst := rs.cacheAfterFirst > rs.cacheBeforeFirst
	recompiled := rs.cacheAfterRestarted > rs.cacheBeforeRestarted
	ratio := 0.0
	if rs.restarted > 0 {
		ratio = float64(rs.first) / float64(rs.restarted)
	}
	p("\nThe first call after the restart took %s against the compiling call's %s (%.1f× faster); it %s the\n"+
		"compilation cache (%d → %d files) — %s it did not compile.\n",
		fmtDuration(rs.restarted), fmtDuration(rs.first), ratio,
		map[bool]string{true: "added to", false: "added nothing to"}[recompiled],
		rs.cacheBeforeRestarted, rs.cacheAfterRestarted, check(!recompiled && rs.restarted < rs.first))
	if !compiledFirst {
		b.note("The Go guest's first wasm call added no file to the compilation cache, so the cache counts tell nothing; " +
			"the timings are the evidence.")
	}
}
