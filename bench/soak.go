package main

// The soak of issue 12 ("Harden the node"), go run ./bench -soak 60s: a
// node (wisp server, a process of its own) holds for the soak's length
// 20,000 idle connections (from flooder processes, reopened as the node
// closes them), 4 log-flooding functions (2 Node, 2 wasm) and one async
// flood at once, while
//
//   - /healthz answers every second, on a fresh connection each time;
//   - another function's p50 (examples/hello-go, by its URL, one call after
//     another) stays within 3× of its p50 before the floods;
//   - the node's RSS stays under 1.5 GB;
//   - every event the node accepted (202) runs, within -soak-drain after;
//   - a quiet function's numbered log lines (examples/hello-go, 2 calls a
//     second) are all in its logs at the end.
//
// It prints its figures and a PASS or FAIL line per criterion, and exits 1
// when one fails. go test does not run it.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// The soak's settings and the bounds.
const (
	soakIdleRun      = 5 * time.Second // the victim's idle p50: sequential calls for this long
	soakRampMax      = 30 * time.Second
	soakRampFlat     = 3 * time.Second
	soakAsyncWorkers = 8
	soakQuietEvery   = 500 * time.Millisecond
	soakFloodTimeout = 3 // seconds: the log flooders run until the node stops them
	soakLogWait      = 15 * time.Second
	soakStall        = 30 * time.Second // the drain gives up after this long with no event run
	soakRSSLimit     = 1_500_000_000    // bytes
	soakP50Ratio     = 3
	soakLogShown     = 12 // kinds of node warnings in the table, the commonest
)

// soak is one run of the soak and what it found.
type soak struct {
	o       options
	b       *bench // for its build helpers
	command string
	started time.Time
	loads   [3]string // 1-minute load average at the start, the window's end and the end

	node      *nodeProcess
	api       *client.Client
	rec       *eventRecorder
	victimURL string

	idle, flood loadResult
	floodErr    error // the victim's run under the floods failed
	memory      memorySamples
	flooders    int
	ramp        time.Duration
	connStart   flooderStats // at the window's start
	connEnd     flooderStats // at its end
	minOpen     int64
	maxOpen     int64
	health      []healthProbe
	logFloods   []*logFlood
	quiet       *quietCaller
	quietLost   []int
	quietErr    error
	async       *asyncFlood
	ran, twice  int
	unanswered  int
	queuedAfter float64
	drainTook   time.Duration
	drainEnd    string // why the drain ended
	dataBytes   int64
	stopErr     error
}

// memorySamples are the node's RSS and descriptors, read every second.
type memorySamples struct {
	n        int
	maxRSS   int64
	maxRSSAt time.Duration // since the soak's start
	maxFDs   int
	fdLimit  string // the node's soft limit on descriptors
}

// soakMain runs the soak and returns the exit status: 0 when every
// criterion holds.
func soakMain(ctx context.Context, o options, command string) int {
	s := &soak{o: o, command: command, started: time.Now(), queuedAfter: -1}
	s.loads[0] = loadAverage()
	ok, err := s.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: soak:", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

func (s *soak) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: soak: "+format+"\n", args...)
}

