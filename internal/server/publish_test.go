package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/server"
)

// publisherJS publishes the CloudEvent its event describes on the topic
// its event names, with its own token, and answers what the node said.
const publisherJS = `exports.handler = async (event) => {
  const ce = Object.assign({specversion: "1.0", id: event.id, source: event.source || "/fn", type: "test.event",
    data: event.data}, event.ext || {});
  const r = await fetch(process.env.WISP_API_URL + (event.path || "/v1/events/" + event.topic), {
    method: event.method || "POST",
    headers: {"authorization": "Bearer " + process.env.WISP_API_TOKEN, "content-type": "application/cloudevents+json"},
    body: event.method === "DELETE" ? undefined : JSON.stringify(event.body || ce)});
  return {status: r.status, body: await r.text()};
};`

// deployPublisher deploys a function that publishes as publisherJS says,
// with the given grants.
func (n funcNode) deployPublisher(t *testing.T, name string, grants []string) {
	t.Helper()
	n.deploy(t, writeFiles(t, map[string]string{"index.js": publisherJS}), apitype.Config{Name: name, Runtime: ptr2("nodejs"),
		Handler: ptr2("index.handler"), Timeout: ptr2(30), Publish: &grants})
}

type published struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// publishAs has function fn publish what req says and returns the node's
// answer to it.
func (n funcNode) publishAs(t *testing.T, fn string, req map[string]any) published {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.c.Invoke(context.Background(), fn, b, client.InvokeOptions{})
	if err != nil || res.FunctionError != "" {
		t.Fatalf("invoking %s: %v %s", fn, err, res.Payload)
	}
	var p published
	if err := json.Unmarshal(res.Payload, &p); err != nil {
		t.Fatalf("%s answered %s: %v", fn, res.Payload, err)
	}
	return p
}

