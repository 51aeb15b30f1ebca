package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
)

// recorder is an HTTP server in the test that functions report each
// invocation to: it is the test's account of what ran, which no node crash
// can lose.
type recorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []call
	count map[string]int // by function and request id
}

type call struct {
	Fn    string          `json:"fn"`
	ID    string          `json:"id"`
	Event json.RawMessage `json:"event"`
	At    time.Time       `json:"-"`
	N     int             `json:"-"` // the how-manyth call of this request id
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{count: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var c call
		if err := json.NewDecoder(req.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		c.At = time.Now()
		r.mu.Lock()
		r.count[c.Fn+"/"+c.ID]++
		c.N = r.count[c.Fn+"/"+c.ID]
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]int{"count": c.N}) //nolint:errcheck // the function sees an error
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// of returns the calls of a function.
func (r *recorder) of(fn string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.Fn == fn {
			out = append(out, c)
		}
	}
	return out
}

// recorderJS reports each call, then fails when the event says so: the
// first fail_times calls of a request id, or every call with fail_always.
const recorderJS = `exports.handler = async (event, context) => {
  const r = await fetch(process.env.RECORDER_URL, {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({fn: context.functionName, id: context.awsRequestId, event})});
  const {count} = await r.json();
  if (event && (event.fail_always || count <= (event.fail_times || 0))) throw new Error("planned failure " + count);
  if (event && event.big) return {ok: true, count, pad: "x".repeat(event.big)};
  return {ok: true, count};
};`

// deployRecorder deploys a function that reports to rec.
func (n funcNode) deployRecorder(t *testing.T, rec *recorder, name string, cfg apitype.Config) {
	t.Helper()
	cfg.Name, cfg.Runtime, cfg.Handler, cfg.Network = name, ptr2("nodejs"), ptr2("index.handler"), ptr2("host")
	cfg.Env = map[string]string{"RECORDER_URL": rec.srv.URL}
	n.deploy(t, writeFiles(t, map[string]string{"index.js": recorderJS}), cfg)
}

