package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