// TestPublishGrants: a function's token publishes only to the topics its
// grants match, read at publish time; nobody, the admin included,
// publishes on the node's own topics or sets the publisher attribute; a
// function's token cannot subscribe; every stored event says who
// published it; the published metric has no series per topic.
func TestPublishGrants(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	ctx := context.Background()
	n.deployPublisher(t, "shop", []string{"orders", "audit.*"})
	rec := newRecorder(t)
	n.deployRecorder(t, rec, "notified", apitype.Config{Async: &apitype.AsyncPatch{OnSuccess: ptr2("topic:done")}})

	for _, tc := range []struct {
		topic  string
		status int
		says   string
	}{
		{"orders", 202, ""},
		{"audit.login", 202, ""},
		{"audit.login.failed", 403, "its publish grants are orders, audit.*"},
		{"payments", 403, "function shop may not publish to topic payments"},
		{"dlq.shop", 403, "written by the node only"},
		{"dlq.other", 403, "written by the node only"},
		{"spend-caps", 403, "written by the node only"},
		{"done", 403, "the success destination of function notified"},
	} {
		got := n.publishAs(t, "shop", map[string]any{"topic": tc.topic, "id": "e-" + tc.topic, "data": map[string]int{"n": 1}})
		if got.Status != tc.status || !strings.Contains(got.Body, tc.says) {
			t.Errorf("shop publishing on %s: %d %s, want %d saying %q", tc.topic, got.Status, got.Body, tc.status, tc.says)
		}
		if tc.status == 403 && !strings.Contains(got.Body, "AccessDeniedException") {
			t.Errorf("shop publishing on %s: %s, want AccessDeniedException", tc.topic, got.Body)
		}
	}
	// No publisher sets the publisher attribute.
	got := n.publishAs(t, "shop", map[string]any{"topic": "orders", "id": "forged", "ext": map[string]string{"wisppublisher": "node"}})
	if got.Status != 400 || !strings.Contains(got.Body, "wisppublisher") {
		t.Errorf("an event carrying wisppublisher: %d %s, want 400", got.Status, got.Body)
	}

	// Grants are read at publish time: a PATCH counts at once.
	if _, err := n.c.UpdateConfig(ctx, "shop", apitype.Config{Publish: &[]string{"payments"}}, 0); err != nil {
		t.Fatal(err)
	}
	if got := n.publishAs(t, "shop", map[string]any{"topic": "payments", "id": "p1"}); got.Status != 202 {
		t.Errorf("after the grant, payments: %d %s", got.Status, got.Body)
	}
	if got := n.publishAs(t, "shop", map[string]any{"topic": "orders", "id": "o2"}); got.Status != 403 {
		t.Errorf("after the grant was taken back, orders: %d %s", got.Status, got.Body)
	}

	// The admin is refused the node's topics too, and the attribute.
	for _, tc := range []struct {
		path, body string
		header     map[string]string
		status     int
	}{
		{"/v1/events/dlq.shop", `{"x":1}`, nil, 403},
		{"/v1/events/spend-caps", `{"x":1}`, nil, 403},
		{"/v1/events/done", `{"x":1}`, nil, 403},
		{"/v1/events/orders", `{"specversion":"1.0","id":"a1","source":"/shop","type":"t","wisppublisher":"function:shop"}`,
			map[string]string{"Content-Type": "application/cloudevents+json"}, 400},
		{"/v1/events/orders", `{}`, map[string]string{"ce-specversion": "1.0", "ce-id": "a2", "ce-source": "/shop",
			"ce-type": "t", "ce-wisppublisher": "admin"}, 400},
	} {
		status, body := postJSON(t, n, tc.path, tc.body, tc.header)
		if status != tc.status {
			t.Errorf("admin POST %s %s: %d %s, want %d", tc.path, tc.body, status, body, tc.status)
		}
	}
	status, body := postJSON(t, n, "/v1/events/orders", `{"by":"admin"}`, nil)
	if status != 202 {
		t.Fatalf("admin publishing on orders: %d %s", status, body)
	}

	// Only what was accepted is stored, each saying who published it, in
	// the attribute and in the stored principal alike.
	for topic, want := range map[string][]string{
		"orders": {"function:shop", "admin"}, "audit.login": {"function:shop"}, "payments": {"function:shop"},
		"audit.login.failed": nil, "dlq.shop": nil, "dlq.other": nil, "spend-caps": nil, "done": nil,
	} {
		list, err := n.Events().Read(ctx, topic, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(want) {
			t.Errorf("%s holds %d events, want %d", topic, len(list), len(want))
			continue
		}
		for i, te := range list {
			ev, err := cloudevent.Parse(te.Event)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := ev.Attr(events.PublisherAttribute); p != want[i] || te.Principal != want[i] {
				t.Errorf("%s event %d: publisher %q, principal %q, want %q", topic, i, p, te.Principal, want[i])
			}
		}
	}

	// A function's token does not subscribe or unsubscribe.
	for _, req := range []map[string]any{
		{"path": "/v1/subscriptions", "body": map[string]string{"topic": "orders", "function": "shop"}},
		{"path": "/v1/subscriptions/sub-0", "method": "DELETE"},
	} {
		if got := n.publishAs(t, "shop", req); got.Status != 403 {
			t.Errorf("a function's token at %s: %d %s, want 403", req["path"], got.Status, got.Body)
		}
	}
	if subs := n.Events().Subscriptions("", ""); len(subs) != 0 {
		t.Errorf("subscriptions %+v", subs)
	}

	// wisp_events_published_total counts by kind of publisher, not by
	// topic.
	mfs, err := nodestats.Metrics(ctx, n.c)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, m := range mfs["wisp_events_published_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "publisher" {
				t.Errorf("wisp_events_published_total has label %s=%s", l.GetName(), l.GetValue())
			}
			counts[l.GetValue()] = m.GetCounter().GetValue()
		}
	}
	if counts["function"] != 3 || counts["admin"] != 1 || len(counts) != 2 {
		t.Errorf("wisp_events_published_total %v, want function 3, admin 1", counts)
	}
}