// run sets the soak up, runs it and prints what it found. An error is a
// soak that could not run; a failed criterion is ok false.
func (s *soak) run(ctx context.Context) (ok bool, err error) {
	root, err := moduleRoot()
	if err != nil {
		return false, err
	}
	if _, err := exec.LookPath("node"); err != nil {
		return false, errors.New("the soak's process log flooders are Node functions, and node is not on PATH")
	}
	tmp, err := os.MkdirTemp("", "wisp-soak-")
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	s.b = &bench{o: s.o, tmp: tmp, root: root}

	s.progress("building wisp, examples/hello-go and the soak's functions (bench/testdata/soak)")
	code, err := s.build(ctx)
	if err != nil {
		return false, err
	}
	if s.rec, err = startRecorder(); err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, s.rec.stop(ctx)) }()

	dataDir := filepath.Join(tmp, "node")
	if s.node, err = startNodeProcess(ctx, filepath.Join(tmp, "wisp"), dataDir); err != nil {
		return false, err
	}
	s.progress("node pid %d listens at %s", s.node.cmd.Process.Pid, s.node.url)
	defer func() { err = errors.Join(err, s.node.stop()) }() // a no-op once stopped
	s.api = client.New(s.node.url, s.node.token, client.WithHTTPClient(newLoopbackClient(4)))
	memCtx, stopMemory := context.WithCancel(ctx)
	var memDone sync.WaitGroup
	s.memory.fdLimit = processFDLimit(s.node.cmd.Process.Pid)
	memDone.Go(func() { s.sampleMemory(memCtx) })
	endMemory := func() {
		stopMemory()
		memDone.Wait()
	}
	defer endMemory()

	if err := s.deploy(ctx, code); err != nil {
		return false, fmt.Errorf("%w\nthe node's last log lines:\n%s", err, s.node.logTail())
	}
	s.progress("victim idle: sequential calls for %s", soakIdleRun)
	if s.idle, err = runLoad(ctx, loadConfig{URL: s.victimURL, Conns: 1, Warmup: time.Second, Duration: soakIdleRun,
		MaxRequests: 2_000_000}); err != nil {
		return false, err
	}
	if len(s.idle.Latencies) == 0 {
		return false, fmt.Errorf("the victim answered none of its idle calls (%d errors)", s.idle.Errors)
	}

	s.window(ctx)
	s.loads[1] = loadAverage()
	s.afterWindow(ctx)

	if s.node.alive() {
		s.progress("stopping the node")
		s.stopErr = s.node.stop()
	}
	endMemory()
	s.dataBytes = dirSize(dataDir)
	s.loads[2] = loadAverage()
	return s.render(os.Stdout), nil
}

// soakCode is the code of the soak's functions.
type soakCode struct {
	helloGo, floodNode, floodWasm, subscriber []byte
}

func (s *soak) build(ctx context.Context) (soakCode, error) {
	var c soakCode
	root, tmp := s.b.root, s.b.tmp
	if err := goBuild(ctx, filepath.Join(root, "cmd", "wisp"), filepath.Join(tmp, "wisp"), nil); err != nil {
		return c, err
	}
	var err error
	if c.helloGo, err = s.b.buildHelloGo(ctx); err != nil {
		return c, err
	}
	data := filepath.Join(root, "bench", "testdata", "soak")
	if c.floodNode, err = packDir(filepath.Join(data, "flood-node")); err != nil {
		return c, err
	}
	if err := goBuild(ctx, filepath.Join(data, "flood-wasm"), filepath.Join(tmp, "flood-wasm", "main.wasm"),
		[]string{"GOOS=wasip1", "GOARCH=wasm"}); err != nil {
		return c, err
	}
	if c.floodWasm, err = packDir(filepath.Join(tmp, "flood-wasm")); err != nil {
		return c, err
	}
	if err := goBuild(ctx, filepath.Join(data, "subscriber"), filepath.Join(tmp, "subscriber", "bootstrap"),
		[]string{"CGO_ENABLED=0", "GOOS=linux"}, "-tags", "lambda.norpc"); err != nil {
		return c, err
	}
	c.subscriber, err = packDir(filepath.Join(tmp, "subscriber"))
	return c, err
}

