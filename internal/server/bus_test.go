package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/server"
)

// TestEventGateway: CloudEvents in structured and binary mode, and plain
// JSON, published on a topic, reach every subscription whose filter they
// pass, as events for its function; a function publishes with its own
// token; the catalog lists who publishes and who listens.
func TestEventGateway(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{RetryBase: fastRetry})
	rec := newRecorder(t)
	ctx := context.Background()
	for _, fn := range []string{"orders", "audit", "acme", "everything"} {
		n.deployRecorder(t, rec, fn, apitype.Config{})
	}
	subs := map[string]apitype.Subscription{}
	for _, s := range []apitype.Subscription{
		{Topic: "shop", Function: "orders", Filter: apitype.Filter{Exact: map[string]string{"type": "order.created"}}},
		{Topic: "shop", Function: "audit", Filter: apitype.Filter{Prefix: map[string]string{"source": "/shop/"}}},
		{Topic: "shop", Function: "acme", Filter: apitype.Filter{Exact: map[string]string{"tenant": "acme"}, Prefix: map[string]string{"subject": "inv-"}}},
		{Topic: "shop", Function: "everything"},
	} {
		got, err := n.c.Subscribe(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		subs[s.Function] = got
	}

	type publish struct {
		body   string
		header map[string]string
	}
	for _, p := range []publish{
		{`{"specversion":"1.0","id":"e1","source":"/shop/web","type":"order.created","data":{"n":1}}`,
			map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}},
		{`{"n":2}`, map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "e2",
			"ce-source": "/billing", "ce-type": "order.created", "ce-tenant": "acme", "ce-subject": "inv-7"}},
		{`{"n":3}`, map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "e3",
			"ce-source": "/billing", "ce-type": "invoice.paid", "ce-tenant": "acme", "ce-subject": "order-7"}},
		{`{"n":4}`, map[string]string{"Content-Type": "application/json"}},
	} {
		status, body := postJSON(t, n, "/v1/events/shop", p.body, p.header)
		if status != http.StatusAccepted {
			t.Fatalf("publish %s: %d %s", p.body, status, body)
		}
	}
	// Who gets what: one event fans out to every subscription it passes.
	want := map[string][]string{
		"orders":     {"e1", "e2"},
		"audit":      {"e1"},
		"acme":       {"e2"},
		"everything": {"e1", "e2", "e3", "wrapped"},
	}
	waitUntil(t, 30*time.Second, "every delivery", func() bool {
		for fn, ids := range want {
			if len(rec.of(fn)) < len(ids) {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a delivery too many would come now
	for fn, ids := range want {
		var got []string
		for _, c := range rec.of(fn) {
			ev, err := cloudevent.Parse(c.Event)
			if err != nil {
				t.Fatalf("%s got %s: %v", fn, c.Event, err)
			}
			id := ev.ID
			if ev.Type == "wisp.event" && ev.Source == "wisp://api" {
				id = "wrapped"
				if string(ev.Data) != `{"n":4}` {
					t.Errorf("the wrapped event's data is %s", ev.Data)
				}
			}
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("%s got %v, want %v", fn, got, ids)
		}
	}

	// Refused: each with a clear error, and nothing stored.
	before, err := n.Events().Read(ctx, "shop", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		status           int
	}{
		{"binary without a type", "/v1/events/shop", `{}`, map[string]string{"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s"}, 400},
		{"structured 0.3", "/v1/events/shop", `{"specversion":"0.3","id":"x","source":"/s","type":"t"}`, map[string]string{"Content-Type": "application/cloudevents+json"}, 400},
		{"not JSON", "/v1/events/shop", `hello`, map[string]string{"Content-Type": "text/plain"}, 400},
		{"batch", "/v1/events/shop", `[]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, 415},
		{"bad topic", "/v1/events/Bad..Topic", `{}`, nil, 400},
		{"reserved topic", "/v1/events/catalog", `{}`, nil, 400},
		{"too large", "/v1/events/shop", `{"pad":"` + strings.Repeat("x", events.MaxPayload) + `"}`, nil, 413},
	} {
		status, body := postJSON(t, n, tc.path, tc.body, tc.header)
		if status != tc.status || !strings.Contains(body, `"message"`) {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, n.URL()+"/v1/events/shop", strings.NewReader(`{}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("publish without a token: %v %v", resp.StatusCode, err)
	}
	if after, _ := n.Events().Read(ctx, "shop", 0, 100); len(after) != len(before) {
		t.Errorf("refused events were stored: %d events, was %d", len(after), len(before))
	}
	for _, s := range []apitype.Subscription{
		{Topic: "shop", Function: "nobody"},
		{Topic: "shop!", Function: "orders"},
		{Topic: "shop", Function: "orders", Filter: apitype.Filter{Exact: map[string]string{"Bad-Attr": "x"}}},
		{Topic: "shop", Function: "orders", Filter: apitype.Filter{Exact: map[string]string{"data": "x"}}},
	} {
		if _, err := n.c.Subscribe(ctx, s); err == nil {
			t.Errorf("subscription %+v was taken", s)
		}
	}
	if got := n.Events().Subscriptions("shop", ""); len(got) != 4 {
		t.Errorf("%d subscriptions after refusals, want 4", len(got))
	}

	// A function publishes through WISP_API_URL with its own token, to a
	// topic it is granted.
	n.deploy(t, writeFiles(t, map[string]string{"index.js": `exports.handler = async () => {
  const r = await fetch(process.env.WISP_API_URL + "/v1/events/shop", {method: "POST",
    headers: {"authorization": "Bearer " + process.env.WISP_API_TOKEN, "content-type": "application/json"},
    body: JSON.stringify({from: "a function"})});
  return {status: r.status};
};`}), apitype.Config{Name: "publisher", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Publish: &[]string{"shop"}})
	res, err := n.c.Invoke(ctx, "publisher", []byte(`{}`), client.InvokeOptions{})
	if err != nil || !strings.Contains(string(res.Payload), `"status":202`) {
		t.Fatalf("publishing from a function: %v %s", err, res.Payload)
	}
	waitUntil(t, 20*time.Second, "the function's event is delivered", func() bool { return len(rec.of("everything")) == 5 })

	// Unsubscribed, orders hears no more.
	if err := n.c.Unsubscribe(ctx, subs["orders"].ID); err != nil {
		t.Fatal(err)
	}
	if err := n.c.Unsubscribe(ctx, subs["orders"].ID); !client.IsNotFound(err) {
		t.Errorf("unsubscribing twice: %v", err)
	}
	status, _ := postJSON(t, n, "/v1/events/shop", `{"specversion":"1.0","id":"e9","source":"/shop/web","type":"order.created"}`,
		map[string]string{"Content-Type": "application/cloudevents+json"})
	if status != http.StatusAccepted {
		t.Fatal(status)
	}
	waitUntil(t, 20*time.Second, "e9 is delivered", func() bool { return len(rec.of("everything")) == 6 })
	time.Sleep(300 * time.Millisecond)
	if got := len(rec.of("orders")); got != 2 {
		t.Errorf("orders got %d events after unsubscribing, want 2", got)
	}

	// The same event on another topic is another event.
	status, body := postJSON(t, n, "/v1/events/shop-copy", `{"specversion":"1.0","id":"e1","source":"/shop/web","type":"order.created","data":{"n":1}}`,
		map[string]string{"Content-Type": "application/cloudevents+json"})
	if list, _ := n.Events().Read(ctx, "shop-copy", 0, 10); status != http.StatusAccepted || len(list) != 1 {
		t.Errorf("the same event on another topic: %d %s, %d stored", status, body, len(list))
	}

	// The catalog: the topic, its publishers and its subscribers.
	var shop apitype.Topic
	waitUntil(t, 10*time.Second, "the catalog counts every publish", func() bool {
		topics, err := n.c.Catalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range topics {
			if tp.Topic == "shop" {
				shop = tp
			}
		}
		return shop.Events == 6
	})
	principals := map[string]bool{}
	for _, p := range shop.Publishers {
		principals[p.Principal+" "+p.Source] = true
	}
	for _, want := range []string{"admin /shop/web", "admin /billing", "admin wisp://api", "function:publisher wisp://functions/publisher"} {
		if !principals[want] {
			t.Errorf("catalog publishers %+v lack %q", shop.Publishers, want)
		}
	}
	if len(shop.Subscribers) != 3 {
		t.Errorf("catalog subscribers %+v, want 3", shop.Subscribers)
	}
	b, _ := json.Marshal(shop)
	t.Logf("catalog entry: %s", b)
}
