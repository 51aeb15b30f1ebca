package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEventsTables(t *testing.T) {
	if _, err := time.LoadLocation("Europe/Paris"); err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	tests := []struct {
		name   string
		args   []string
		path   string // the request wanted, with its query
		answer string
		want   string
	}{
		{
			name: "subscriptions",
			args: []string{"events", "ls", "--function", "ship"},
			path: "/v1/subscriptions?function=ship",
			answer: `{"subscriptions":[
				{"id":"sub-1","topic":"orders","function":"ship","created_at":"2026-11-23T15:00:00Z"},
				{"id":"sub-2","topic":"orders","function":"ship","qualifier":"live","exact":{"type":"order.created","source":"/shop"},
				 "prefix":{"subject":"eu/"},"created_at":"2026-11-20T16:00:00Z"}]}`,
			want: "" +
				"ID      TOPIC    FUNCTION    FILTER                                         CREATED\n" +
				"sub-1   orders   ship        -                                              1h ago\n" +
				"sub-2   orders   ship:live   source=/shop type=order.created subject^=eu/   3d ago\n",
		},
		{
			name: "catalog",
			args: []string{"events", "catalog"},
			path: "/v1/events/catalog",
			answer: `{"topics":[
				{"topic":"dlq.ship","events":0,"publishers":[],"subscribers":[]},
				{"topic":"orders","events":12,"last_published":"2026-11-23T15:59:50Z",
				 "publishers":[{"source":"/shop","principal":"admin","events":10,"last_seen":"2026-11-23T15:59:50Z"},
				               {"source":"wisp://functions/cart","principal":"function:cart","events":2,"last_seen":"2026-11-23T15:00:00Z"}],
				 "subscribers":[{"id":"sub-1","function":"ship"},{"id":"sub-2","function":"bill","qualifier":"2"}]}]}`,
			want: "" +
				"TOPIC      EVENTS   LAST      PUBLISHERS                                             SUBSCRIBERS\n" +
				"dlq.ship   0        -         -                                                      -\n" +
				"orders     12       10s ago   /shop (admin), wisp://functions/cart (function:cart)   ship, bill:2\n",
		},
		{
			name: "events",
			args: []string{"events", "read", "orders", "--after", "7", "--limit", "10"},
			path: "/v1/events/orders?after=7&limit=10",
			answer: `{"events":[
				{"seq":8,"time":"2026-11-23T15:59:00.5Z","principal":"admin","event":{"specversion":"1.0","id":"e8","source":"/shop",
				 "type":"order.created","subject":"eu/42","data":{ "total" : 12.5 }}},
				{"seq":9,"time":"2026-11-23T15:59:30Z","principal":"admin","event":{"specversion":"1.0","id":"e9","source":"/shop",
				 "type":"ping"}},
				{"seq":11,"time":"2026-11-23T15:59:40Z","principal":"admin","event":{"specversion":"1.0","id":"e11","source":"/shop",
				 "type":"blob","datacontenttype":"text/plain","data_base64":"aGVsbG8="}},
				{"seq":12,"time":"2026-11-23T15:59:50Z","principal":"admin","event":{"specversion":"1.0","id":"e12","source":"/shop",
				 "type":"big","data":"` + strings.Repeat("x", 100) + `"}}]}`,
			want: "" +
				"SEQ   TIME                   PUBLISHER   SOURCE   TYPE            SUBJECT   ID    DATA\n" +
				"8     2026-11-23T15:59:00Z   admin       /shop    order.created   eu/42     e8    {\"total\":12.5}\n" +
				"9     2026-11-23T15:59:30Z   admin       /shop    ping            -         e9    -\n" +
				"11    2026-11-23T15:59:40Z   admin       /shop    blob            -         e11   base64:aGVsbG8=\n" +
				"12    2026-11-23T15:59:50Z   admin       /shop    big             -         e12   \"" + strings.Repeat("x", 58) + "…\n",
		},
		{
			name: "schedules",
			args: []string{"schedules", "ls"},
			path: "/v1/schedules",
			answer: `{"schedules":[
				{"function":"tick","name":"schedule-1","expression":"rate(5 minutes)","next":"2026-11-23T16:05:00Z"},
				{"function":"tick","name":"morning","expression":"cron(0 8 ? * MON-FRI *)","timezone":"Europe/Paris","catch_up":true,
				 "qualifier":"live","next":"2026-11-24T07:00:00Z","last_tick":"2026-11-20T07:00:00Z"}]}`,
			want: "" +
				"FUNCTION    NAME         EXPRESSION                TIMEZONE       NEXT                                 LAST\n" +
				"tick        schedule-1   rate(5 minutes)           UTC            2026-11-23T16:05:00Z (in 5m)         -\n" +
				"tick:live   morning      cron(0 8 ? * MON-FRI *)   Europe/Paris   2026-11-24T08:00:00+01:00 (in 15h)   3d ago\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if got := r.URL.RequestURI(); r.Method != "GET" || got != tt.path {
					t.Errorf("request %s %s, want GET %s", r.Method, got, tt.path)
				}
				answer(w, 200, tt.answer)
			})
			stdout, stderr, err := runCLI(t, env, tt.args...)
			if err != nil {
				t.Fatalf("wisp %s: %v (stderr %q)", strings.Join(tt.args, " "), err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
		})
	}
}

