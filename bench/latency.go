package main

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

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
		err := b.sandboxed.api.Logs(ctx, name, client.LogsOptions{}, func(r apitype.LogRecord) error {
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
