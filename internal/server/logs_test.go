package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// floodJS writes to stderr as its event asks: lines numbered after tag,
// then unnumbered ones for ms milliseconds. It writes to the pipe itself,
// waiting while the pipe is full (Node's process.stderr would queue what
// the pipe does not take in the instance's memory).
const floodJS = `const fs = require('fs');
const nap = new Int32Array(new SharedArrayBuffer(4));
function write(s) {
  const b = Buffer.from(s);
  for (let off = 0; off < b.length; ) {
    try {
      off += fs.writeSync(2, b, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(nap, 0, 0, 1); // the pipe is full: wait for the node to read it
    }
  }
}
exports.handler = async (ev) => {
  const pad = 'x'.repeat(ev.bytes || 64);
  let n = 0;
  for (let i = 0; i < (ev.lines || 0); i++, n++) write(` + "`${ev.tag || ''}${i} ${pad}\\n`" + `);
  const line = pad + '\n';
  for (const end = Date.now() + (ev.ms || 0); Date.now() < end; n++) write(line);
  return { written: n };
};
`

// floodEvent is what the flood functions (floodJS and the wasm
// testdata/logflood) are asked to write.
type floodEvent struct {
	Lines int    `json:"lines,omitempty"`
	Tag   string `json:"tag,omitempty"`
	Bytes int    `json:"bytes,omitempty"`
	MS    int    `json:"ms,omitempty"`
}

// logFloodWasm assembles testdata/logflood.wat, or skips the test where
// wabt's wat2wasm is not installed (.ci/run installs it).
func logFloodWasm(t *testing.T) string {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm (Debian's wabt) is not installed, so the wasm flood cannot be built; .ci/run installs it")
	}
	dir := t.TempDir()
	if out, err := exec.Command(wat2wasm, filepath.Join("testdata", "logflood.wat"), "-o", filepath.Join(dir, "main.wasm")).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	return dir
}

func (n funcNode) deployFlood(t *testing.T, name, rt string, logs *apitype.LogsPatch) {
	t.Helper()
	cfg := apitype.Config{Name: name, Runtime: ptr2(rt), Timeout: ptr2(30), MemoryMB: ptr2(256), Logs: logs}
	dir := ""
	if rt == "wasm" {
		dir = logFloodWasm(t)
		cfg.Handler = ptr2("main.wasm")
	} else {
		dir = writeFiles(t, map[string]string{"index.js": floodJS})
		cfg.Handler = ptr2("index.handler")
	}
	n.deploy(t, dir, cfg)
}

// flood invokes a flood function with ev (a floodEvent, or for the wasm
// one its milliseconds) and returns the lines it wrote, and the request id.
func (n funcNode) flood(t *testing.T, name string, ev any) (int, string) {
	t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.c.Invoke(context.Background(), name, payload, client.InvokeOptions{})
	if err != nil {
		t.Errorf("invoke %s: %v", name, err)
		return 0, ""
	}
	var out struct{ Written int }
	if res.FunctionError != "" || json.Unmarshal(res.Payload, &out) != nil {
		t.Errorf("invoke %s: %s %s", name, res.FunctionError, res.Payload)
	}
	return out.Written, res.RequestID
}

// readLogs is a function's records, without following.
func (n funcNode) readLogs(t *testing.T, name string, opt client.LogsOptions) []apitype.LogRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []apitype.LogRecord
	if err := n.c.Logs(ctx, name, opt, func(r apitype.LogRecord) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return recs
}

// hasLine reports whether recs hold a line that begins with prefix.
func hasLine(recs []apitype.LogRecord, prefix string) bool {
	for _, r := range recs {
		if strings.HasPrefix(r.Message, prefix) {
			return true
		}
	}
	return false
}

func streamConfig(t *testing.T, js jetstream.JetStream, function string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), telemetry.LogStreamName(function))
	if err != nil {
		t.Fatalf("the log stream of %s: %v", function, err)
	}
	return s.CachedInfo().Config
}