func TestEventsReadFullPage(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"events":[{"seq":3,"event":{}},{"seq":5,"event":{}}]}`)
	})
	_, stderr, err := runCLI(t, env, "events", "read", "orders", "--limit", "2", "-o", "json")
	if err != nil || stderr != "more events may follow: --after 5\n" {
		t.Errorf("err %v, stderr %q", err, stderr)
	}
}

func TestEventsPublish(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantBody  string
		wantCE    map[string]string // the ce-* headers wanted; nil for none
		wantCType string
	}{
		{
			name:      "JSON for the node to wrap",
			args:      []string{"orders", `{"n":1}`},
			wantBody:  `{"n":1}`,
			wantCType: "application/json",
		},
		{
			name:      "no data",
			args:      []string{"orders"},
			wantBody:  `null`,
			wantCType: "application/json",
		},
		{
			name:      "data from standard input",
			args:      []string{"orders", "-"},
			stdin:     "[1, 2]\n",
			wantBody:  "[1, 2]\n",
			wantCType: "application/json",
		},
		{
			name:     "a subject makes the other attributes default",
			args:     []string{"orders", "--subject", "eu/42", "--id", "order-42"},
			wantBody: "",
			wantCE: map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "order-42", "Ce-Source": "wisp://api",
				"Ce-Type": "wisp.event", "Ce-Subject": "eu/42"},
		},
		{
			name:     "every attribute",
			args:     []string{"orders", `{"n":1}`, "--type", "order.created", "--source", "/shop", "--id", "7", "--ext", "tenant=acme corp", "--ext", "region=eu"},
			wantBody: `{"n":1}`,
			wantCE: map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "7", "Ce-Source": "/shop", "Ce-Type": "order.created",
				"Ce-Tenant": "acme%20corp", "Ce-Region": "eu"},
			wantCType: "application/json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "POST" || r.URL.Path != "/v1/events/orders" {
					t.Errorf("request %s %s", r.Method, r.URL)
				}
				if got := readAll(t, r); got != tt.wantBody {
					t.Errorf("body %q, want %q", got, tt.wantBody)
				}
				if got := r.Header.Get("Content-Type"); got != tt.wantCType {
					t.Errorf("Content-Type %q, want %q", got, tt.wantCType)
				}
				ce := map[string]string{}
				for k := range r.Header {
					if strings.HasPrefix(k, "Ce-") {
						ce[k] = r.Header.Get(k)
					}
				}
				if len(ce) != len(tt.wantCE) {
					t.Errorf("ce headers %v, want %v", ce, tt.wantCE)
				}
				for k, v := range tt.wantCE {
					if ce[k] != v {
						t.Errorf("%s = %q, want %q", k, ce[k], v)
					}
				}
				answer(w, 202, `{"id":"e1","source":"/shop","topic":"orders"}`)
			})
			stdout, stderr, err := runCLIStdin(t, env, tt.stdin, append([]string{"events", "publish"}, tt.args...)...)
			if err != nil || stdout != "e1\n" {
				t.Errorf("stdout %q, err %v (stderr %q)", stdout, err, stderr)
			}
		})
	}
}

func TestEventsSubscribe(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/subscriptions" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		want := `{"topic":"orders","function":"ship","qualifier":"live","exact":{"source":"/shop","tenant":"acme","type":"order.created","wisppublisher":"function:shop"},"prefix":{"subject":"eu/"}}`
		if got := readAll(t, r); got != want {
			t.Errorf("body %s, want %s", got, want)
		}
		answer(w, 201, `{"id":"sub-1","topic":"orders","function":"ship","qualifier":"live","exact":{"source":"/shop","tenant":"acme","type":"order.created","wisppublisher":"function:shop"},
			"prefix":{"subject":"eu/"},"created_at":"2026-11-23T16:00:00Z"}`)
	})
	stdout, stderr, err := runCLI(t, env, "events", "subscribe", "orders", "ship:live",
		"--type", "order.created", "--source", "/shop", "--filter", "tenant=acme", "--prefix", "subject=eu/", "--publisher", "function:shop")
	if err != nil {
		t.Fatalf("wisp events subscribe: %v (stderr %q)", err, stderr)
	}
	want := "" +
		"id:         sub-1\n" +
		"topic:      orders\n" +
		"function:   ship:live\n" +
		"filter:     source=/shop tenant=acme type=order.created wisppublisher=function:shop subject^=eu/\n" +
		"created_at: 2026-11-23T16:00:00Z (just now)\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestInvokeAsync(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RequestURI() != "/2015-03-31/functions/hello/invocations?Qualifier=live" || r.Header.Get("X-Amz-Invocation-Type") != "Event" {
			t.Errorf("request %s %s %v", r.Method, r.URL, r.Header)
		}
		if got := readAll(t, r); got != `{"a":1}` {
			t.Errorf("body %q", got)
		}
		w.Header().Set("X-Amzn-RequestId", "8f507cfc-1b2a-4697-b07a-ac58fc914c95")
		w.WriteHeader(http.StatusAccepted)
	})
	stdout, stderr, err := runCLI(t, env, "invoke", "hello", "--async", "-q", "live", "-d", `{"a":1}`)
	if err != nil || stdout != "8f507cfc-1b2a-4697-b07a-ac58fc914c95\n" {
		t.Errorf("stdout %q, err %v (stderr %q)", stdout, err, stderr)
	}
}