// destinationRecord is Lambda's destination record, as functions and
// topics receive it.
type destinationRecord struct {
	Version        string `json:"version"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

// topicRecords waits for n destination records on a topic.
func (n funcNode) topicRecords(t *testing.T, topic string, want int) []destinationRecord {
	t.Helper()
	var recs []destinationRecord
	waitUntil(t, 20*time.Second, "records on "+topic, func() bool {
		list, err := n.Events().Read(context.Background(), topic, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		recs = recs[:0]
		for _, te := range list {
			ev, err := cloudevent.Parse(te.Event)
			if err != nil {
				t.Fatal(err)
			}
			var r destinationRecord
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				t.Fatalf("a record on %s: %v: %s", topic, err, ev.Data)
			}
			recs = append(recs, r)
		}
		return len(recs) >= want
	})
	if len(recs) != want {
		t.Fatalf("%d records on %s, want %d", len(recs), topic, want)
	}
	return recs
}

// TestAsyncInvoke: an event answered 202 runs once, with the request id
// the caller was given, and its success goes to the success destination.
func TestAsyncInvoke(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "worker", apitype.Config{Async: &apitype.AsyncPatch{OnSuccess: ptr2("topic:done")}})

	id, err := n.c.InvokeAsync(context.Background(), "worker", []byte(`{"job": 1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	recs := n.topicRecords(t, "done", 1)
	r := recs[0]
	if r.RequestContext.Condition != "Success" || r.RequestContext.RequestID != id || r.RequestContext.ApproximateInvokeCount != 1 {
		t.Errorf("record %+v", r.RequestContext)
	}
	if string(r.RequestPayload) != `{"job":1}` && string(r.RequestPayload) != `{"job": 1}` {
		t.Errorf("request payload %s", r.RequestPayload)
	}
	if !strings.Contains(string(r.ResponsePayload), `"ok":true`) || r.ResponseContext.ExecutedVersion != "$LATEST" {
		t.Errorf("response %+v %s", r.ResponseContext, r.ResponsePayload)
	}
	calls := rec.of("worker")
	if len(calls) != 1 || calls[0].ID != id {
		t.Fatalf("calls %+v, want one with request id %s", calls, id)
	}

	// aws-sdk-go-v2's InvocationType Event gets 202.
	out, err := n.sdkClient(t).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("worker"),
		InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"job": 2}`)})
	if err != nil || out.StatusCode != http.StatusAccepted {
		t.Fatalf("aws sdk async invoke: %v %+v", err, out)
	}
	n.topicRecords(t, "done", 2)

	// Refused events are not stored: too large, not JSON, no such function.
	big := `{"pad":"` + strings.Repeat("x", events.MaxPayload) + `"}`
	for _, tc := range []struct {
		fn, payload string
		status      int
		typ         string
	}{
		{"worker", big, 413, "RequestTooLargeException"},
		{"worker", `{not json`, 400, "InvalidRequestContentException"},
		{"nobody", `{}`, 404, "ResourceNotFoundException"},
	} {
		_, err := n.c.InvokeAsync(context.Background(), tc.fn, []byte(tc.payload), "")
		var ce *client.Error
		if !asClientError(err, &ce) || ce.Status != tc.status || ce.Type != tc.typ {
			t.Errorf("async invoke %s with %.20s: %v, want %d %s", tc.fn, tc.payload, err, tc.status, tc.typ)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if q := n.Events().Queued()["worker"]; q != 0 {
		t.Errorf("%d events queued after refusals", q)
	}
	if got := len(rec.of("worker")); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
}

// TestAsyncLargeOutcome: a record holding a request and a response near
// their limits still reaches its destination, and the function runs once.
func TestAsyncLargeOutcome(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "big", apitype.Config{Async: &apitype.AsyncPatch{OnSuccess: ptr2("topic:big-done")}})
	pad := strings.Repeat("y", events.MaxPayload-100)
	id, err := n.c.InvokeAsync(context.Background(), "big", []byte(`{"big": 250000, "p": "`+pad+`"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	r := n.topicRecords(t, "big-done", 1)[0]
	if r.RequestContext.RequestID != id || len(r.ResponsePayload) < 250000 || len(r.RequestPayload) < events.MaxPayload-100 {
		t.Errorf("record of %s: %d bytes of request, %d of response", r.RequestContext.RequestID, len(r.RequestPayload), len(r.ResponsePayload))
	}
	time.Sleep(time.Second)
	if got := len(rec.of("big")); got != 1 {
		t.Errorf("the function ran %d times, want once", got)
	}
}

// TestAsyncRetries: a function that fails twice then succeeds runs three
// times with one request id, waiting longer before each retry, and its
// success goes to a function destination.
func TestAsyncRetries(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: 200 * time.Millisecond})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "notified", apitype.Config{})
	n.deployRecorder(t, rec, "flaky", apitype.Config{Async: &apitype.AsyncPatch{Retries: ptr2(2),
		OnSuccess: ptr2("function:notified"), OnFailure: ptr2("topic:flaky-failed")}})

	id, err := n.c.InvokeAsync(context.Background(), "flaky", []byte(`{"fail_times": 2}`), "")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the success record reaches the destination function", func() bool { return len(rec.of("notified")) == 1 })
	calls := rec.of("flaky")
	if len(calls) != 3 {
		t.Fatalf("%d attempts, want 3", len(calls))
	}
	for i, c := range calls {
		if c.ID != id {
			t.Errorf("attempt %d has request id %s, want %s", i+1, c.ID, id)
		}
	}
	// Backoff with jitter: retry n waits between half and all of
	// 200ms·2^(n-1).
	if d := calls[1].At.Sub(calls[0].At); d < 100*time.Millisecond {
		t.Errorf("first retry after %s, want at least 100ms", d)
	}
	if d := calls[2].At.Sub(calls[1].At); d < 200*time.Millisecond {
		t.Errorf("second retry after %s, want at least 200ms", d)
	}
	var r destinationRecord
	if err := json.Unmarshal(rec.of("notified")[0].Event, &r); err != nil {
		t.Fatal(err)
	}
	if r.RequestContext.Condition != "Success" || r.RequestContext.ApproximateInvokeCount != 3 || r.RequestContext.RequestID != id ||
		!strings.HasSuffix(r.RequestContext.FunctionARN, ":function:flaky:$LATEST") {
		t.Errorf("record %+v", r.RequestContext)
	}
	list, err := n.Events().Read(context.Background(), "flaky-failed", 0, 10)
	if err != nil || len(list) != 0 {
		t.Errorf("failure topic holds %d events (%v), want none", len(list), err)
	}

	// Retries, outcomes and the queue show in /metrics.
	mfs, err := nodestats.Metrics(context.Background(), n.c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, m := range mfs["wisp_async_events_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["function"] == "flaky" {
			got[labels["outcome"]] = m.GetCounter().GetValue()
		}
	}
	if got["retry"] != 2 || got["success"] != 1 {
		t.Errorf("wisp_async_events_total of flaky: %v, want retry 2, success 1", got)
	}
	if mfs["wisp_async_event_age_seconds"] == nil {
		t.Error("no wisp_async_event_age_seconds")
	}
}