// TestPublisherFilter: two functions publish on one topic with the same
// source; a subscription filtering on the source runs both, one filtering
// on the publisher attribute runs only the real publisher's event.
func TestPublisherFilter(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	ctx := context.Background()
	rec := newRecorder(t)
	n.deployPublisher(t, "shop", []string{"orders"})
	n.deployPublisher(t, "mallory", []string{"orders"})
	n.deployRecorder(t, rec, "billing", apitype.Config{Timeout: ptr2(30)})
	n.deployRecorder(t, rec, "naive", apitype.Config{Timeout: ptr2(30)})
	for _, s := range []apitype.Subscription{
		{Topic: "orders", Function: "billing", Filter: apitype.Filter{Exact: map[string]string{events.PublisherAttribute: "function:shop"}}},
		{Topic: "orders", Function: "naive", Filter: apitype.Filter{Exact: map[string]string{"source": "/shop"}}},
	} {
		if _, err := n.c.Subscribe(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for fn, amount := range map[string]int{"shop": 10, "mallory": -1000000} {
		got := n.publishAs(t, fn, map[string]any{"topic": "orders", "id": "order-" + fn, "source": "/shop", "data": map[string]int{"amount": amount}})
		if got.Status != 202 {
			t.Fatalf("%s publishing: %d %s", fn, got.Status, got.Body)
		}
	}
	waitUntil(t, 30*time.Second, "both events reach the source filter", func() bool { return len(rec.of("naive")) >= 2 })
	waitUntil(t, 30*time.Second, "the real event reaches the publisher filter", func() bool { return len(rec.of("billing")) >= 1 })
	// Both events were routed to every subscription they pass before
	// naive ran the second: whatever billing was handed, it has run once
	// its queue is empty.
	waitUntil(t, 30*time.Second, "billing's queue empties", func() bool { return n.Events().Queued()["billing"] == 0 })
	calls := rec.of("billing")
	if len(calls) != 1 {
		t.Fatalf("billing ran %d times, want once", len(calls))
	}
	ev, err := cloudevent.Parse(calls[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := ev.Attr(events.PublisherAttribute); p != "function:shop" || string(ev.Data) != `{"amount":10}` {
		t.Errorf("billing ran %s from %q, want the amount 10 of function:shop", ev.Data, p)
	}
}

// TestTopicsAcrossNodes: two nodes sharing one NATS route a topic's events
// with one consumer between them: events published on either node reach a
// subscription made on the other once each, and grants and the publisher
// attribute hold on both.
func TestTopicsAcrossNodes(t *testing.T) {
	needTool(t, "node")
	a := startNode(t, server.Config{RetryBase: fastRetry, NATSListen: "127.0.0.1:0"})
	b := startNode(t, server.Config{RetryBase: fastRetry, NATSURL: a.NATSURL()})
	ctx := context.Background()
	rec := newRecorder(t)
	a.deployRecorder(t, rec, "sink", apitype.Config{Timeout: ptr2(30)})
	if _, err := a.c.Subscribe(ctx, apitype.Subscription{Topic: "orders", Function: "sink",
		Filter: apitype.Filter{Exact: map[string]string{events.PublisherAttribute: "admin"}}}); err != nil {
		t.Fatal(err)
	}
	const each = 10
	for i := range 2 * each {
		n := []funcNode{a, b}[i%2]
		if status, body := postJSON(t, n, "/v1/events/orders", fmt.Sprintf(`{"i":%d}`, i), nil); status != http.StatusAccepted {
			t.Fatalf("publishing on node %d: %d %s", i%2, status, body)
		}
	}
	if status, _ := postJSON(t, b, "/v1/events/dlq.sink", `{}`, nil); status != http.StatusForbidden {
		t.Errorf("node b let the admin publish on dlq.sink: %d", status)
	}
	waitUntil(t, 30*time.Second, "every event is delivered", func() bool { return len(rec.of("sink")) >= 2*each })
	waitUntil(t, 30*time.Second, "sink's queue empties", func() bool { return a.Events().Queued()["sink"] == 0 })
	seen := map[string]int{}
	for _, c := range rec.of("sink") {
		ev, err := cloudevent.Parse(c.Event)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(ev.Data)]++
	}
	for i := range 2 * each {
		if n := seen[fmt.Sprintf(`{"i":%d}`, i)]; n != 1 {
			t.Errorf("event %d was delivered %d times, want once", i, n)
		}
	}
}
