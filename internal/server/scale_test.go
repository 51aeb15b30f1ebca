package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
)

// pidHandler answers with its instance's log stream name, which names the
// instance, so a test can count instances and find their processes.
const pidHandler = `exports.handler = async (e) => {
  if (e && e.sleep) await new Promise(r => setTimeout(r, e.sleep));
  if (e && e.die) setTimeout(() => process.exit(3), 20);
  return {id: process.env.AWS_LAMBDA_LOG_STREAM_NAME, v: process.env.V || ""};
};`

type pidAnswer struct {
	ID string `json:"id"`
	V  string `json:"v"`
}

func (n funcNode) instances(name string) (idle, busy int) {
	for _, s := range n.Instances() {
		if s.Function == name {
			idle += s.Idle
			busy += s.Busy + s.Starting
		}
	}
	return idle, busy
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A burst of 200 concurrent calls to a cold function with concurrency 20:
// every call succeeds, at most 20 instances ever run, and no caller waits
// past its deadline.
func TestBurstWithinConcurrency(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": pidHandler}), apitype.Config{Name: "burst",
		Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Concurrency: ptr2(20), Timeout: ptr2(10)})
	var (
		mu   sync.Mutex
		pids = map[string]bool{}
		wg   sync.WaitGroup
		errs = make(chan error, 200)
	)
	start := time.Now()
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := n.c.Invoke(context.Background(), "burst", []byte(`{"sleep":20}`), client.InvokeOptions{})
			if err == nil && res.FunctionError != "" {
				err = errors.New(string(res.Payload))
			}
			if err != nil {
				errs <- err
				return
			}
			var a pidAnswer
			if err := json.Unmarshal(res.Payload, &a); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			pids[a.ID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(pids) > 20 {
		t.Errorf("%d instances ran, want at most 20", len(pids))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the burst took %s, past the callers' 10 s deadline", d)
	}
	t.Logf("200 calls on %d instances in %s", len(pids), time.Since(start))

	// /metrics, parsed with the Prometheus text parser, tells the same.
	// Instances started for the queue may come up after a warm one took
	// their caller: they count once they are idle, not as cold starts.
	var (
		mfs map[string]*dto.MetricFamily
		got *apitype.FunctionStats
	)
	waitUntil(t, 5*time.Second, "no instance still starting", func() bool {
		var err error
		if mfs, err = nodestats.Metrics(context.Background(), n.c); err != nil {
			t.Fatal(err)
		}
		got = nil
		for _, s := range nodestats.FromMetrics(mfs) {
			if s.Function == "burst" {
				got = &s
			}
		}
		return got != nil && got.Starting == 0
	})
	if got.Invocations != 200 || got.Errors != 0 || got.ColdStarts != int64(len(pids)) ||
		got.Idle < len(pids) || got.Idle > 20 || got.Busy != 0 || got.P50 == nil {
		t.Errorf("metrics: %+v, want 200 invocations, no errors, %d cold starts, %d to 20 idle instances", got, len(pids), len(pids))
	}
	for _, name := range []string{"wisp_invocation_duration_seconds", "wisp_init_duration_seconds", "wisp_queue_depth", "wisp_concurrent_executions"} {
		if mfs[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if _, err := nodestats.Metrics(context.Background(), client.New(n.URL(), "wrong")); err == nil {
		t.Error("/metrics answered a wrong token")
	}
}

func TestThrottledFunction(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": pidHandler}), apitype.Config{Name: "off",
		Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Concurrency: ptr2(0), URLAuth: ptr2("none")})
	_, err := n.c.Invoke(context.Background(), "off", nil, client.InvokeOptions{})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.Type != "TooManyRequestsException" {
		t.Fatalf("invoke of a function with concurrency 0: %v", err)
	}
	res, err := http.Get(n.URL() + "/fn/off")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("function URL: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// The reason is Lambda's.
	req, _ := http.NewRequest("POST", n.URL()+"/2015-03-31/functions/off/invocations", nil)
	req.Header.Set("Authorization", "Bearer "+n.AdminToken())
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ Reason string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Reason != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("reason %q (%v)", body.Reason, err)
	}
}

