package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/server"
)

// invokeEvent sends an Invoke API call of type Event and returns the
// answer's status, headers and body.
func invokeEvent(t *testing.T, n funcNode, fn, payload string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.URL()+"/2015-03-31/functions/"+fn+"/invocations", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.AdminToken())
	req.Header.Set("X-Amz-Invocation-Type", "Event")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestQueueBound: a function's queue takes as many events and bytes as
// its config says; past that, the Invoke API answers 429 EventQueueFull
// and a topic's delivery goes to the dead-letter topic with that
// condition, while other functions' events still run; an accepted event's
// retry is not refused at the bound; a raised bound counts at once.
func TestQueueBound(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	ctx := context.Background()
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "stuck", apitype.Config{Concurrency: ptr2(0), Async: &apitype.AsyncPatch{MaxQueuedEvents: ptr2(int64(3))}})
	n.deployRecorder(t, rec, "free", apitype.Config{Timeout: ptr2(30)})

	for i := range 3 {
		if status, _, body := invokeEvent(t, n, "stuck", fmt.Sprintf(`{"n":%d}`, i)); status != http.StatusAccepted {
			t.Fatalf("event %d: %d %s", i, status, body)
		}
	}
	status, h, body := invokeEvent(t, n, "stuck", `{"n":3}`)
	var lambdaErr struct {
		Type    string `json:"__type"`
		Reason  string `json:"Reason"`
		Message string `json:"message"`
	}
	json.Unmarshal([]byte(body), &lambdaErr) //nolint:errcheck // checked below
	if status != http.StatusTooManyRequests || lambdaErr.Type != "TooManyRequestsException" || lambdaErr.Reason != "EventQueueFull" ||
		h.Get("Retry-After") == "" || !strings.Contains(lambdaErr.Message, "holds 3 events") {
		t.Fatalf("the fourth event: %d %v %s, want 429 TooManyRequestsException EventQueueFull with Retry-After", status, h, body)
	}
	if q := n.Events().Queued()["stuck"]; q != 3 {
		t.Errorf("%d events of stuck queued, want 3", q)
	}

	// Another function's events still run.
	if _, err := n.c.InvokeAsync(ctx, "free", []byte(`{"n":1}`), ""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "free runs its event", func() bool { return len(rec.of("free")) == 1 })

	// A topic's delivery to the full queue goes to the dead-letter topic,
	// saying why; the other subscription gets the event.
	for _, fn := range []string{"stuck", "free"} {
		if _, err := n.c.Subscribe(ctx, apitype.Subscription{Topic: "work", Function: fn}); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := postJSON(t, n, "/v1/events/work", `{"specversion":"1.0","id":"w1","source":"/jobs","type":"job","data":{"job":1}}`,
		map[string]string{"Content-Type": "application/cloudevents+json"}); status != http.StatusAccepted {
		t.Fatalf("publishing on work: %d %s", status, body)
	}
	r := n.topicRecords(t, "dlq.stuck", 1)[0]
	if r.RequestContext.Condition != "EventQueueFull" || r.RequestContext.ApproximateInvokeCount != 0 ||
		!strings.Contains(string(r.RequestPayload), `"id":"w1"`) {
		t.Errorf("dead letter %+v %s, want condition EventQueueFull with the event", r.RequestContext, r.RequestPayload)
	}
	waitUntil(t, 30*time.Second, "free gets the topic's event", func() bool { return len(rec.of("free")) == 2 })
	if q := n.Events().Queued()["stuck"]; q != 3 {
		t.Errorf("%d events of stuck queued after the delivery, want 3", q)
	}
	list, err := n.Events().Read(ctx, "dlq.stuck", 0, 10)
	if err != nil || len(list) != 1 || list[0].Principal != "node" {
		t.Errorf("the dead letter: %+v %v, want one published by node", list, err)
	}

	// The bound in bytes.
	n.deployRecorder(t, rec, "stuck-bytes", apitype.Config{Concurrency: ptr2(0),
		Async: &apitype.AsyncPatch{MaxQueuedBytes: ptr2(int64(registry.MinQueuedBytes))}})
	pad := `{"pad":"` + strings.Repeat("x", 100<<10) + `"}`
	for i := range 2 {
		if status, _, body := invokeEvent(t, n, "stuck-bytes", pad); status != http.StatusAccepted {
			t.Fatalf("event %d of 100 KB: %d %.200s", i, status, body)
		}
	}
	if status, _, body := invokeEvent(t, n, "stuck-bytes", pad); status != http.StatusTooManyRequests || !strings.Contains(body, "EventQueueFull") {
		t.Errorf("a third event of 100 KB in 256 KB: %d %.200s, want 429 EventQueueFull", status, body)
	}

	// A retry is stored while its event still is: the bound of one does
	// not refuse it.
	n.deployRecorder(t, rec, "flaky", apitype.Config{Timeout: ptr2(30), Async: &apitype.AsyncPatch{Retries: ptr2(2), MaxQueuedEvents: ptr2(int64(1))}})
	id, err := n.c.InvokeAsync(ctx, "flaky", []byte(`{"fail_times": 1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "flaky's retry runs", func() bool { return len(rec.of("flaky")) == 2 })
	if c := rec.of("flaky"); c[0].ID != id || c[1].ID != id {
		t.Errorf("flaky's calls %+v, want two of %s", c, id)
	}

	// A raised bound counts at once.
	if _, err := n.c.UpdateConfig(ctx, "stuck", apitype.Config{Async: &apitype.AsyncPatch{MaxQueuedEvents: ptr2(int64(4))}}, 0); err != nil {
		t.Fatal(err)
	}
	if status, _, body := invokeEvent(t, n, "stuck", `{"n":4}`); status != http.StatusAccepted {
		t.Errorf("a fourth event under a bound of 4: %d %s", status, body)
	}
	if q := n.Events().Queued()["stuck"]; q != 4 {
		t.Errorf("%d events of stuck queued, want 4", q)
	}
	if len(rec.of("stuck")) != 0 {
		t.Error("a function with concurrency 0 ran")
	}
}

// TestTopicRetention: a flood on one topic past its retention ages out
// only that topic's oldest events; the topics callers make are bounded,
// and the node's own are not counted.
func TestTopicRetention(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry, EventLimits: events.Limits{TopicMaxBytes: 64 << 10, MaxTopics: 4}})
	ctx := context.Background()
	publish := func(topic, id, data string) (int, string) {
		return postJSON(t, n, "/v1/events/"+topic, `{"specversion":"1.0","id":"`+id+`","source":"/t","type":"t","data":`+data+`}`,
			map[string]string{"Content-Type": "application/cloudevents+json"})
	}
	for i := range 3 {
		if status, body := publish("b", fmt.Sprintf("b-%d", i), `{"keep":true}`); status != http.StatusAccepted {
			t.Fatalf("publishing on b: %d %s", status, body)
		}
	}
	pad := `{"pad":"` + strings.Repeat("x", 2<<10) + `"}`
	const flood = 100 // 200 KB, three times a topic's retention
	for i := range flood {
		if status, body := publish("a", fmt.Sprintf("a-%d", i), pad); status != http.StatusAccepted {
			t.Fatalf("publishing on a: %d %s", status, body)
		}
	}
	a, err := n.Events().Read(ctx, "a", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || len(a) >= flood {
		t.Fatalf("a keeps %d of its %d events, want its retention to have dropped the oldest", len(a), flood)
	}
	if ev, err := cloudevent.Parse(a[len(a)-1].Event); err != nil || ev.ID != fmt.Sprintf("a-%d", flood-1) {
		t.Errorf("a's newest event is %v (%v), want a-%d", ev.ID, err, flood-1)
	}
	b, err := n.Events().Read(ctx, "b", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, te := range b {
		ev, err := cloudevent.Parse(te.Event)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	if strings.Join(ids, ",") != "b-0,b-1,b-2" {
		t.Errorf("after a's flood, b holds %v, want b-0,b-1,b-2", ids)
	}

	// Four topics callers made: a fifth is refused, the four still take
	// events, and the node still makes its own.
	for _, topic := range []string{"c", "d"} {
		if status, body := publish(topic, "x", `{}`); status != http.StatusAccepted {
			t.Fatalf("publishing on %s: %d %s", topic, status, body)
		}
	}
	if status, body := publish("e", "x", `{}`); status != http.StatusInsufficientStorage || !strings.Contains(body, "at most 4 topics") {
		t.Errorf("a fifth topic: %d %s, want 507 saying the bound", status, body)
	}
	if list, _ := n.Events().Read(ctx, "e", 0, 10); len(list) != 0 {
		t.Errorf("the refused topic holds %d events", len(list))
	}
	if status, body := publish("a", "again", `{}`); status != http.StatusAccepted {
		t.Errorf("publishing on a after the bound: %d %s", status, body)
	}
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "broken", apitype.Config{Timeout: ptr2(30), Async: &apitype.AsyncPatch{Retries: ptr2(0)}})
	if _, err := n.c.InvokeAsync(ctx, "broken", []byte(`{"fail_always": true}`), ""); err != nil {
		t.Fatal(err)
	}
	if r := n.topicRecords(t, "dlq.broken", 1)[0]; r.RequestContext.Condition != "RetriesExhausted" {
		t.Errorf("dead letter %+v", r.RequestContext)
	}
}

// logBuffer is a node's log, kept for the test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestScheduleSkipsTickOfFullQueue: a schedule's tick that finds its
// function's queue full is skipped, with a line in the node's log, and
// not held to flood the queue later.
func TestScheduleSkipsTickOfFullQueue(t *testing.T) {
	needTool(t, "node")
	clock := newClock()
	var log logBuffer
	n := startNode(t, server.Config{RetryBase: fastRetry, Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "ticker", apitype.Config{Concurrency: ptr2(0), Async: &apitype.AsyncPatch{MaxQueuedEvents: ptr2(int64(1))},
		Schedules: &[]apitype.Schedule{{Name: "five", Expression: "rate(5 minutes)"}}})
	ctx := context.Background()
	check := func() {
		t.Helper()
		if err := n.Events().CheckSchedules(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check() // the schedule starts now
	toNextTick(clock, 5*time.Minute)
	check()
	if q := n.Events().Queued()["ticker"]; q != 1 {
		t.Fatalf("%d ticks queued, want 1", q)
	}
	toNextTick(clock, 5*time.Minute)
	check()
	if q := n.Events().Queued()["ticker"]; q != 1 {
		t.Errorf("%d ticks queued after the queue was full, want 1", q)
	}
	if !strings.Contains(log.String(), "schedule tick skipped: the function's queue is full") {
		t.Errorf("no log line of the skipped tick in:\n%s", log.String())
	}
	// Skipped, not kept: once there is room, only the next tick comes.
	if _, err := n.c.UpdateConfig(ctx, "ticker", apitype.Config{Async: &apitype.AsyncPatch{MaxQueuedEvents: ptr2(int64(5))}}, 0); err != nil {
		t.Fatal(err)
	}
	toNextTick(clock, 5*time.Minute)
	check()
	if q := n.Events().Queued()["ticker"]; q != 2 {
		t.Errorf("%d ticks queued after room was made, want 2", q)
	}
}
