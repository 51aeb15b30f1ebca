package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
)

func TestEventRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		answer answer
		call   func(c *client.Client) (any, error)
		method string
		path   string
		query  string
		body   string // the body wanted, "" for none
		want   string // what the call returned, as JSON
	}{
		{
			name:   "publish JSON for the node to wrap",
			answer: answer{202, `{"id":"e1","source":"wisp://api","topic":"orders"}`},
			call: func(c *client.Client) (any, error) {
				return c.PublishEvent(ctx, "orders", []byte(`{"n":1}`), client.PublishOptions{})
			},
			method: "POST", path: "/v1/events/orders", body: `{"n":1}`,
			want: `{"id":"e1","source":"wisp://api","topic":"orders"}`,
		},
		{
			name:   "publish no data",
			answer: answer{202, `{"id":"e1","source":"wisp://api","topic":"orders"}`},
			call: func(c *client.Client) (any, error) {
				return c.PublishEvent(ctx, "orders", nil, client.PublishOptions{})
			},
			method: "POST", path: "/v1/events/orders", body: `null`,
			want: `{"id":"e1","source":"wisp://api","topic":"orders"}`,
		},
		{
			name:   "read",
			answer: answer{200, `{"events":[{"seq":8,"time":"2026-11-23T16:00:00Z","principal":"admin","event":{"id":"e1"}}]}`},
			call: func(c *client.Client) (any, error) {
				return c.ReadEvents(ctx, "orders.created", 7, 10)
			},
			method: "GET", path: "/v1/events/orders.created", query: "after=7&limit=10",
			want: `[{"seq":8,"time":"2026-11-23T16:00:00Z","principal":"admin","event":{"id":"e1"}}]`,
		},
		{
			name:   "read from the start, none kept",
			answer: answer{200, `{"events":null}`},
			call: func(c *client.Client) (any, error) {
				return c.ReadEvents(ctx, "orders", 0, 0)
			},
			method: "GET", path: "/v1/events/orders",
			want: `[]`,
		},
		{
			name: "catalog",
			answer: answer{200, `{"topics":[{"topic":"orders","events":2,"publishers":[{"source":"wisp://api","principal":"admin",` +
				`"events":2,"last_seen":"2026-11-23T16:00:00Z"}],"subscribers":[{"id":"sub-1","function":"hello"}]}]}`},
			call: func(c *client.Client) (any, error) {
				return c.Catalog(ctx)
			},
			method: "GET", path: "/v1/events/catalog",
			want: `[{"topic":"orders","events":2,"publishers":[{"source":"wisp://api","principal":"admin",` +
				`"events":2,"last_seen":"2026-11-23T16:00:00Z"}],"subscribers":[{"id":"sub-1","function":"hello"}]}]`,
		},
		{
			name:   "subscribe sends only what a caller sets",
			answer: answer{201, `{"id":"sub-1","topic":"orders","function":"hello","qualifier":"live","exact":{"type":"x"},"created_at":"2026-11-23T16:00:00Z"}`},
			call: func(c *client.Client) (any, error) {
				return c.Subscribe(ctx, apitype.Subscription{ID: "ignored", Topic: "orders", Function: "hello", Qualifier: "live",
					Filter: apitype.Filter{Exact: map[string]string{"type": "x"}, Prefix: map[string]string{"subject": "eu/"}}})
			},
			method: "POST", path: "/v1/subscriptions",
			body: `{"topic":"orders","function":"hello","qualifier":"live","exact":{"type":"x"},"prefix":{"subject":"eu/"}}`,
			want: `{"id":"sub-1","topic":"orders","function":"hello","qualifier":"live","exact":{"type":"x"},"created_at":"2026-11-23T16:00:00Z"}`,
		},
		{
			name:   "subscribe to every event",
			answer: answer{201, `{"id":"sub-1"}`},
			call: func(c *client.Client) (any, error) {
				return c.Subscribe(ctx, apitype.Subscription{Topic: "orders", Function: "hello"})
			},
			method: "POST", path: "/v1/subscriptions",
			body: `{"topic":"orders","function":"hello"}`,
			want: `{"id":"sub-1","topic":"","function":"","created_at":"0001-01-01T00:00:00Z"}`,
		},
		{
			name:   "unsubscribe",
			answer: answer{204, ""},
			call: func(c *client.Client) (any, error) {
				return nil, c.Unsubscribe(ctx, "sub-1")
			},
			method: "DELETE", path: "/v1/subscriptions/sub-1",
			want: `null`,
		},
		{
			name:   "subscriptions",
			answer: answer{200, `{"subscriptions":[]}`},
			call: func(c *client.Client) (any, error) {
				return c.Subscriptions(ctx, "orders", "hello")
			},
			method: "GET", path: "/v1/subscriptions", query: "function=hello&topic=orders",
			want: `[]`,
		},
		{
			name:   "all subscriptions",
			answer: answer{200, `{}`},
			call: func(c *client.Client) (any, error) {
				return c.Subscriptions(ctx, "", "")
			},
			method: "GET", path: "/v1/subscriptions",
			want: `[]`,
		},
		{
			name: "schedules",
			answer: answer{200, `{"schedules":[{"function":"hello","name":"schedule-1","expression":"rate(5 minutes)",` +
				`"next":"2026-11-23T16:05:00Z"}]}`},
			call: func(c *client.Client) (any, error) {
				return c.Schedules(ctx, "hello")
			},
			method: "GET", path: "/v1/schedules", query: "function=hello",
			want: `[{"function":"hello","name":"schedule-1","expression":"rate(5 minutes)","next":"2026-11-23T16:05:00Z"}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, tt.answer)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			r := <-reqs
			if r.method != tt.method || r.path != tt.path || r.rawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.method, r.path, r.rawQuery, tt.method, tt.path, tt.query)
			}
			if got := r.header.Get("Authorization"); got != "Bearer tok" {
				t.Errorf("Authorization = %q, want %q", got, "Bearer tok")
			}
			if got := string(r.body); got != tt.body {
				t.Errorf("body = %s, want %s", got, tt.body)
			}
			if tt.body != "" {
				if got := r.header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", got)
				}
			}
			if b, err := json.Marshal(got); err != nil || string(b) != tt.want {
				t.Errorf("returned %s (%v), want %s", b, err, tt.want)
			}
		})
	}
}

// TestPublishBinary reads what PublishEvent sends as the node does, with
// cloudevent.FromHTTP, so the headers are checked against the binding the
// node implements.
func TestPublishBinary(t *testing.T) {
	got := make(chan cloudevent.Event, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events/{topic}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		ev, err := cloudevent.FromHTTP(r.Header, body, cloudevent.Wrap{Source: "wrapped", Type: "wrapped"})
		if err != nil {
			t.Errorf("FromHTTP: %v", err)
		}
		got <- ev
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(apitype.PublishResult{ID: ev.ID, Source: ev.Source, Topic: r.PathValue("topic")})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := client.New(srv.URL, "tok")
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

	tests := []struct {
		name string
		data string
		opt  client.PublishOptions
		want cloudevent.Event // ID "" stands for a random UUID
	}{
		{
			name: "every attribute, encoded",
			data: `{"total": 12.5}`,
			opt: client.PublishOptions{Type: "com.example.order.created", Source: "/shop/eu", Subject: `"€ 100%" +1`, ID: "order-7",
				Extensions: map[string]string{"tenant": "acme corp", "empty": ""}},
			want: cloudevent.Event{SpecVersion: "1.0", ID: "order-7", Source: "/shop/eu", Type: "com.example.order.created",
				Subject: `"€ 100%" +1`, DataContentType: "application/json", Data: json.RawMessage(`{"total": 12.5}`),
				Extensions: map[string]string{"tenant": "acme corp", "empty": ""}},
		},
		{
			name: "a random id, no data",
			opt:  client.PublishOptions{Type: "ping", Source: "cron"},
			want: cloudevent.Event{SpecVersion: "1.0", Source: "cron", Type: "ping"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.PublishEvent(context.Background(), "orders", []byte(tt.data), tt.opt)
			if err != nil {
				t.Fatalf("PublishEvent: %v", err)
			}
			ev := <-got
			if tt.want.ID == "" {
				if !uuid.MatchString(ev.ID) {
					t.Errorf("id = %q, want a random UUID", ev.ID)
				}
				tt.want.ID = ev.ID
			}
			if !reflect.DeepEqual(ev, tt.want) {
				t.Errorf("the node read\n%#v\nwant\n%#v", ev, tt.want)
			}
			if want := (apitype.PublishResult{ID: tt.want.ID, Source: tt.want.Source, Topic: "orders"}); res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}
		})
	}
}

func TestPublishRefused(t *testing.T) {
	tests := []struct {
		name string
		data string
		opt  client.PublishOptions
	}{
		{"data not JSON", "{oops", client.PublishOptions{}},
		{"a type without a source", `{}`, client.PublishOptions{Type: "t"}},
		{"a subject alone", `{}`, client.PublishOptions{Subject: "s"}},
		{"a bad extension name", `{}`, client.PublishOptions{Type: "t", Source: "s", Extensions: map[string]string{"Bad-Name": "x"}}},
		{"a reserved extension name", `{}`, client.PublishOptions{Type: "t", Source: "s", Extensions: map[string]string{"data": "x"}}},
		{"a control character", `{}`, client.PublishOptions{Type: "t", Source: "s", Subject: "a\nb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, answer{202, `{}`})
			_, err := c.PublishEvent(context.Background(), "orders", []byte(tt.data), tt.opt)
			if err == nil {
				t.Fatal("no error")
			}
			if len(reqs) != 0 {
				t.Errorf("a request was sent")
			}
		})
	}
}

func TestUnsubscribeNotFound(t *testing.T) {
	c, _ := fakeNode(t, answer{404, `{"type":"ResourceNotFoundException","message":"subscription \"sub-x\" not found"}`})
	if err := c.Unsubscribe(context.Background(), "sub-x"); !client.IsNotFound(err) {
		t.Errorf("Unsubscribe = %v, want not found", err)
	}
}

// invokeNode answers the Lambda Invoke API as the gateway does, and
// sends the requests it gets on the returned channel.
func invokeNode(t *testing.T, h http.HandlerFunc) (*client.Client, <-chan *http.Request) {
	reqs := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.Clone(context.Background())
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL, "tok"), reqs
}

func TestInvoke(t *testing.T) {
	c, reqs := invokeNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Amzn-RequestId", "r1")
		w.Header().Set("X-Amz-Executed-Version", "3")
		w.Header().Set("X-Amz-Log-Result", "aGk=")
		io.WriteString(w, `"hello"`)
	})
	res, err := c.Invoke(context.Background(), "hello", []byte(`{}`), client.InvokeOptions{Qualifier: "live", Tail: true})
	if err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.Method != "POST" || r.URL.Path != "/2015-03-31/functions/hello/invocations" || r.URL.RawQuery != "Qualifier=live" {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
	if r.Header.Get("X-Amz-Log-Type") != "Tail" || r.Header.Get("X-Amz-Invocation-Type") != "" || r.Header.Get("Authorization") != "Bearer tok" {
		t.Errorf("headers %v", r.Header)
	}
	want := client.InvokeResult{Payload: []byte(`"hello"`), ExecutedVersion: "3", RequestID: "r1", LogTail: []byte("hi")}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

func TestInvokeAsync(t *testing.T) {
	tests := []struct {
		name    string
		answer  http.HandlerFunc
		want    string
		wantErr func(error) bool
	}{
		{
			name: "accepted",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-RequestId", "8f507cfc-0000-4000-8000-000000000000")
				w.WriteHeader(http.StatusAccepted)
			},
			want: "8f507cfc-0000-4000-8000-000000000000",
		},
		{
			name: "too large",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-ErrorType", "RequestTooLargeException")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				io.WriteString(w, `{"__type":"RequestTooLargeException","message":"Request must be smaller than 262144 bytes"}`)
			},
			wantErr: func(err error) bool {
				var e *client.Error
				return errors.As(err, &e) && e.Type == apitype.TypeRequestTooLarge
			},
		},
		{
			name: "run synchronously",
			answer: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `"hello"`)
			},
			wantErr: func(err error) bool { return err != nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := invokeNode(t, tt.answer)
			id, err := c.InvokeAsync(context.Background(), "hello", []byte(`{"a":1}`), "2")
			r := <-reqs
			if r.URL.Path != "/2015-03-31/functions/hello/invocations" || r.URL.RawQuery != "Qualifier=2" ||
				r.Header.Get("X-Amz-Invocation-Type") != "Event" || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("request %s %s %v", r.Method, r.URL, r.Header)
			}
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Errorf("InvokeAsync = %q, %v; not the error wanted", id, err)
				}
				return
			}
			if err != nil || id != tt.want {
				t.Errorf("InvokeAsync = %q, %v; want %q", id, err, tt.want)
			}
		})
	}
}