// Idle instances stop after the keep-warm period; the next call is cold.
func TestScaleToZero(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": pidHandler}), apitype.Config{Name: "nap",
		Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), KeepWarm: ptr2(1)})
	first := invokeID(t, n, "nap")
	if idle, _ := n.instances("nap"); idle != 1 {
		t.Fatalf("%d idle after a call, want 1", idle)
	}
	waitUntil(t, 5*time.Second, "scale to zero", func() bool { idle, busy := n.instances("nap"); return idle+busy == 0 })
	waitUntil(t, 2*time.Second, "the idle instance's process gone", func() bool { return !alive(first.ID) })
	second := invokeID(t, n, "nap")
	if second.ID == first.ID {
		t.Error("the call after scaling to zero was not a cold start")
	}
}

func invokeID(t *testing.T, n funcNode, name string) pidAnswer {
	t.Helper()
	res, err := n.c.Invoke(context.Background(), name, nil, client.InvokeOptions{})
	if err != nil || res.FunctionError != "" {
		t.Fatalf("invoke %s: %v %s", name, err, res.Payload)
	}
	var a pidAnswer
	if err := json.Unmarshal(res.Payload, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// alive says whether a process of the instance with this log stream name
// runs on the machine, sandboxed or not: its environment names it.
func alive(stream string) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	needle := []byte("AWS_LAMBDA_LOG_STREAM_NAME=" + stream + "\x00")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && bytes.Contains(env, needle) {
			return true
		}
	}
	return false
}

// min_instances start on deploy, before any call, and are replaced when
// they die.
func TestMinInstances(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": pidHandler}), apitype.Config{Name: "warm",
		Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), MinInstances: ptr2(2)})
	waitUntil(t, 5*time.Second, "two warm instances", func() bool { idle, _ := n.instances("warm"); return idle == 2 })
	// One dies after answering: the pool notices and starts another to
	// keep two.
	res, err := n.c.Invoke(context.Background(), "warm", []byte(`{"die":true}`), client.InvokeOptions{})
	if err != nil || res.FunctionError != "" {
		t.Fatalf("invoke: %v %s", err, res.Payload)
	}
	var a pidAnswer
	if err := json.Unmarshal(res.Payload, &a); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Second, "the dead instance gone", func() bool { return !alive(a.ID) })
	time.Sleep(1200 * time.Millisecond) // a scaler tick
	waitUntil(t, 5*time.Second, "two warm instances again", func() bool {
		idle, busy := n.instances("warm")
		return idle == 2 && busy == 0
	})
	if b := invokeID(t, n, "warm"); b.ID == a.ID {
		t.Error("the dead instance was handed a call")
	}
}

// An update drains the old instances: a call in flight finishes on the old
// code, and new calls run the new code.
func TestUpdateDrains(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	ctx := context.Background()
	n.deploy(t, writeFiles(t, map[string]string{"index.js": pidHandler}), apitype.Config{Name: "up",
		Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Env: map[string]string{"V": "old"}})
	old := invokeID(t, n, "up")
	inflight := make(chan pidAnswer)
	go func() {
		res, err := n.c.Invoke(ctx, "up", []byte(`{"sleep":500}`), client.InvokeOptions{})
		var a pidAnswer
		if err == nil {
			err = json.Unmarshal(res.Payload, &a)
		}
		if err != nil {
			t.Error(err)
		}
		inflight <- a
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := n.c.UpdateConfig(ctx, "up", apitype.Config{Env: map[string]string{"V": "new"}}, 0); err != nil {
		t.Fatal(err)
	}
	if a := invokeID(t, n, "up"); a.V != "new" {
		t.Errorf("a call after the update ran %q", a.V)
	}
	if a := <-inflight; a.V != "old" || a.ID != old.ID {
		t.Errorf("the call in flight got %+v, want the old instance's answer", a)
	}
	waitUntil(t, 5*time.Second, "the old instance stopped", func() bool { return !alive(old.ID) })

	// Deleting the function drains it too.
	newID := invokeID(t, n, "up").ID
	if err := n.c.DeleteFunction(ctx, "up", 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "instances of a deleted function stopped", func() bool { return !alive(newID) })
}

// A node's shutdown leaves no instance behind.
func TestShutdownStopsInstances(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	var buf bytes.Buffer
	if err := client.Pack(writeFiles(t, map[string]string{"index.js": pidHandler}), &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.CreateFunction(context.Background(), apitype.Config{Name: "bye", Runtime: ptr2("nodejs"),
		Handler: ptr2("index.handler"), MinInstances: ptr2(1)}, &buf, int64(buf.Len()), nil); err != nil {
		t.Fatal(err)
	}
	a := invokeID(t, n, "bye")
	n.stop(t)
	if alive(a.ID) {
		t.Errorf("instance %s outlived the node", a.ID)
	}
}
