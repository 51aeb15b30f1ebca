package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/server"
)

// failingDir makes a directory with a provided function whose bootstrap
// exits at once: enough to deploy, subscribe and queue events for, and
// each of its events fails fast.
func failingDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "tick")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEventsAgainstANode runs the events and schedules commands against a
// real node: a function deployed with a schedule and a failure
// destination, a subscription, an event published, read back and seen in
// the catalog, an async invocation whose failure record lands on the
// destination topic, and the errors of bad input.
func TestEventsAgainstANode(t *testing.T) {
	env, run := startNode(t, server.Config{RetryBase: 10 * time.Millisecond})
	runJSON := func(v any, args ...string) {
		t.Helper()
		out := run(append(args, "-o", "json")...)
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("wisp %s -o json: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// poll calls ok until it holds, for up to 5 seconds.
	poll := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 5s: %s", what)
			}
		}
	}

	// On failure, show what the node saw.
	defer func() {
		if !t.Failed() {
			return
		}
		for _, args := range [][]string{{"logs", "tick"}, {"events", "read", "failed"}, {"events", "catalog"}} {
			out, errOut, _ := runCLI(t, env, args...)
			t.Logf("wisp %s:\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}()

	dir := failingDir(t)
	run("deploy", dir, "--runtime", "provided", "--schedule", "rate(5 minutes)", "--retries", "0", "--on-failure", "topic:failed")
	var fn apitype.Function
	runJSON(&fn, "get", "tick")
	want := []apitype.Schedule{{Name: "schedule-1", Expression: "rate(5 minutes)"}}
	if fn.Async.Retries != 0 || fn.Async.OnFailure != "topic:failed" || !slices.Equal(fn.Schedules, want) {
		t.Errorf("get: async %+v, schedules %+v", fn.Async, fn.Schedules)
	}
	if out := run("get", "tick"); !strings.Contains(out, "on_failure:    topic:failed") || !strings.Contains(out, "schedule-1: rate(5 minutes)") {
		t.Errorf("get:\n%s", out)
	}

	var scheds []apitype.ScheduleInfo
	runJSON(&scheds, "schedules", "ls")
	if len(scheds) != 1 || scheds[0].Function != "tick" || scheds[0].Name != "schedule-1" ||
		!scheds[0].Next.After(time.Now()) || scheds[0].Next.After(time.Now().Add(5*time.Minute)) {
		t.Errorf("schedules ls -o json: %+v, want tick's schedule-1 firing within 5 minutes", scheds)
	}
	out := run("schedules", "ls", "tick")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "FUNCTION") || !strings.Contains(lines[1], "tick") ||
		!strings.Contains(lines[1], "rate(5 minutes)") || !strings.Contains(lines[1], scheds[0].Next.Format(time.RFC3339)) {
		t.Errorf("schedules ls:\n%s", out)
	}

	var sub apitype.Subscription
	runJSON(&sub, "events", "subscribe", "orders", "tick", "--type", "order.created")
	if !strings.HasPrefix(sub.ID, "sub-") || sub.Topic != "orders" || sub.Function != "tick" || sub.Exact["type"] != "order.created" {
		t.Errorf("subscribe: %+v", sub)
	}
	if out := run("events", "ls"); !strings.Contains(out, sub.ID+"   orders   tick       type=order.created") {
		t.Errorf("events ls:\n%s", out)
	}
	if out := run("events", "ls", "--topic", "other"); out != "ID   TOPIC   FUNCTION   FILTER   CREATED\n" {
		t.Errorf("events ls --topic other:\n%s", out)
	}

	id := strings.TrimSpace(run("events", "publish", "orders", `{"n": 1}`, "--type", "order.created", "--source", "/shop", "--ext", "tenant=acme"))
	if id == "" {
		t.Fatal("events publish printed no id")
	}
	var evs []apitype.TopicEvent
	runJSON(&evs, "events", "read", "orders")
	var ev struct {
		ID, Source, Type, Tenant string
		Data                     json.RawMessage
	}
	if len(evs) != 1 || json.Unmarshal(evs[0].Event, &ev) != nil || ev.ID != id || ev.Source != "/shop" ||
		ev.Type != "order.created" || ev.Tenant != "acme" || compact(t, ev.Data) != `{"n":1}` || evs[0].Principal != "admin" {
		t.Errorf("events read orders: %+v (%s)", evs, evs[0].Event)
	}
	if out := run("events", "read", "orders"); !strings.Contains(out, id) || !strings.Contains(out, `{"n":1}`) {
		t.Errorf("events read:\n%s", out)
	}
	if out := run("events", "read", "orders", "--after", "1000"); out != "SEQ   TIME   PUBLISHER   SOURCE   TYPE   SUBJECT   ID   DATA\n" {
		t.Errorf("events read --after past the end:\n%s", out)
	}

	poll("the catalog lists orders with its publisher and subscriber", func() bool {
		var topics []apitype.Topic
		runJSON(&topics, "events", "catalog")
		i := slices.IndexFunc(topics, func(x apitype.Topic) bool { return x.Topic == "orders" })
		return i >= 0 && topics[i].Events == 1 &&
			slices.ContainsFunc(topics[i].Publishers, func(p apitype.Publisher) bool { return p.Source == "/shop" && p.Principal == "admin" }) &&
			slices.ContainsFunc(topics[i].Subscribers, func(s apitype.Subscriber) bool { return s.ID == sub.ID && s.Function == "tick" })
	})
	if out := run("events", "catalog"); !strings.Contains(out, "/shop (admin)") {
		t.Errorf("events catalog:\n%s", out)
	}

	run("events", "unsubscribe", sub.ID)
	if out := run("events", "ls"); strings.Contains(out, sub.ID) {
		t.Errorf("events ls after unsubscribe:\n%s", out)
	}

	requestID := strings.TrimSpace(run("invoke", "tick", "--async", "--data", `{"async":true}`))
	if len(requestID) != 36 {
		t.Fatalf("invoke --async printed %q, want a request id", requestID)
	}
	// The bootstrap exits at once, so the event fails, is not retried, and
	// its record goes to the failure destination.
	poll("a failure record of the async invocation on topic failed", func() bool {
		var evs []apitype.TopicEvent
		runJSON(&evs, "events", "read", "failed")
		for _, e := range evs {
			var rec struct {
				Type string
				Data struct {
					RequestContext struct {
						RequestID              string
						Condition              string
						ApproximateInvokeCount int
					}
					RequestPayload json.RawMessage
				}
			}
			if json.Unmarshal(e.Event, &rec) == nil && rec.Type == "wisp.async.failure" &&
				rec.Data.RequestContext.RequestID == requestID && rec.Data.RequestContext.Condition == "RetriesExhausted" &&
				rec.Data.RequestContext.ApproximateInvokeCount == 1 && compact(t, rec.Data.RequestPayload) == `{"async":true}` {
				return true
			}
		}
		return false
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"subscribe an unknown function", []string{"events", "subscribe", "orders", "nope"}, "(ResourceNotFoundException)"},
		{"a bad topic", []string{"events", "publish", "Orders!", "{}"}, `topic "Orders!" must be dot-separated words`},
		{"a reserved topic", []string{"events", "subscribe", "catalog", "tick"}, `topic "catalog" is a reserved word`},
		{"a bad schedule", []string{"deploy", dir, "--schedule", "every tuesday"}, "(InvalidParameterValueException)"},
		{"unsubscribe twice", []string{"events", "unsubscribe", sub.ID}, "(ResourceNotFoundException)"},
		{"async to an unknown function", []string{"invoke", "nope", "--async"}, "(ResourceNotFoundException)"},
		{"schedules of an unknown function", []string{"schedules", "ls", "nope"}, `function "nope" not found (ResourceNotFoundException)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runCLI(t, env, tc.args...)
			if err == nil || !strings.HasPrefix(errOut, "wisp: ") || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("wisp %s: err %v, stdout %q, stderr %q; want one line with %q", strings.Join(tc.args, " "), err, out, errOut, tc.want)
			}
		})
	}
	// The bad schedule changed nothing.
	runJSON(&fn, "get", "tick")
	if !slices.Equal(fn.Schedules, want) {
		t.Errorf("schedules after a refused deploy: %+v", fn.Schedules)
	}
}

// compact is JSON without its spaces: -o json indents what it prints.
func compact(t *testing.T, b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Errorf("%s: %v", b, err)
	}
	return buf.String()
}