// TestLogRetentionPerFunction floods one function's log far past its
// max_bytes while another wrote a few lines: the other's lines are all
// still there, and the flood's stream holds at most its bytes, its newest
// lines. Each stream has its function's limits, or the node's.
func TestLogRetentionPerFunction(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{NATSListen: "127.0.0.1:0", Logs: telemetry.LogsConfig{Rate: 1 << 30, Burst: 1 << 30, DefaultMaxAge: 48 * time.Hour}})
	js := jetStream(t, n)
	mb, age := int64(1<<20), 2*3600
	n.deployFlood(t, "flood", "nodejs", &apitype.LogsPatch{MaxBytes: &mb, MaxAge: &age})
	n.deployFlood(t, "quiet", "nodejs", nil)

	if got, _ := n.flood(t, "quiet", floodEvent{Lines: 5, Tag: "quiet-"}); got != 5 {
		t.Fatalf("quiet wrote %d lines", got)
	}
	const lines = 256 // of 32 KiB: 8 MiB, eight times the flood's max_bytes
	if got, _ := n.flood(t, "flood", floodEvent{Lines: lines, Tag: "flood-", Bytes: 32 << 10}); got != lines {
		t.Fatalf("flood wrote %d lines", got)
	}
	last := fmt.Sprintf("flood-%d ", lines-1)
	waitUntil(t, 10*time.Second, "the flood's last line is stored", func() bool {
		return hasLine(n.readLogs(t, "flood", client.LogsOptions{}), last)
	})

	quiet := n.readLogs(t, "quiet", client.LogsOptions{})
	for i := range 5 {
		if !hasLine(quiet, fmt.Sprintf("quiet-%d ", i)) {
			t.Errorf("quiet's line %d is gone: the flood erased it", i)
		}
	}
	flood := n.readLogs(t, "flood", client.LogsOptions{})
	var kept int
	for _, r := range flood {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		kept += len(b) + 1
	}
	if kept > 1<<20 {
		t.Errorf("the flood's log holds %d bytes of records, over its max_bytes of 1 MiB", kept)
	}
	if hasLine(flood, "flood-0 ") {
		t.Error("the flood's oldest line was kept")
	}
	t.Logf("the flood's stream kept %d records, %d bytes", len(flood), kept)

	if c := streamConfig(t, js, "flood"); c.MaxBytes != 1<<20 || c.MaxAge != 2*time.Hour || c.Discard != jetstream.DiscardOld {
		t.Errorf("the flood's stream keeps %d bytes for %v (discard %v), want 1 MiB for 2h, the oldest first", c.MaxBytes, c.MaxAge, c.Discard)
	}
	if c := streamConfig(t, js, "quiet"); c.MaxBytes != telemetry.DefaultLogMaxBytes || c.MaxAge != 48*time.Hour {
		t.Errorf("quiet's stream keeps %d bytes for %v, want the node's 64 MiB for 48h", c.MaxBytes, c.MaxAge)
	}
	// A new max_age reaches the stream.
	age = 3 * 3600
	if _, err := n.c.UpdateConfig(context.Background(), "flood", apitype.Config{Logs: &apitype.LogsPatch{MaxAge: &age}}, 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the flood's stream has its new max_age", func() bool {
		return streamConfig(t, js, "flood").MaxAge == 3*time.Hour
	})
}

// noteRE is the note of records dropped for the rate.
var noteRE = regexp.MustCompile(`^wisp: (\d+) bytes of log dropped: over the rate of 256 KiB/s$`)