// deploy creates the soak's functions and calls each once but the log
// flooders, which starts their first instances.
func (s *soak) deploy(ctx context.Context, code soakCode) error {
	goRT, nodeRT, wasmRT := "go", "nodejs", "wasm"
	bootstrap, index, mainWasm := "bootstrap", "index.handler", "main.wasm"
	type function struct {
		cfg  apitype.Config
		code []byte
	}
	fns := []function{
		{apitype.Config{Name: "victim", Runtime: &goRT, Handler: &bootstrap, URLAuth: ptr("none")}, code.helloGo},
		{apitype.Config{Name: "quiet", Runtime: &goRT, Handler: &bootstrap}, code.helloGo},
		{apitype.Config{Name: "subscriber", Runtime: &goRT, Handler: &bootstrap, Network: ptr("host"),
			Env: map[string]string{"RECORDER_URL": s.rec.url}}, code.subscriber},
	}
	for i := range 2 {
		fns = append(fns,
			function{apitype.Config{Name: fmt.Sprintf("flood-node-%d", i+1), Runtime: &nodeRT, Handler: &index,
				Timeout: ptr(soakFloodTimeout)}, code.floodNode},
			function{apitype.Config{Name: fmt.Sprintf("flood-wasm-%d", i+1), Runtime: &wasmRT, Handler: &mainWasm,
				Timeout: ptr(soakFloodTimeout)}, code.floodWasm})
	}
	for _, f := range fns {
		if _, err := s.api.CreateFunction(ctx, f.cfg, bytes.NewReader(f.code), int64(len(f.code)), nil); err != nil {
			return fmt.Errorf("deploy %s: %w", f.cfg.Name, err)
		}
		if strings.HasPrefix(f.cfg.Name, "flood-") {
			s.logFloods = append(s.logFloods, &logFlood{name: f.cfg.Name, kind: *f.cfg.Runtime})
		}
	}
	s.victimURL = s.node.url + "/fn/victim?name=x"
	s.quiet = &quietCaller{name: "quiet", every: soakQuietEvery}
	s.async = &asyncFlood{name: "subscriber"}
	for name, event := range map[string]string{"quiet": `{"name":"warm"}`, "subscriber": `{"n":0}`} {
		res, err := s.api.Invoke(ctx, name, []byte(event), client.InvokeOptions{})
		if err == nil && res.FunctionError != "" {
			err = fmt.Errorf("%s: %s", res.FunctionError, res.Payload)
		}
		if err != nil {
			return fmt.Errorf("first call of %s: %w", name, err)
		}
	}
	return nil
}

// sampleMemory reads the node's RSS and descriptors every second until
// ctx ends or the node does.
func (s *soak) sampleMemory(ctx context.Context) {
	pid := s.node.cmd.Process.Pid
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-s.node.exited:
			return
		}
		rss, err := processRSS(pid)
		if err != nil {
			continue // it ended between the tick and the read
		}
		m := &s.memory
		m.n++
		if rss > m.maxRSS {
			m.maxRSS, m.maxRSSAt = rss, time.Since(s.started)
		}
		if fds, err := processFDs(pid); err == nil {
			m.maxFDs = max(m.maxFDs, fds)
		}
	}
}

