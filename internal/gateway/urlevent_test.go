package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// testNow is not in UTC, to show the event's time is.
var testNow = time.Date(2020, 3, 12, 20, 3, 58, 390_000_000, time.FixedZone("CET", 3600))

func TestURLEvent(t *testing.T) {
	reqContext := func(method, path string) urlRequestContext {
		return urlRequestContext{
			AccountID:    "anonymous",
			APIID:        "wisp",
			DomainName:   "wisp.test:8080",
			DomainPrefix: "wisp",
			HTTP: urlRequestHTTP{
				Method:    method,
				Path:      path,
				Protocol:  "HTTP/1.1",
				SourceIP:  "192.0.2.1",
				UserAgent: "test-agent",
			},
			RequestID: "req-1",
			RouteKey:  "$default",
			Stage:     "$default",
			Time:      "12/Mar/2020:19:03:58 +0000",
			TimeEpoch: 1584039838390,
		}
	}
	tests := []struct {
		name    string
		request func() *http.Request
		rawPath string
		body    []byte
		want    urlEvent
	}{
		{
			name: "get with query and cookies",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "http://wisp.test:8080/fn/hello/items/a%20b?a=1&a=2&b=x%20y&c&d=1;2&e=%zz", nil)
				r.Header.Set("User-Agent", "test-agent")
				r.Header.Add("Cookie", "session=abc; theme=dark")
				r.Header.Add("Cookie", "lang=en")
				return r
			},
			rawPath: "/items/a%20b",
			want: urlEvent{
				Version:        "2.0",
				RouteKey:       "$default",
				RawPath:        "/items/a%20b",
				RawQueryString: "a=1&a=2&b=x%20y&c&d=1;2&e=%zz",
				Cookies:        []string{"session=abc", "theme=dark", "lang=en"},
				Headers:        map[string]string{"host": "wisp.test:8080", "user-agent": "test-agent"},
				QueryStringParameters: map[string]string{
					"a": "1,2", "b": "x y", "c": "", "d": "1;2", "e": "%zz",
				},
				RequestContext: reqContext(http.MethodGet, "/items/a%20b"),
			},
		},
		{
			name: "post json body is text",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "http://wisp.test:8080/fn/hello:live/", strings.NewReader(`{"k":"<v>&"}`))
				r.Header.Set("User-Agent", "test-agent")
				r.Header.Set("Content-Type", "application/json; charset=utf-8")
				return r
			},
			rawPath: "/",
			body:    []byte(`{"k":"<v>&"}`),
			want: urlEvent{
				Version:        "2.0",
				RouteKey:       "$default",
				RawPath:        "/",
				Headers:        map[string]string{"host": "wisp.test:8080", "user-agent": "test-agent", "content-type": "application/json; charset=utf-8"},
				RequestContext: reqContext(http.MethodPost, "/"),
				Body:           `{"k":"<v>&"}`,
			},
		},
		{
			name: "post binary body is base64",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "http://wisp.test:8080/fn/hello/upload", nil)
				r.Header.Set("User-Agent", "test-agent")
				r.Header.Set("Content-Type", "application/octet-stream")
				return r
			},
			rawPath: "/upload",
			body:    []byte{0x00, 0x01, 0xfe, 0xff},
			want: urlEvent{
				Version:         "2.0",
				RouteKey:        "$default",
				RawPath:         "/upload",
				Headers:         map[string]string{"host": "wisp.test:8080", "user-agent": "test-agent", "content-type": "application/octet-stream"},
				RequestContext:  reqContext(http.MethodPost, "/upload"),
				Body:            "AAH+/w==",
				IsBase64Encoded: true,
			},
		},
		{
			name: "form post is base64",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "http://wisp.test:8080/fn/hello/form", nil)
				r.Header.Set("User-Agent", "test-agent")
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			rawPath: "/form",
			body:    []byte("a=1&b=2"),
			want: urlEvent{
				Version:         "2.0",
				RouteKey:        "$default",
				RawPath:         "/form",
				Headers:         map[string]string{"host": "wisp.test:8080", "user-agent": "test-agent", "content-type": "application/x-www-form-urlencoded"},
				RequestContext:  reqContext(http.MethodPost, "/form"),
				Body:            base64.StdEncoding.EncodeToString([]byte("a=1&b=2")),
				IsBase64Encoded: true,
			},
		},
		{
			name: "text that is not utf-8 is base64",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPut, "http://wisp.test:8080/fn/hello/t", nil)
				r.Header.Set("User-Agent", "test-agent")
				r.Header.Set("Content-Type", "text/plain")
				return r
			},
			rawPath: "/t",
			body:    []byte{'a', 0xff},
			want: urlEvent{
				Version:         "2.0",
				RouteKey:        "$default",
				RawPath:         "/t",
				Headers:         map[string]string{"host": "wisp.test:8080", "user-agent": "test-agent", "content-type": "text/plain"},
				RequestContext:  reqContext(http.MethodPut, "/t"),
				Body:            "Yf8=",
				IsBase64Encoded: true,
			},
		},
		{
			name: "headers lower-cased and joined, forwarding headers not trusted",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "http://wisp.test:8080/fn/hello/h", nil)
				r.Header.Set("User-Agent", "test-agent")
				r.Header.Add("X-Multi", "one")
				r.Header.Add("X-Multi", "two")
				r.Header.Set("X-Forwarded-For", "203.0.113.9")
				r.Header["x-raw"] = []string{"kept"} // not canonical, as a proxy might leave it
				return r
			},
			rawPath: "/h",
			want: urlEvent{
				Version:  "2.0",
				RouteKey: "$default",
				RawPath:  "/h",
				Headers: map[string]string{
					"host": "wisp.test:8080", "user-agent": "test-agent",
					"x-multi": "one,two", "x-forwarded-for": "203.0.113.9", "x-raw": "kept",
				},
				RequestContext: reqContext(http.MethodGet, "/h"),
			},
		},
		{
			name: "ip host and ipv6 peer",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9000/fn/hello/", nil)
				r.RemoteAddr = "[2001:db8::1]:51234"
				return r
			},
			rawPath: "/",
			want: urlEvent{
				Version:  "2.0",
				RouteKey: "$default",
				RawPath:  "/",
				Headers:  map[string]string{"host": "127.0.0.1:9000"},
				RequestContext: urlRequestContext{
					AccountID:    "anonymous",
					APIID:        "127.0.0.1",
					DomainName:   "127.0.0.1:9000",
					DomainPrefix: "127.0.0.1",
					HTTP:         urlRequestHTTP{Method: http.MethodGet, Path: "/", Protocol: "HTTP/1.1", SourceIP: "2001:db8::1"},
					RequestID:    "req-1",
					RouteKey:     "$default",
					Stage:        "$default",
					Time:         "12/Mar/2020:19:03:58 +0000",
					TimeEpoch:    1584039838390,
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := URLEvent(tt.request(), tt.rawPath, tt.body, "req-1", testNow)
			if err != nil {
				t.Fatalf("URLEvent: %v", err)
			}
			var got urlEvent
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("decode %s: %v", raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("event\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestURLEventOmitsEmpty(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://wisp.test/fn/hello/", nil)
	raw, err := URLEvent(r, "/", nil, "req-1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"body", "cookies", "queryStringParameters"} {
		if v, ok := fields[name]; ok {
			t.Errorf("event has %s = %s, want it left out", name, v)
		}
	}
	if got, want := string(fields["isBase64Encoded"]), "false"; got != want {
		t.Errorf("isBase64Encoded = %s, want %s", got, want)
	}
	if got, want := string(fields["rawQueryString"]), `""`; got != want {
		t.Errorf("rawQueryString = %s, want %s", got, want)
	}
}

// TestURLEventGoHandler runs the event through aws-lambda-go, as a function
// built with it would, and its answer back through WriteURLResponse.
func TestURLEventGoHandler(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "http://wisp.test/fn/hello/greet?name=wisp&x=1&x=2", strings.NewReader("hi"))
	r.Header.Set("Content-Type", "text/plain")
	r.Header.Set("Cookie", "a=1; b=2")
	r.Header.Set("User-Agent", "test-agent")
	event, err := URLEvent(r, "/greet", []byte("hi"), "req-7", testNow)
	if err != nil {
		t.Fatal(err)
	}

	var seen events.LambdaFunctionURLRequest
	handler := lambda.NewHandler(func(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
		seen = req
		return events.LambdaFunctionURLResponse{
			StatusCode: http.StatusCreated,
			Headers:    map[string]string{"Content-Type": "text/plain"},
			Body:       "hello " + req.QueryStringParameters["name"],
			Cookies:    []string{"seen=1; Path=/"},
		}, nil
	})
	result, err := handler.Invoke(context.Background(), event)
	if err != nil {
		t.Fatalf("handler: %v", err)
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"version", seen.Version, "2.0"},
		{"rawPath", seen.RawPath, "/greet"},
		{"rawQueryString", seen.RawQueryString, "name=wisp&x=1&x=2"},
		{"cookies", seen.Cookies, []string{"a=1", "b=2"}},
		{"query x", seen.QueryStringParameters["x"], "1,2"},
		{"content-type header", seen.Headers["content-type"], "text/plain"},
		{"method", seen.RequestContext.HTTP.Method, http.MethodPost},
		{"path", seen.RequestContext.HTTP.Path, "/greet"},
		{"sourceIp", seen.RequestContext.HTTP.SourceIP, "192.0.2.1"},
		{"userAgent", seen.RequestContext.HTTP.UserAgent, "test-agent"},
		{"requestId", seen.RequestContext.RequestID, "req-7"},
		{"accountId", seen.RequestContext.AccountID, "anonymous"},
		{"domainName", seen.RequestContext.DomainName, "wisp.test"},
		{"timeEpoch", seen.RequestContext.TimeEpoch, testNow.UnixMilli()},
		{"body", seen.Body, "hi"},
		{"isBase64Encoded", seen.IsBase64Encoded, false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	w := httptest.NewRecorder()
	if err := WriteURLResponse(w, result); err != nil {
		t.Fatalf("WriteURLResponse(%s): %v", result, err)
	}
	if w.Code != http.StatusCreated {
		t.Errorf("status = %d, want %d", w.Code, http.StatusCreated)
	}
	if got, want := w.Body.String(), "hello wisp"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if got, want := w.Header().Values("Set-Cookie"), []string{"seen=1; Path=/"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Set-Cookie = %q, want %q", got, want)
	}
}

func TestWriteURLResponse(t *testing.T) {
	tests := []struct {
		name       string
		payload    string
		wantStatus int
		wantHeader http.Header // each listed header must have exactly these values
		wantBody   string
	}{
		{
			name: "full response object",
			payload: `{"statusCode":201,"headers":{"Content-Type":"text/html","X-Custom":"v","X-Count":3,"X-Flag":true,"X-Null":null},
				"cookies":["a=1; Path=/","b=2; Max-Age=60"],"body":"<p>hi</p>","isBase64Encoded":false}`,
			wantStatus: http.StatusCreated,
			wantHeader: http.Header{
				"Content-Type":   {"text/html"},
				"X-Custom":       {"v"},
				"X-Count":        {"3"},
				"X-Flag":         {"true"},
				"X-Null":         nil,
				"Set-Cookie":     {"a=1; Path=/", "b=2; Max-Age=60"},
				"Content-Length": {"9"},
			},
			wantBody: "<p>hi</p>",
		},
		{
			name:       "base64 body decoded",
			payload:    `{"statusCode":200,"headers":{"content-type":"image/png"},"body":"AAH+/w==","isBase64Encoded":true}`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"image/png"}},
			wantBody:   "\x00\x01\xfe\xff",
		},
		{
			name:       "multiValueHeaders win over headers",
			payload:    `{"statusCode":200,"headers":{"X-A":"single","X-B":"b"},"multiValueHeaders":{"x-a":["one","two"]},"body":"ok"}`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"X-A": {"one", "two"}, "X-B": {"b"}, "Content-Type": {"application/json"}},
			wantBody:   "ok",
		},
		{
			name:       "default content type and no body",
			payload:    `{"statusCode":404}`,
			wantStatus: http.StatusNotFound,
			wantHeader: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"0"}},
			wantBody:   "",
		},
		{
			name:       "function content-length replaced",
			payload:    `{"statusCode":200,"headers":{"Content-Length":"999","Transfer-Encoding":"chunked"},"body":"abc"}`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Length": {"3"}, "Transfer-Encoding": nil},
			wantBody:   "abc",
		},
		{
			name:       "no body for 204",
			payload:    `{"statusCode":204,"body":"ignored"}`,
			wantStatus: http.StatusNoContent,
			wantHeader: http.Header{"Content-Length": nil},
			wantBody:   "",
		},
		{
			name:       "non-string body written as json",
			payload:    `{"statusCode":200,"body":{"a":[1,2]}}`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   `{"a":[1,2]}`,
		},
		{
			name:       "object without statusCode",
			payload:    `{"message": "Hello, world!", "body": "not used"}`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   `{"message": "Hello, world!", "body": "not used"}`,
		},
		{
			name:       "object with StatusCode in another case",
			payload:    `{"StatusCode":500}`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   `{"StatusCode":500}`,
		},
		{
			name:       "bare string keeps its quotes",
			payload:    `"Hello, world!"`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"15"}},
			wantBody:   `"Hello, world!"`,
		},
		{
			name:       "number",
			payload:    `42`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   `42`,
		},
		{
			name:       "null",
			payload:    `null`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   `null`,
		},
		{
			name:       "array",
			payload:    `[{"statusCode":500}]`,
			wantStatus: http.StatusOK,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   `[{"statusCode":500}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := WriteURLResponse(w, []byte(tt.payload)); err != nil {
				t.Fatalf("WriteURLResponse: %v", err)
			}
			res := w.Result()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			for name, want := range tt.wantHeader {
				if got := res.Header.Values(name); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			if string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestWriteURLResponseRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload string
	}{
		{"invalid json", `{"statusCode":200,`},
		{"empty", ``},
		{"plain text", `Hello`},
		{"statusCode not a number", `{"statusCode":"200"}`},
		{"statusCode not an integer", `{"statusCode":200.5}`},
		{"statusCode out of range", `{"statusCode":99}`},
		{"statusCode too large", `{"statusCode":600}`},
		{"statusCode null", `{"statusCode":null}`},
		{"bad base64", `{"statusCode":200,"body":"not base64!","isBase64Encoded":true}`},
		{"header object value", `{"statusCode":200,"headers":{"X-A":{"b":1}}}`},
		{"headers not an object", `{"statusCode":200,"headers":["X-A"]}`},
		{"cookies not strings", `{"statusCode":200,"cookies":[1]}`},
		{"isBase64Encoded not a bool", `{"statusCode":200,"isBase64Encoded":"yes"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			err := WriteURLResponse(w, []byte(tt.payload))
			if !errors.Is(err, ErrBadURLResponse) {
				t.Fatalf("WriteURLResponse(%s) = %v, want %v", tt.payload, err, ErrBadURLResponse)
			}
			if w.Code != http.StatusOK || w.Body.Len() != 0 || len(w.Header()) != 0 {
				t.Errorf("wrote a response (%d, %q, %v) before failing", w.Code, w.Body, w.Header())
			}
		})
	}
}