// TestLogRatePerFunction has a function write far faster than its rate:
// its log says how many bytes were dropped, the metric counts as many, and
// another function's lines, written meanwhile, are all kept. Deleting the
// function deletes its logs and its series.
func TestLogRatePerFunction(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{NATSListen: "127.0.0.1:0", Logs: telemetry.LogsConfig{Rate: 256 << 10, Burst: 256 << 10}})
	js := jetStream(t, n)
	n.deployFlood(t, "fast", "nodejs", nil)
	n.deployFlood(t, "calm", "nodejs", nil)

	var wg sync.WaitGroup
	wg.Go(func() {
		if got, _ := n.flood(t, "fast", floodEvent{Lines: 128, Tag: "fast-", Bytes: 32 << 10}); got != 128 {
			t.Errorf("fast wrote %d lines", got)
		}
	})
	wg.Go(func() {
		for i := range 4 {
			if got, _ := n.flood(t, "calm", floodEvent{Lines: 5, Tag: fmt.Sprintf("calm-%d-", i)}); got != 5 {
				t.Errorf("calm wrote %d lines", got)
			}
		}
	})
	wg.Wait()

	// Records are dropped as they come, the note of them within seconds.
	var noted, counted float64
	waitUntil(t, 15*time.Second, "the notes add up to the bytes the metric counts", func() bool {
		mfs, err := nodestats.Metrics(context.Background(), n.c)
		if err != nil {
			t.Fatal(err)
		}
		counted = dropped(mfs[telemetry.MetricLogDropped], "fast", telemetry.DropRate)
		noted = 0
		for _, r := range n.readLogs(t, "fast", client.LogsOptions{}) {
			if m := noteRE.FindStringSubmatch(r.Message); m != nil {
				if r.Stream != telemetry.StreamPlatform {
					t.Errorf("a note on stream %q", r.Stream)
				}
				v, _ := strconv.ParseFloat(m[1], 64)
				noted += v
			}
		}
		return counted > 0 && noted == counted
	})
	t.Logf("%.0f bytes of fast's log dropped for its rate", counted)
	fast := n.readLogs(t, "fast", client.LogsOptions{})
	if !hasLine(fast, "fast-0 ") || len(fast) >= 128 {
		t.Errorf("fast kept %d records: want its first lines, and most of its 128 dropped", len(fast))
	}
	calm := n.readLogs(t, "calm", client.LogsOptions{})
	for i := range 4 {
		for j := range 5 {
			if !hasLine(calm, fmt.Sprintf("calm-%d-%d ", i, j)) {
				t.Errorf("calm's line %d of call %d is missing", j, i)
			}
		}
	}
	mfs, err := nodestats.Metrics(context.Background(), n.c)
	if err != nil {
		t.Fatal(err)
	}
	if v := dropped(mfs[telemetry.MetricLogDropped], "calm", ""); v != 0 {
		t.Errorf("%v bytes of calm's log dropped", v)
	}

	// A deleted function's logs and series go with it.
	if err := n.c.DeleteFunction(context.Background(), "fast", 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "fast's series and stream are deleted", func() bool {
		mfs, err := nodestats.Metrics(context.Background(), n.c)
		if err != nil {
			t.Fatal(err)
		}
		_, serr := js.Stream(context.Background(), telemetry.LogStreamName("fast"))
		return dropped(mfs[telemetry.MetricLogDropped], "fast", "") == 0 && serr != nil
	})
	if recs := n.readLogs(t, "fast", client.LogsOptions{}); len(recs) != 0 {
		t.Errorf("a deleted function has %d records", len(recs))
	}
}

