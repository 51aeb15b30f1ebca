package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/server"
	"github.com/wisp-dev/wisp/internal/store"
)

// testNodeEnv names the data dir of a node this test binary runs as a
// process of its own, to be killed.
const testNodeEnv = "WISP_TEST_NODE_DIR"

// runTestNode runs a node on dir until the process is killed, and writes
// where it listens to dir/node.json.
func runTestNode(dir string) int {
	n, err := server.Start(context.Background(), server.Config{DataDir: dir, Listen: "127.0.0.1:0",
		RetryBase: fastRetry, EventAckWait: 3 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := announce(dir, n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {}
}

// nodeProcess is a node in a process of its own.
type nodeProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	c      *client.Client
	url    string
}

func startNodeProcess(t *testing.T, dir string) *nodeProcess {
	t.Helper()
	os.Remove(filepath.Join(dir, "node.json"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), testNodeEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()          //nolint:errcheck // it is killed
	t.Cleanup(func() { cmd.Process.Kill(); <-exited }) //nolint:errcheck // it may be dead already
	url, token := announced(t, dir)
	return &nodeProcess{cmd: cmd, exited: exited, c: client.New(url, token), url: url}
}

// TestAsyncDurability: 4,000 events are accepted while the node is killed
// with SIGKILL midway and started again on the same data dir. Every event
// accepted (answered 202) runs at least once; duplicates are few.
func TestAsyncDurability(t *testing.T) {
	needTool(t, "node")
	const total, senders = 4000, 8
	dir := t.TempDir()
	rec := newRecorder(t)
	p := startNodeProcess(t, dir)
	ctx := context.Background()
	var buf = writeFiles(t, map[string]string{"index.js": recorderJS})
	if _, err := deployErr(t, funcNode{c: p.c}, buf, apitype.Config{Name: "sink", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"),
		Network: ptr2("host"), Env: map[string]string{"RECORDER_URL": rec.srv.URL}, Concurrency: ptr2(16)}); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		accepted = map[string]int{} // request id → event number
		sent     atomic.Int64       // accepted so far
	)
	// send offers events from next to total until one fails (the node was
	// killed); it returns the numbers not known to be accepted.
	send := func(c *client.Client, todo []int) []int {
		var (
			wg    sync.WaitGroup
			next  atomic.Int64
			lmu   sync.Mutex
			retry []int
		)
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1)) - 1
					if k >= len(todo) {
						return
					}
					i := todo[k]
					id, err := c.InvokeAsync(ctx, "sink", fmt.Appendf(nil, `{"i":%d}`, i), "")
					if err != nil {
						lmu.Lock()
						retry = append(retry, i)
						lmu.Unlock()
						continue
					}
					mu.Lock()
					accepted[id] = i
					mu.Unlock()
					sent.Add(1)
					// Paced, so that the kill finds events both arriving and running.
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		return retry
	}
	todo := make([]int, total)
	for i := range todo {
		todo[i] = i
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		// Midway: while events are still being accepted and run.
		for sent.Load() < total/2 || len(rec.of("sink")) < 50 {
			time.Sleep(time.Millisecond)
		}
		p.cmd.Process.Kill() //nolint:errcheck // checked by what follows
	}()
	start := time.Now()
	left := send(p.c, todo)
	<-killed
	t.Logf("killed the node after %d accepted events (%s); %d to send again", sent.Load(), time.Since(start).Round(time.Millisecond), len(left))
	ranBeforeKill := len(rec.of("sink"))

	p = startNodeProcess(t, dir)
	if left = send(p.c, left); len(left) != 0 {
		t.Fatalf("%d events refused by the restarted node", len(left))
	}
	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n != total {
		t.Fatalf("%d events accepted, want %d", n, total)
	}

	ran := func() (seen map[string]int) {
		seen = map[string]int{}
		for _, c := range rec.of("sink") {
			seen[c.ID]++
		}
		return seen
	}
	waitUntil(t, 3*time.Minute, "every accepted event runs", func() bool {
		seen := ran()
		for id := range accepted {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(4 * time.Second) // an event redelivered late would run now
	seen := ran()
	dups, extra := 0, 0
	for id, k := range seen {
		if _, ok := accepted[id]; !ok {
			extra++ // stored, but the node died before its 202
		}
		dups += k - 1
	}
	t.Logf("%d accepted, %d ran before the kill, %d runs in all: %d duplicates, %d runs of events stored but never acknowledged, 0 lost, %s",
		total, ranBeforeKill, len(rec.of("sink")), dups, extra, time.Since(start).Round(time.Millisecond))
	if dups > 200 {
		t.Errorf("%d duplicates: more than the events in flight at the kill", dups)
	}

	// Every run whose REPORT line was kept was billed: an event is
	// acknowledged only once its usage record is stored, and its REPORT
	// line is written after that.
	reports := map[string]int{}
	if err := p.c.Logs(ctx, "sink", client.LogsOptions{}, func(r apitype.LogRecord) error {
		if id, ok := strings.CutPrefix(r.Message, "REPORT RequestId: "); ok {
			id, _, _ = strings.Cut(id, "\t")
			reports[id]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The records, read from the node's own store once it is gone.
	p.cmd.Process.Kill() //nolint:errcheck // it may be dead already
	<-p.exited
	records := usageRecordsByID(t, filepath.Join(dir, "nats"), "sink", start.Add(-time.Minute))
	unbilled, some := 0, []string{}
	for id, k := range reports {
		if records[id] < k {
			unbilled += k - records[id]
			if len(some) < 5 {
				some = append(some, fmt.Sprintf("%s: %d REPORT lines, %d records", id, k, records[id]))
			}
		}
	}
	t.Logf("%d REPORT lines of %d request ids, %d usage records: %d runs unbilled %v", sum(reports), len(reports), sum(records), unbilled, some)
	if unbilled > 0 {
		t.Errorf("%d runs have a REPORT line and no usage record", unbilled)
	}
}

// usageRecordsByID counts a function's usage records since from, by
// request id, read from the store in dir (no node may be running on it).
func usageRecordsByID(t *testing.T, dir, fn string, from time.Time) map[string]int {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := meter.Open(ctx, meter.Config{JS: st.JS})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	recs, err := m.Records(ctx, fn, from, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range recs {
		out[r.RequestID]++
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