func FuzzWriteURLResponse(f *testing.F) {
	f.Add(`{"statusCode":200,"headers":{"a":"b"},"multiValueHeaders":{"c":["d",1,null]},"cookies":["x=1"],"body":"aGk=","isBase64Encoded":true}`)
	f.Add(`"s"`)
	f.Add(`{"statusCode":1e2}`)
	f.Fuzz(func(t *testing.T, payload string) {
		w := httptest.NewRecorder()
		err := WriteURLResponse(w, []byte(payload))
		if err != nil && !errors.Is(err, ErrBadURLResponse) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func FuzzURLEvent(f *testing.F) {
	f.Add("a=1&a=2&b=%zz;c", "session=1; theme=dark", "application/json", []byte(`{"a":1}`))
	f.Add("", "", "", []byte{0xff})
	f.Fuzz(func(t *testing.T, query, cookie, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "http://wisp.test/fn/hello/", nil)
		r.URL.RawQuery = query
		r.Header.Set("Cookie", cookie)
		r.Header.Set("Content-Type", contentType)
		raw, err := URLEvent(r, "/", body, "req", testNow)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.LambdaFunctionURLRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("event does not decode: %v\n%s", err, raw)
		}
		got := []byte(ev.Body)
		if ev.IsBase64Encoded {
			if got, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != string(body) {
			t.Fatalf("body round trip: got %q, want %q", got, body)
		}
	})
}