// dropped is the family's value for function and reason ("": any), 0
// when it has none.
func dropped(mf *dto.MetricFamily, function, reason string) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["function"] == function && (reason == "" || labels["reason"] == reason) {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// nodeMemory is what this process, and so the node in it, holds as the
// system sees it (VmRSS) and as Go does (what its runtime has mapped and
// not handed back), after a collection that hands back what is free.
// Under the race detector RSS also counts the detector's shadow of the
// heap, several times the heap, and never handed back.
func nodeMemory(t *testing.T) (rss, held int64) {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	held = int64(ms.Sys - ms.HeapReleased)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10, held
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0, 0
}

// TestLogFloodKeepsNodeMemoryBounded floods the logs from four functions
// at once, two processes and two wasm modules, each writing 64 KiB lines
// to stderr as fast as it can for seconds, with no rate to stop them: the
// node (in this process) grows by less than 200 MB, since the writers
// wait for room rather than have their lines queued or dropped, and calls
// work afterwards.
func TestLogFloodKeepsNodeMemoryBounded(t *testing.T) {
	needTool(t, "node")
	logFloodWasm(t) // or skip before starting anything
	// No rate to drop the flood's lines, and writers that would wait a
	// minute for room before they drop one.
	n := startNode(t, server.Config{Logs: telemetry.LogsConfig{Rate: 1 << 40, Burst: 1 << 40, MaxWait: time.Minute}})
	type fn struct {
		name, runtime string
		warm, flood   any // the events that warm it and flood with it
	}
	fns := []fn{
		{"proc-a", "nodejs", floodEvent{Lines: 10, Bytes: 64 << 10}, floodEvent{MS: 4000, Bytes: 64 << 10}},
		{"proc-b", "nodejs", floodEvent{Lines: 10, Bytes: 64 << 10}, floodEvent{MS: 4000, Bytes: 64 << 10}},
		{"wasm-a", "wasm", 10, 4000},
		{"wasm-b", "wasm", 10, 4000},
	}
	for _, f := range fns {
		n.deployFlood(t, f.name, f.runtime, nil)
		// Warm: the instances started and the module compiled are not the
		// flood's.
		n.flood(t, f.name, f.warm)
	}
	base, baseHeld := nodeMemory(t)

	var wg sync.WaitGroup
	written := make([]int, len(fns))
	for i, f := range fns {
		wg.Go(func() { written[i], _ = n.flood(t, f.name, f.flood) })
	}
	flooded := make(chan struct{})
	go func() {
		wg.Wait()
		close(flooded)
	}()
	peak, peakHeld := base, baseHeld
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-flooded:
			done = true
		case <-tick.C:
		}
		rss, held := nodeMemory(t)
		peak, peakHeld = max(peak, rss), max(peakHeld, held)
	}
	var lines int
	for _, w := range written {
		lines += w
	}
	t.Logf("node RSS %d MB before the flood, %d MB at most during it (+%d MB); Go's memory %d MB, at most %d MB (+%d MB); %d lines of 64 KiB written",
		base>>20, peak>>20, (peak-base)>>20, baseHeld>>20, peakHeld>>20, (peakHeld-baseHeld)>>20, lines)
	if peak-base >= 200<<20 && !raceEnabled {
		t.Errorf("the node's RSS grew by %d MB in the flood, want under 200 MB", (peak-base)>>20)
	}
	if peakHeld-baseHeld >= 200<<20 {
		t.Errorf("the node's memory grew by %d MB in the flood, want under 200 MB", (peakHeld-baseHeld)>>20)
	}
	mfs, err := nodestats.Metrics(context.Background(), n.c)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range fns {
		if written[i] == 0 {
			t.Errorf("%s wrote nothing", f.name)
		}
		// The writers waited for room: none of their lines was dropped.
		if v := dropped(mfs[telemetry.MetricLogDropped], f.name, ""); v != 0 {
			t.Errorf("%v bytes of %s's log dropped", v, f.name)
		}
	}

	// Calls work afterwards, and their lines are kept.
	for _, f := range fns {
		var (
			ev   any    = floodEvent{Lines: 3, Tag: "after-"}
			line string = "after-2 "
		)
		if f.runtime == "wasm" {
			ev, line = 0, "after"
		}
		_, id := n.flood(t, f.name, ev)
		if id == "" {
			t.Fatalf("%s failed after the flood", f.name)
		}
		waitUntil(t, 10*time.Second, f.name+"'s lines after the flood are stored", func() bool {
			return hasLine(n.readLogs(t, f.name, client.LogsOptions{RequestID: id}), line)
		})
	}
}