// window opens the idle connections and then runs every load at once for
// the soak's length.
func (s *soak) window(ctx context.Context) {
	addr := strings.TrimPrefix(s.node.url, "http://")
	s.progress("opening %d idle connections to %s", s.o.soakConns, addr)
	flooders, err := startFlooders(addr, s.o.soakConns)
	if err != nil {
		s.connEnd.Err = "starting the flooders: " + err.Error()
		s.progress("%s", s.connEnd.Err)
	}
	s.flooders = len(flooders)
	// The ramp ends once all are open, or the count has not grown for a
	// while (a node that caps its connections).
	rampStart := time.Now()
	var most int64
	for grew := rampStart; time.Since(rampStart) < soakRampMax && time.Since(grew) < soakRampFlat &&
		s.node.alive() && ctx.Err() == nil && len(flooders) > 0 && most < int64(s.o.soakConns); {
		pause(ctx, 500*time.Millisecond)
		if open := sumFlooders(flooders).Open; open > most {
			most, grew = open, time.Now()
		}
	}
	s.ramp = time.Since(rampStart)
	s.connStart = sumFlooders(flooders)
	s.minOpen, s.maxOpen = s.connStart.Open, s.connStart.Open
	s.progress("%d connections open after %s; the floods run for %s", s.connStart.Open, s.ramp.Round(100*time.Millisecond), s.o.soak)

	win, cancel := context.WithTimeout(ctx, s.o.soak)
	defer cancel()
	floodHC, asyncHC := newLoopbackClient(len(s.logFloods)), newLoopbackClient(soakAsyncWorkers)
	defer floodHC.CloseIdleConnections()
	defer asyncHC.CloseIdleConnections()
	floodAPI := client.New(s.node.url, s.node.token, client.WithHTTPClient(floodHC))
	asyncAPI := client.New(s.node.url, s.node.token, client.WithHTTPClient(asyncHC))
	var wg sync.WaitGroup
	wg.Go(func() {
		// The victim's calls: ctx, not win, so the last call is not cut off.
		s.flood, s.floodErr = runLoad(ctx, loadConfig{URL: s.victimURL, Conns: 1, Duration: s.o.soak, MaxRequests: 2_000_000})
	})
	wg.Go(func() { s.health = probeHealth(win, s.node.url) })
	wg.Go(func() { s.quiet.run(win, s.api) })
	for _, f := range s.logFloods {
		wg.Go(func() { f.run(win, floodAPI) })
	}
	for range soakAsyncWorkers {
		wg.Go(func() { s.async.run(win, asyncAPI) })
	}
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-tick.C:
			case <-win.Done():
				return
			}
			open := sumFlooders(flooders).Open
			s.minOpen, s.maxOpen = min(s.minOpen, open), max(s.maxOpen, open)
			if i%10 == 0 {
				s.progress("%d s: %d connections open, node alive: %v", i, open, s.node.alive())
			}
		}
	})
	wg.Wait()
	s.connEnd = sumFlooders(flooders)
	if err := stopFlooders(flooders); err != nil {
		s.progress("%v", err)
	}
}

// afterWindow waits for the accepted events to run and reads the quiet
// function's logs.
func (s *soak) afterWindow(ctx context.Context) {
	s.async.mu.Lock()
	accepted := slices.Clone(s.async.accepted)
	s.async.mu.Unlock()
	s.progress("waiting up to %s for %d accepted events to run", s.o.soakDrain, len(accepted))
	start := time.Now()
	last, lastAt := -1, start
	for {
		ran, _, _ := s.rec.tally(accepted)
		switch {
		case ran == len(accepted):
			s.drainEnd = "all ran"
		case !s.node.alive():
			s.drainEnd = "the node had ended"
		case time.Since(start) > s.o.soakDrain:
			s.drainEnd = fmt.Sprintf("gave up after -soak-drain %s", s.o.soakDrain)
		case time.Since(lastAt) > soakStall:
			s.drainEnd = fmt.Sprintf("gave up: no event ran for %s", soakStall)
		case ctx.Err() != nil:
			s.drainEnd = "interrupted"
		}
		if ran > last {
			last, lastAt = ran, time.Now()
		}
		if s.drainEnd != "" {
			break
		}
		pause(ctx, 500*time.Millisecond)
	}
	s.drainTook = time.Since(start)
	s.ran, s.twice, s.unanswered = s.rec.tally(accepted)
	if s.node.alive() {
		s.queuedAfter = queuedEvents(ctx, s.api, s.async.name)
		s.progress("reading the quiet function's logs")
		s.quietLost, s.quietErr = s.quiet.missingLines(ctx, s.api, soakLogWait)
	} else {
		s.quietErr = errors.New("the node had ended")
	}
}

// criterion is one bound of the issue, held or not.
type criterion struct {
	ok         bool
	what, seen string
}