// TestAsyncDeadLetters: an event that keeps failing goes, after its
// retries, to the failure destination, or else to the dead-letter topic;
// an event that waits past its max age goes there too.
func TestAsyncDeadLetters(t *testing.T) {
	needTool(t, "node")
	clock := newClock()
	n := startNode(t, server.Config{Now: clock.Now, RetryBase: 50 * time.Millisecond})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "on-fail", apitype.Config{})
	n.deployRecorder(t, rec, "broken", apitype.Config{Async: &apitype.AsyncPatch{Retries: ptr2(1)}})
	n.deployRecorder(t, rec, "broken-dest", apitype.Config{Async: &apitype.AsyncPatch{Retries: ptr2(0), OnFailure: ptr2("function:on-fail")}})

	id, err := n.c.InvokeAsync(context.Background(), "broken", []byte(`{"fail_always": true}`), "")
	if err != nil {
		t.Fatal(err)
	}
	r := n.topicRecords(t, "dlq.broken", 1)[0]
	if r.RequestContext.Condition != "RetriesExhausted" || r.RequestContext.ApproximateInvokeCount != 2 || r.RequestContext.RequestID != id {
		t.Errorf("dead letter %+v", r.RequestContext)
	}
	if r.ResponseContext.FunctionError != "Unhandled" || !strings.Contains(string(r.ResponsePayload), "planned failure 2") {
		t.Errorf("dead letter response %+v %s", r.ResponseContext, r.ResponsePayload)
	}
	if string(r.RequestPayload) != `{"fail_always": true}` && string(r.RequestPayload) != `{"fail_always":true}` {
		t.Errorf("dead letter payload %s", r.RequestPayload)
	}
	if got := len(rec.of("broken")); got != 2 {
		t.Errorf("%d attempts, want 2 (retries 1)", got)
	}

	if _, err := n.c.InvokeAsync(context.Background(), "broken-dest", []byte(`{"fail_always": true}`), ""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the failure record reaches on-fail", func() bool { return len(rec.of("on-fail")) == 1 })
	var fr destinationRecord
	json.Unmarshal(rec.of("on-fail")[0].Event, &fr) //nolint:errcheck // checked below
	if fr.RequestContext.Condition != "RetriesExhausted" || fr.RequestContext.ApproximateInvokeCount != 1 {
		t.Errorf("failure record %+v", fr.RequestContext)
	}
	if list, _ := n.Events().Read(context.Background(), "dlq.broken-dest", 0, 10); len(list) != 0 {
		t.Errorf("a failure with a destination also went to the dead-letter topic")
	}

	// A throttled function's events wait; past max_event_age they fail.
	n.deployRecorder(t, rec, "stuck", apitype.Config{Concurrency: ptr2(0), Async: &apitype.AsyncPatch{MaxEventAge: ptr2(60)}})
	id, err = n.c.InvokeAsync(context.Background(), "stuck", []byte(`{"n": 1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // throttled attempts come and go
	if list, _ := n.Events().Read(context.Background(), "dlq.stuck", 0, 10); len(list) != 0 {
		t.Fatal("a waiting event was dead-lettered before its max age")
	}
	if q := n.Events().Queued()["stuck"]; q != 1 {
		t.Errorf("%d events of stuck queued, want 1", q)
	}
	clock.Advance(61 * time.Second)
	r = n.topicRecords(t, "dlq.stuck", 1)[0]
	if r.RequestContext.Condition != "EventAgeExceeded" || r.RequestContext.RequestID != id || r.RequestContext.ApproximateInvokeCount != 0 {
		t.Errorf("expired record %+v", r.RequestContext)
	}
	if len(rec.of("stuck")) != 0 {
		t.Error("a function with concurrency 0 ran")
	}
	waitUntil(t, 5*time.Second, "the queue empties", func() bool { return n.Events().Queued()["stuck"] == 0 })

	// The logs tell each step by request id.
	var lines []string
	err = n.c.Logs(context.Background(), "broken", client.LogsOptions{}, func(l apitype.LogRecord) error {
		if strings.HasPrefix(l.Message, "ASYNC") {
			lines = append(lines, l.Message)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "Attempt: 1 of 2") || !strings.Contains(joined, "Condition: RetriesExhausted") ||
		!strings.Contains(joined, "topic:dlq.broken") {
		t.Errorf("ASYNC log lines:\n%s", joined)
	}
}

// clock is a test clock that moves only when told to, from now.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func newClock() *clock { return &clock{} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func asClientError(err error, target **client.Error) bool {
	ce, ok := err.(*client.Error)
	if ok {
		*target = ce
	}
	return ok
}

// postJSON posts a body with headers to the node's API as the admin.
func postJSON(t *testing.T, n funcNode, path string, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.URL()+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.AdminToken())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
