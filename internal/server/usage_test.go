package server_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/server"
)

var reportRE = regexp.MustCompile(`^REPORT RequestId: (\S+)\tDuration: ([0-9.]+) ms\tBilled Duration: ([0-9]+) ms\tMemory Size: ([0-9]+) MB`)

type report struct {
	id         string
	durationMs float64
	billedMs   int64
	memoryMB   int
}

// reports reads a function's REPORT lines from its logs.
func reports(t *testing.T, n funcNode, fn string) []report {
	t.Helper()
	var out []report
	err := n.c.Logs(context.Background(), fn, client.LogsOptions{}, func(l apitype.LogRecord) error {
		m := reportRE.FindStringSubmatch(l.Message)
		if m == nil {
			return nil
		}
		d, _ := strconv.ParseFloat(m[2], 64)
		b, _ := strconv.ParseInt(m[3], 10, 64)
		mem, _ := strconv.Atoi(m[4])
		out = append(out, report{m[1], d, b, mem})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUsageMatchesReports: every invocation, sync, async and each retry,
// has a usage record billed exactly as its REPORT line, and the rollups
// add the records up.
func TestUsageMatchesReports(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "metered", apitype.Config{MemoryMB: ptr2(256)})
	ctx := context.Background()
	from := time.Now().Add(-time.Minute)
	for i := range 5 {
		if _, err := n.c.Invoke(ctx, "metered", []byte(`{"i":`+strconv.Itoa(i)+`}`), client.InvokeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := n.c.InvokeAsync(ctx, "metered", []byte(`{}`), ""); err != nil {
			t.Fatal(err)
		}
	}
	retried, err := n.c.InvokeAsync(ctx, "metered", []byte(`{"fail_times": 2}`), "")
	if err != nil {
		t.Fatal(err)
	}
	const calls = 5 + 3 + 3
	waitUntil(t, 30*time.Second, "every call runs", func() bool { return len(rec.of("metered")) == calls })

	var recs []meter.Record
	var reps []report
	waitUntil(t, 10*time.Second, "every record and REPORT line is stored", func() bool {
		if recs, err = n.Meter().Records(ctx, "metered", from, 1000); err != nil {
			t.Fatal(err)
		}
		reps = reports(t, n, "metered")
		return len(recs) == calls && len(reps) == calls
	})
	key := func(id string, billed int64, mem int) string {
		return id + "/" + strconv.FormatInt(billed, 10) + "/" + strconv.Itoa(mem)
	}
	var fromRecords, fromReports []string
	triggers := map[string]int{}
	var billed, mbms int64
	for _, r := range recs {
		fromRecords = append(fromRecords, key(r.RequestID, r.BilledMs, r.MemoryMB))
		triggers[r.Trigger]++
		billed += r.BilledMs
		mbms += r.MBms()
		if r.Function != "metered" || r.Version != "$LATEST" || r.Start.Before(from) || r.BilledMs < 1 ||
			r.BilledMs != (r.DurationUs+999)/1000 && !(r.DurationUs < 1000 && r.BilledMs == 1) {
			t.Errorf("record %+v", r)
		}
	}
	for _, r := range reps {
		fromReports = append(fromReports, key(r.id, r.billedMs, r.memoryMB))
	}
	slices.Sort(fromRecords)
	slices.Sort(fromReports)
	if !slices.Equal(fromRecords, fromReports) {
		t.Errorf("records and REPORT lines differ:\nrecords %v\nreports %v", fromRecords, fromReports)
	}
	if triggers["sync"] != 5 || triggers["event"] != 6 {
		t.Errorf("triggers %v, want 5 sync and 6 event (3 events, one of them tried 3 times)", triggers)
	}
	outcomes := 0
	for _, r := range recs {
		if r.RequestID == retried && r.Outcome == "error" {
			outcomes++
		}
	}
	if outcomes != 2 {
		t.Errorf("%d failed attempts of the retried event metered, want 2", outcomes)
	}

	// The rollups hold the same sums, hourly and daily.
	for _, g := range []string{meter.Hour, meter.Day} {
		var u []meter.FunctionUsage
		waitUntil(t, 5*time.Second, "the "+g+" rollup", func() bool {
			u, err = n.Meter().Usage(context.Background(), meter.Query{Functions: []string{"metered"}, From: from, To: time.Now().Add(time.Minute), Granularity: g})
			if err != nil {
				t.Fatal(err)
			}
			return u[0].Invocations == calls
		})
		if u[0].BilledMs != billed || u[0].MBms != mbms || u[0].Errors != 2 {
			t.Errorf("%s rollup %+v, want billed %d ms, %d MB-ms, 2 errors", g, u[0].Usage, billed, mbms)
		}
		if want := float64(mbms) / 1024 / 1000; u[0].GBSeconds != want {
			t.Errorf("%s rollup: %v GB-s, want %v", g, u[0].GBSeconds, want)
		}
	}
}

// TestUsageSurvivesRestart: records and rollups are still there after the
// node restarts, and the cost follows the node's price table.
func TestUsageSurvivesRestart(t *testing.T) {
	needTool(t, "node")
	dir := t.TempDir()
	prices := &meter.Prices{PerRequest: 0.001, PerGBSecond: 0.5}
	n := startNode(t, server.Config{DataDir: dir, Prices: prices})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "kept", apitype.Config{})
	ctx := context.Background()
	for range 4 {
		if _, err := n.c.Invoke(ctx, "kept", []byte(`{}`), client.InvokeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Stopped at once: the last records are stored on the way out.
	n.stop(t)

	b := startNode(t, server.Config{DataDir: dir, Prices: prices})
	q := meter.Query{Functions: []string{"kept"}, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Granularity: meter.Hour}
	var after []meter.FunctionUsage
	waitUntil(t, 5*time.Second, "the rollup", func() bool {
		after, _ = b.Meter().Usage(context.Background(), q)
		return after[0].Invocations >= 4
	})
	if after[0].Invocations != 4 || after[0].BilledMs < 4 {
		t.Errorf("after a restart: %+v, want 4 invocations", after[0].Usage)
	}
	// A node that comes up reads the rollups as they were.
	b.stop(t)
	c := startNode(t, server.Config{DataDir: dir, Prices: prices})
	again, err := c.Meter().Usage(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Usage != after[0].Usage {
		t.Errorf("rollups read after a restart: %+v, were %+v", again[0].Usage, after[0].Usage)
	}
	b = c
	if want := 4*0.001 + float64(after[0].MBms)/1024/1000*0.5; after[0].Cost != want {
		t.Errorf("cost %v, want %v", after[0].Cost, want)
	}
	recs, err := b.Meter().Records(ctx, "kept", q.From, 100)
	if err != nil || len(recs) != 4 {
		t.Errorf("%d records after a restart (%v), want 4", len(recs), err)
	}
}

// TestQuota: a function's cap stops it within a second of being reached,
// its events wait, a topic is told, and the next period it runs again; a
// node-wide cap stops every function.
func TestQuota(t *testing.T) {
	needTool(t, "node")
	clock := newClock()
	// Start in the middle of an hour, so the test is not cut by one.
	now := clock.Now()
	clock.Advance(now.Truncate(time.Hour).Add(90 * time.Minute).Sub(now))
	n := startNode(t, server.Config{RetryBase: fastRetry, Now: clock.Now, Quota: &registry.Quota{Period: registry.PeriodDay, MaxInvocations: 1000}})
	rec := newRecorder(t)
	const max = 5
	// Version 1 is published before the quota is set: the quota is the
	// function's, whatever version runs.
	n.deployRecorder(t, rec, "capped", apitype.Config{})
	if _, _, err := n.c.PublishVersion(context.Background(), "capped", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.UpdateConfig(context.Background(), "capped", apitype.Config{Quota: &apitype.Quota{Period: registry.PeriodHour, MaxInvocations: max}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.Subscribe(context.Background(), apitype.Subscription{Topic: meter.CapTopic, Function: "alerts"}); err == nil {
		t.Fatal("subscribed a function that does not exist")
	}
	n.deployRecorder(t, rec, "alerts", apitype.Config{})
	if _, err := n.c.Subscribe(context.Background(), apitype.Subscription{Topic: meter.CapTopic, Function: "alerts"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	invoke := func() error {
		_, err := n.c.Invoke(ctx, "capped", []byte(`{}`), client.InvokeOptions{})
		return err
	}
	ok := 0
	var reached time.Time
	var capErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		err := invoke()
		if err != nil {
			capErr = err
			break
		}
		ok++
		if ok == max {
			reached = time.Now()
		}
	}
	if capErr == nil {
		t.Fatalf("%d calls ran and none was refused", ok)
	}
	if reached.IsZero() {
		t.Fatalf("refused after %d calls, before the cap of %d: %v", ok, max, capErr)
	}
	if d := time.Since(reached); d > time.Second {
		t.Errorf("the cap took %s to stop the function", d)
	}
	if ok != max {
		t.Errorf("%d calls ran under a cap of %d", ok, max)
	}
	if _, err := n.c.Invoke(ctx, "capped", []byte(`{}`), client.InvokeOptions{Qualifier: "1"}); !client.IsSpendCapped(err) {
		t.Errorf("version 1 of a capped function: %v, want refused", err)
	}
	var ce *client.Error
	if !errors.As(capErr, &ce) || ce.Status != 429 || !strings.Contains(ce.Message, "quota") {
		t.Errorf("refusal %v, want 429 about the quota", capErr)
	}
	// The Invoke API answers as Lambda's, which AWS SDKs read (the test
	// clock is too far off for a SigV4 signature).
	status, body := postJSON(t, n, "/2015-03-31/functions/capped/invocations", `{}`, nil)
	if status != 429 || !strings.Contains(body, `"Reason":"SpendCapExceeded"`) || !strings.Contains(body, "TooManyRequestsException") {
		t.Errorf("Invoke API: %d %s", status, body)
	}
	ranBefore := len(rec.of("capped"))

	// An event waits while the function is capped.
	if _, err := n.c.InvokeAsync(ctx, "capped", []byte(`{"late": true}`), ""); err != nil {
		t.Fatal(err)
	}
	// Someone is told, once.
	waitUntil(t, 20*time.Second, "alerts hears of the cap", func() bool { return len(rec.of("alerts")) >= 1 })
	ev, err := cloudevent.Parse(rec.of("alerts")[0].Event)
	if err != nil || ev.Type != "wisp.cap.exceeded" || ev.Subject != "capped" || !strings.Contains(string(ev.Data), `"limit":"invocations"`) {
		t.Errorf("cap event %+v %v", ev, err)
	}
	time.Sleep(time.Second)
	if got := len(rec.of("capped")); got != ranBefore {
		t.Errorf("the capped function ran %d more times", got-ranBefore)
	}

	// The next hour it runs again, the waiting event too.
	clock.Advance(time.Hour)
	if err := invoke(); err != nil {
		t.Fatalf("the next period: %v", err)
	}
	waitUntil(t, 20*time.Second, "the waiting event runs", func() bool {
		for _, c := range rec.of("capped") {
			if strings.Contains(string(c.Event), "late") {
				return true
			}
		}
		return false
	})
	if got := len(rec.of("alerts")); got != 1 {
		t.Errorf("alerts heard %d times, want once", got)
	}
}

// TestQuotaUnderConcurrency: calls at once never pass a cap, and calls
// throttled before they run do not use it up.
func TestQuotaUnderConcurrency(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "busy", apitype.Config{Concurrency: ptr2(0), Quota: &apitype.Quota{Period: registry.PeriodDay, MaxInvocations: 5}})
	ctx := context.Background()
	call := func(calls int) (ran, capped int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := n.c.Invoke(ctx, "busy", []byte(`{}`), client.InvokeOptions{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ran++
				case client.IsSpendCapped(err):
					capped++
				}
			}()
		}
		wg.Wait()
		return ran, capped
	}
	// Throttled (concurrency 0): none runs, none is counted.
	if ran, capped := call(20); ran != 0 || capped != 0 {
		t.Fatalf("throttled: %d ran, %d capped", ran, capped)
	}
	if _, err := n.c.UpdateConfig(ctx, "busy", apitype.Config{ClearConcurrency: true}, 0); err != nil {
		t.Fatal(err)
	}
	if ran, capped := call(40); ran != 5 || capped != 35 {
		t.Errorf("40 calls at once under a cap of 5: %d ran, %d capped", ran, capped)
	}
	if got := len(rec.of("busy")); got != 5 {
		t.Errorf("the function ran %d times", got)
	}
}

// TestQuotaFailsEvents: with async "fail", a capped function's events fail
// at once to the dead-letter topic, with condition SpendCapExceeded.
func TestQuotaFailsEvents(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "strict", apitype.Config{Quota: &apitype.Quota{Period: registry.PeriodDay, MaxInvocations: 1, Async: registry.QuotaFail}})
	ctx := context.Background()
	if _, err := n.c.Invoke(ctx, "strict", []byte(`{}`), client.InvokeOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err := n.c.InvokeAsync(ctx, "strict", []byte(`{"late": true}`), "")
	if err != nil {
		t.Fatal(err)
	}
	r := n.topicRecords(t, "dlq.strict", 1)[0]
	if r.RequestContext.Condition != "SpendCapExceeded" || r.RequestContext.RequestID != id {
		t.Errorf("record %+v", r.RequestContext)
	}
	if got := len(rec.of("strict")); got != 1 {
		t.Errorf("the function ran %d times, want once", got)
	}
}

// TestNodeQuota: the node's cap counts every function together.
func TestNodeQuota(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry, Quota: &registry.Quota{Period: registry.PeriodMonth, MaxInvocations: 4}})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "one", apitype.Config{})
	n.deployRecorder(t, rec, "two", apitype.Config{})
	ctx := context.Background()
	for _, fn := range []string{"one", "two", "one", "two"} {
		if _, err := n.c.Invoke(ctx, fn, []byte(`{}`), client.InvokeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 2*time.Second, "the node's cap", func() bool {
		_, err := n.c.Invoke(ctx, "two", []byte(`{}`), client.InvokeOptions{})
		return err != nil && strings.Contains(err.Error(), "node's month quota")
	})
}