// render prints the figures and the criteria, and says whether all held.
func (s *soak) render(w io.Writer) bool {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	mb := func(b int64) string { return fmtRate(float64(b)/1e6) + " MB" }
	p("# Wisp soak\n\n")
	p("- date: %s; command: `%s` (took %s)\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), s.command,
		time.Since(s.started).Round(time.Second))
	p("- Go: %s %s/%s; CPUs: %d; 1-minute load average at the start, the window's end and the end: %s, %s, %s\n",
		goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), s.loads[0], s.loads[1], s.loads[2])
	p("- the node: `wisp server` (pid %d), a process of its own; its sandboxed instances are processes of their own,\n"+
		"  not counted in its RSS. The idle connections come from %d flooder processes (this binary re-executed).\n\n",
		s.node.cmd.Process.Pid, s.flooders)

	p("| figure | value |\n| --- | --- |\n")
	p("| idle connections asked | %s, opened in %s (%s open at the window's start) |\n", fmtRate(float64(s.o.soakConns)),
		s.ramp.Round(100*time.Millisecond), fmtRate(float64(s.connStart.Open)))
	p("| held open during the window | min %s, max %s, %s at its end |\n", fmtRate(float64(s.minOpen)),
		fmtRate(float64(s.maxOpen)), fmtRate(float64(s.connEnd.Open)))
	p("| closed by the node / reopened / failed to open (window) | %s / %s / %s |\n",
		fmtRate(float64(s.connEnd.Closed-s.connStart.Closed)), fmtRate(float64(s.connEnd.Opened-s.connStart.Opened)),
		fmtRate(float64(s.connEnd.DialErrors-s.connStart.DialErrors)))
	if s.connEnd.Err != "" {
		p("| last failure to open | %s |\n", s.connEnd.Err)
	}
	limit := cmp.Or(s.memory.fdLimit, "not told")
	if n, err := strconv.Atoi(limit); err == nil {
		limit = fmtRate(float64(n))
	}
	p("| node descriptors, max | %s (its limit: %s) |\n", fmtRate(float64(s.memory.maxFDs)), limit)
	p("| node RSS, max (%d samples, 1/s) | %s, %s after the start |\n", s.memory.n, mb(s.memory.maxRSS),
		s.memory.maxRSSAt.Round(time.Second))
	answered, slowest, firstErr := 0, time.Duration(0), ""
	for _, h := range s.health {
		if h.err == nil {
			answered++
			slowest = max(slowest, h.took)
		} else if firstErr == "" {
			firstErr = h.err.Error()
		}
	}
	p("| /healthz (fresh connection, %s timeout) | %d of %d answered, slowest %s%s |\n", soakHealthTimeout, answered,
		len(s.health), fmtDuration(slowest), cmpNote(firstErr))
	idle, loaded := percentile(s.idle.Latencies, 50), percentile(s.flood.Latencies, 50)
	ratio := 0.0
	if idle > 0 && loaded > 0 {
		ratio = float64(loaded) / float64(idle)
	}
	p("| victim p50 idle (%d calls) / under the floods (%d calls, %d failed) | %s / %s: %.2f× (p99 %s / %s) |\n",
		len(s.idle.Latencies), len(s.flood.Latencies), s.flood.Errors, fmtDuration(idle), fmtDuration(loaded), ratio,
		fmtDuration(percentile(s.idle.Latencies, 99)), fmtDuration(percentile(s.flood.Latencies, 99)))
	for _, f := range s.logFloods {
		p("| log flood %s (%s, %d s timeout) | %d calls answered (%d with a function error), %d not%s |\n", f.name, f.kind,
			soakFloodTimeout, f.calls, f.funcErrors, f.failed, cmpNote(f.firstErr))
	}
	p("| quiet function (a numbered line every %s) | %d calls answered, %d failed%s; lines missing: %d%s |\n",
		soakQuietEvery, len(s.quiet.answered), s.quiet.failed, cmpNote(s.quiet.firstErr), len(s.quietLost),
		lostNote(s.quietLost, s.quietErr))
	a := s.async
	p("| async flood (%d workers, Invoke API, Event) | %s sent: %s accepted (202), %s refused (429), %s failed%s |\n",
		soakAsyncWorkers, fmtRate(float64(len(a.accepted)+a.refused+a.failed)), fmtRate(float64(len(a.accepted))),
		fmtRate(float64(a.refused)), fmtRate(float64(a.failed)), cmpNote(a.firstErr))
	queued := "not told"
	if s.queuedAfter >= 0 {
		queued = fmtRate(s.queuedAfter)
	}
	p("| accepted events run | %s ran, %s missing; %s after the window (%s); the node's queue then: %s; run twice: %s; "+
		"run but not answered 202: %s |\n", fmtRate(float64(s.ran)), fmtRate(float64(len(a.accepted)-s.ran)),
		s.drainTook.Round(100*time.Millisecond), s.drainEnd, queued, fmtRate(float64(s.twice)), fmtRate(float64(s.unanswered)))
	p("| data dir at the end | %s |\n", mb(s.dataBytes))
	died, diedAt := s.node.died()
	if died {
		p("| the node ended by itself | %s after the start: %v |\n", diedAt.Sub(s.started).Round(time.Second), s.node.exitErr)
	}
	if s.stopErr != nil {
		p("| stopping the node | %v |\n", s.stopErr)
	}
	if s.floodErr != nil {
		p("| the victim's run | %v |\n", s.floodErr)
	}
	s.node.mu.Lock()
	warnings := maps.Clone(s.node.warnings)
	s.node.mu.Unlock()
	kinds := slices.SortedFunc(maps.Keys(warnings), func(a, b string) int {
		return cmp.Or(warnings[b]-warnings[a], strings.Compare(a, b))
	})
	for i, kind := range kinds {
		if i == soakLogShown {
			rest := 0
			for _, k := range kinds[i:] {
				rest += warnings[k]
			}
			p("| node log: %d more kinds of warnings | %d× |\n", len(kinds)-i, rest)
			break
		}
		p("| node log: %s | %d× |\n", strings.ReplaceAll(kind, "|", `\|`), warnings[kind])
	}

	crit := []criterion{
		{!died, "the node ran the whole soak", "it did"},
		{answered == len(s.health) && len(s.health) > 0, "/healthz answered every second",
			fmt.Sprintf("%d of %d within %s", answered, len(s.health), soakHealthTimeout)},
		{ratio > 0 && ratio <= soakP50Ratio && s.flood.Errors == 0 && s.floodErr == nil,
			fmt.Sprintf("the victim's p50 stayed within %d× of its idle p50, every call answered", soakP50Ratio),
			fmt.Sprintf("%.2f×, %d failed", ratio, s.flood.Errors)},
		{s.memory.n > 0 && s.memory.maxRSS < soakRSSLimit, "the node's RSS stayed under 1.5 GB", mb(s.memory.maxRSS)},
		{len(a.accepted) > 0 && s.ran == len(a.accepted), "every accepted event ran",
			fmt.Sprintf("%s of %s", fmtRate(float64(s.ran)), fmtRate(float64(len(a.accepted))))},
		{s.quietErr == nil && len(s.quiet.answered) > 0 && len(s.quietLost) == 0, "no line of the quiet function's log was lost",
			fmt.Sprintf("%d of %d missing", len(s.quietLost), len(s.quiet.answered))},
	}
	if died {
		crit[0].seen = "it ended " + diedAt.Sub(s.started).Round(time.Second).String() + " after the start"
	}
	p("\n")
	failed := 0
	for _, c := range crit {
		verdict := "PASS"
		if !c.ok {
			verdict = "FAIL"
			failed++
		}
		p("%s  %s (%s)\n", verdict, c.what, c.seen)
	}
	if failed > 0 {
		p("\nFAIL: %d of %d criteria\n", failed, len(crit))
		if died {
			p("\nThe node's last log lines:\n%s\n", s.node.logTail())
		}
		return false
	}
	p("\nPASS: all %d criteria\n", len(crit))
	return true
}

// cmpNote is ` (first error: e)`, or nothing for no error.
func cmpNote(e string) string {
	if e == "" {
		return ""
	}
	return " (first error: " + strings.ReplaceAll(cut(e, 200), "|", `\|`) + ")"
}

// lostNote names the first lost lines, or why the logs could not be read.
func lostNote(lost []int, err error) string {
	if err != nil {
		return cmpNote(err.Error())
	}
	if len(lost) == 0 {
		return ""
	}
	var names []string
	for _, i := range lost[:min(len(lost), 5)] {
		names = append(names, quietName(i))
	}
	return " (" + strings.Join(names, ", ") + ")"
}
