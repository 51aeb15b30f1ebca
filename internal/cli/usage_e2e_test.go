package cli

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/server"
)

// TestUsageAgainstANode meters a real node: a function deployed with a
// quota of 3 invocations an hour is invoked until the quota refuses it,
// then wisp usage shows the invocations (in the table, as JSON and one by
// one), wisp get the quota, and the spend-caps topic the cap.
func TestUsageAgainstANode(t *testing.T) {
	// The wasm example (assembled here) when wabt is installed: quick, and
	// it succeeds. Otherwise a provided function that fails at once, which
	// is metered all the same.
	dir, args := t.TempDir(), []string{"--runtime", "wasm", "--handler", "main.wasm"}
	outcome := "success"
	if wat2wasm, err := exec.LookPath("wat2wasm"); err == nil {
		if out, err := exec.Command(wat2wasm, filepath.Join("..", "..", "examples", "hello-wasm-wat", "hello.wat"),
			"-o", filepath.Join(dir, "main.wasm")).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm: %v\n%s", err, out)
		}
	} else {
		t.Log("wat2wasm (wabt) is not installed: metering a provided function that fails instead")
		dir, args, outcome = failingDir(t), []string{"--runtime", "provided"}, "error"
	}

	prices := meter.Prices{PerRequest: 0.1 / 1e6, PerGBSecond: 0.00001}
	env, run := startNode(t, server.Config{Prices: &prices})
	// poll calls ok until it holds, for up to 5 seconds.
	poll := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 5s: %s", what)
			}
		}
	}

	run(append([]string{"deploy", dir, "--name", "metered", "--quota-period", "hour", "--quota-invocations", "3"}, args...)...)
	if out := run("get", "metered"); !strings.Contains(out, "quota:         3 invocations per hour; capped events wait\n") {
		t.Errorf("wisp get shows no quota:\n%s", out)
	}
	// Three invocations, counted within about a second.
	for range 3 {
		if _, errOut, err := runCLI(t, env, "invoke", "metered"); err != nil && outcome == "success" {
			t.Fatalf("invoke: %v\n%s", err, errOut)
		}
	}
	var rep apitype.UsageReport
	usage := func(args ...string) apitype.UsageReport {
		t.Helper()
		out := run(append(append([]string{"usage"}, args...), "-o", "json")...)
		var rep apitype.UsageReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("wisp usage -o json: %v\n%s", err, out)
		}
		return rep
	}
	poll("wisp usage counts the invocations", func() bool {
		rep = usage("metered")
		return len(rep.Functions) == 1 && rep.Functions[0].Invocations >= 3
	})
	f := rep.Functions[0]
	if f.Function != "metered" || f.Invocations != 3 || f.BilledMs < 3 || f.MBms != 128*f.BilledMs ||
		rep.Granularity != "day" || rep.Prices != apitype.Prices(prices) || rep.LambdaX86 != apitype.Prices(meter.LambdaX86) || rep.Total.Invocations != 3 {
		t.Errorf("usage report %+v", rep)
	}
	// A function that fails at init is not counted as started cold.
	if outcome == "error" && f.Errors != 3 || outcome == "success" && (f.Errors != 0 || f.ColdStarts != 1) {
		t.Errorf("%d errors and %d cold starts of 3 %s invocations", f.Errors, f.ColdStarts, outcome)
	}

	// Now the quota refuses calls, once the node's cached count (at most
	// 200ms old) has them: a call or two more may run before.
	ran, refused := int64(3), ""
	poll("the quota refuses a call", func() bool {
		_, errOut, _ := runCLI(t, env, "invoke", "metered")
		if !strings.Contains(errOut, "SpendCapExceeded") {
			ran++
			return false
		}
		refused = errOut
		return true
	})
	if !strings.Contains(refused, "TooManyRequestsException") || !strings.Contains(refused, "quota of 3 invocations is used up") {
		t.Errorf("a capped call: %q", refused)
	}
	if ran > 3 {
		t.Logf("%d calls ran before the cap of 3 took effect", ran)
	}
	poll("wisp usage counts every call that ran", func() bool { return usage().Total.Invocations == ran })

	table := run("usage")
	t.Logf("wisp usage:\n%s", table)
	for _, re := range []string{
		`(?m)^FUNCTION +INVOCATIONS +ERRORS +COLD +GB-S +COST +TREND$`,
		`(?m)^metered +` + strconv.FormatInt(ran, 10) + ` +\d +\d +0\.\d+ +\$0\.0+[1-9]\d +[ ▁]*█$`,
		`(?m)^TOTAL +` + strconv.FormatInt(ran, 10) + ` `,
		`(?m)^\S+ to \S+ by day \(TREND: invocations per day, the last 8\)$`,
		`(?m)^prices: \$0\.10 per 1M requests, \$0\.00001 per GB-s \(AWS Lambda x86: \$0\.20 per 1M requests, \$0\.0000166667 per GB-s\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(table) {
			t.Errorf("wisp usage does not match %s:\n%s", re, table)
		}
	}
	if out := run("usage", "metered", "--since", "2h", "--granularity", "hour"); !strings.Contains(out, "by hour (TREND: invocations per hour, the last 3)") {
		t.Errorf("wisp usage by hour:\n%s", out)
	}

	var recs []apitype.UsageRecord
	poll("wisp usage --records lists the invocations", func() bool {
		if err := json.Unmarshal([]byte(run("usage", "metered", "--records", "-o", "json")), &recs); err != nil {
			t.Fatal(err)
		}
		return int64(len(recs)) == ran
	})
	records := run("usage", "metered", "--records")
	t.Logf("wisp usage metered --records:\n%s", records)
	lines := strings.Split(strings.TrimSpace(records), "\n")
	if len(lines) != len(recs)+1 || !strings.HasPrefix(lines[0], "START ") {
		t.Fatalf("records table:\n%s", records)
	}
	for i, r := range recs {
		if r.Trigger != "sync" || r.Outcome != outcome || r.MemoryMB != 128 || r.BilledMs < 1 {
			t.Errorf("record %+v", r)
		}
		if !strings.Contains(lines[i+1], r.RequestID) || !strings.Contains(lines[i+1], " sync ") || !strings.HasSuffix(lines[i+1], outcome) {
			t.Errorf("record line %q, want %s", lines[i+1], r.RequestID)
		}
	}

	// The cap was told once, on the spend-caps topic.
	var evs []apitype.TopicEvent
	poll("the cap is told on spend-caps", func() bool {
		if err := json.Unmarshal([]byte(run("events", "read", apitype.SpendCapTopic, "-o", "json")), &evs); err != nil {
			t.Fatal(err)
		}
		return len(evs) > 0
	})
	var ev struct {
		Type string
		Data apitype.SpendCap
	}
	if err := json.Unmarshal(evs[0].Event, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "wisp.cap.exceeded" || ev.Data.Function != "metered" || ev.Data.Scope != "function" ||
		ev.Data.Limit != "invocations" || ev.Data.Max != 3 || len(evs) != 1 {
		t.Errorf("spend-caps: %d events, the first %s", len(evs), evs[0].Event)
	}

	// Lifting the quota lets calls through again.
	run("deploy", dir, "--name", "metered", "--quota-period", "")
	if out := run("get", "metered"); !strings.Contains(out, "quota:         none\n") {
		t.Errorf("wisp get after the quota is removed:\n%s", out)
	}
	if _, errOut, err := runCLI(t, env, "invoke", "metered"); strings.Contains(errOut, "SpendCapExceeded") {
		t.Errorf("a call after the quota is removed: %v %s", err, errOut)
	}

	for _, tc := range []struct{ args, want string }{
		{"usage --granularity week", `wisp: --granularity "week" must be hour or day (see 'wisp usage --help')`},
		{"usage --records", `wisp: --records lists one function's invocations: give exactly one NAME, not 0 (see 'wisp usage --help')`},
		{"usage nope", `wisp: function "nope" not found (ResourceNotFoundException)`},
		{"usage nope --records", `wisp: function "nope" not found (ResourceNotFoundException)`},
	} {
		_, errOut, err := runCLI(t, env, strings.Fields(tc.args)...)
		if err == nil || errOut != tc.want+"\n" {
			t.Errorf("wisp %s: %v %q, want %q", tc.args, err, errOut, tc.want)
		}
	}
}
