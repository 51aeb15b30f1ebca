package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// seen is a request as the fake node received it.
type seen struct {
	method, path, rawQuery string
	header                 http.Header
	contentLength          int64
	body                   []byte
}

// answer is what the fake node says back.
type answer struct {
	status int
	body   string
}

// fakeNode starts a server that records each request and answers with the
// next of answers (the last one repeats). It checks the wire format only;
// the real node's tests check what the answers mean.
func fakeNode(t *testing.T, answers ...answer) (*client.Client, <-chan seen) {
	t.Helper()
	reqs := make(chan seen, 100)
	var mu sync.Mutex
	i := 0 // the next answer; guarded by mu
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request body: %v", err)
		}
		reqs <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), r.ContentLength, b}
		mu.Lock()
		a := answers[min(i, len(answers)-1)]
		i++
		mu.Unlock()
		if strings.HasPrefix(a.body, "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL+"/", "tok"), reqs
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		answer     answer
		wantErr    client.Error
		wantString string
		notFound   bool
	}{
		{
			name:       "api error",
			answer:     answer{404, `{"type":"ResourceNotFoundException","message":"function \"x\" not found"}`},
			wantErr:    client.Error{Status: 404, Type: "ResourceNotFoundException", Message: `function "x" not found`},
			wantString: `ResourceNotFoundException: function "x" not found`,
			notFound:   true,
		},
		{
			name:       "conflict",
			answer:     answer{409, `{"type":"PreconditionFailedException","message":"revision is 8, not 7"}`},
			wantErr:    client.Error{Status: 409, Type: "PreconditionFailedException", Message: "revision is 8, not 7"},
			wantString: "PreconditionFailedException: revision is 8, not 7",
		},
		{
			name:       "not json",
			answer:     answer{502, "<html>bad gateway</html>"},
			wantErr:    client.Error{Status: 502, Message: "Bad Gateway"},
			wantString: "Bad Gateway (HTTP 502)",
		},
		{
			name:       "bare 404 is not a missing function",
			answer:     answer{404, "404 page not found\n"},
			wantErr:    client.Error{Status: 404, Message: "Not Found"},
			wantString: "Not Found (HTTP 404)",
		},
		{
			name:       "json without a message",
			answer:     answer{500, `{}`},
			wantErr:    client.Error{Status: 500, Message: "Internal Server Error"},
			wantString: "Internal Server Error (HTTP 500)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakeNode(t, tt.answer)
			_, err := c.GetFunction(context.Background(), "x")
			var got *client.Error
			if !errors.As(err, &got) {
				t.Fatalf("GetFunction error = %v (%T), want a *client.Error", err, err)
			}
			if *got != tt.wantErr {
				t.Errorf("error = %+v, want %+v", *got, tt.wantErr)
			}
			if got.Error() != tt.wantString {
				t.Errorf("Error() = %q, want %q", got.Error(), tt.wantString)
			}
			if client.IsNotFound(err) != tt.notFound {
				t.Errorf("IsNotFound = %v, want %v", client.IsNotFound(err), tt.notFound)
			}
		})
	}
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	fn := `{"name":"hello","runtime":"go","revision":8}`
	tests := []struct {
		name   string
		answer answer
		call   func(c *client.Client) error
		method string
		path   string
		query  string
		// ifMatch is the If-Match header wanted, "" for none.
		ifMatch string
		// body is the JSON body wanted, "" for none.
		body string
	}{
		{
			name:   "list first page",
			answer: answer{200, `{"functions":[]}`},
			call: func(c *client.Client) error {
				_, _, err := c.ListFunctions(ctx, 0, "")
				return err
			},
			method: "GET", path: "/v1/functions",
		},
		{
			name:   "list next page",
			answer: answer{200, `{"functions":[]}`},
			call: func(c *client.Client) error {
				_, _, err := c.ListFunctions(ctx, 10, "hello")
				return err
			},
			method: "GET", path: "/v1/functions", query: "limit=10&marker=hello",
		},
		{
			name:   "get",
			answer: answer{200, fn},
			call: func(c *client.Client) error {
				_, err := c.GetFunction(ctx, "hello")
				return err
			},
			method: "GET", path: "/v1/functions/hello",
		},
		{
			name:   "update config",
			answer: answer{200, fn},
			call: func(c *client.Client) error {
				mem, auth := 256, "none"
				_, err := c.UpdateConfig(ctx, "hello", apitype.Config{Name: "ignored", MemoryMB: &mem, URLAuth: &auth}, 7)
				return err
			},
			method: "PATCH", path: "/v1/functions/hello", ifMatch: `"7"`,
			body: `{"memory_mb":256,"url_auth":"none"}`,
		},
		{
			name:   "update config unconditionally",
			answer: answer{200, fn},
			call: func(c *client.Client) error {
				_, err := c.UpdateConfig(ctx, "hello", apitype.Config{ClearConcurrency: true}, 0)
				return err
			},
			method: "PATCH", path: "/v1/functions/hello",
			body: `{"clear_concurrency":true}`,
		},
		{
			name:   "delete",
			answer: answer{204, ""},
			call: func(c *client.Client) error {
				return c.DeleteFunction(ctx, "hello", 12)
			},
			method: "DELETE", path: "/v1/functions/hello", ifMatch: `"12"`,
		},
		{
			name:   "publish",
			answer: answer{201, `{"version":3}`},
			call: func(c *client.Client) error {
				_, _, err := c.PublishVersion(ctx, "hello", "first", 7)
				return err
			},
			method: "POST", path: "/v1/functions/hello/versions", ifMatch: `"7"`,
			body: `{"description":"first"}`,
		},
		{
			name:   "list versions",
			answer: answer{200, `{"versions":[{"version":1}]}`},
			call: func(c *client.Client) error {
				_, err := c.ListVersions(ctx, "hello")
				return err
			},
			method: "GET", path: "/v1/functions/hello/versions",
		},
		{
			name:   "get version",
			answer: answer{200, `{"version":2}`},
			call: func(c *client.Client) error {
				_, err := c.GetVersion(ctx, "hello", 2)
				return err
			},
			method: "GET", path: "/v1/functions/hello/versions/2",
		},
		{
			name:   "put alias",
			answer: answer{201, `{"name":"live"}`},
			call: func(c *client.Client) error {
				_, err := c.PutAlias(ctx, "hello", "live", apitype.Alias{
					Name: "ignored", Function: "ignored", Revision: 99,
					Version: 2, AdditionalVersion: 3, AdditionalWeight: 0.1, Description: "canary",
				}, 5)
				return err
			},
			method: "PUT", path: "/v1/functions/hello/aliases/live", ifMatch: `"5"`,
			body: `{"version":2,"additional_version":3,"additional_weight":0.1,"description":"canary"}`,
		},
		{
			name:   "put plain alias",
			answer: answer{200, `{"name":"live"}`},
			call: func(c *client.Client) error {
				_, err := c.PutAlias(ctx, "hello", "live", apitype.Alias{Version: 1}, 0)
				return err
			},
			method: "PUT", path: "/v1/functions/hello/aliases/live",
			body: `{"version":1}`,
		},
		{
			name:   "get alias",
			answer: answer{200, `{"name":"live"}`},
			call: func(c *client.Client) error {
				_, err := c.GetAlias(ctx, "hello", "live")
				return err
			},
			method: "GET", path: "/v1/functions/hello/aliases/live",
		},
		{
			name:   "list aliases",
			answer: answer{200, `{"aliases":[]}`},
			call: func(c *client.Client) error {
				_, err := c.ListAliases(ctx, "hello")
				return err
			},
			method: "GET", path: "/v1/functions/hello/aliases",
		},
		{
			name:   "delete alias",
			answer: answer{204, ""},
			call: func(c *client.Client) error {
				return c.DeleteAlias(ctx, "hello", "live")
			},
			method: "DELETE", path: "/v1/functions/hello/aliases/live",
		},
		{
			name:   "download version",
			answer: answer{200, "PK"},
			call: func(c *client.Client) error {
				rc, err := c.DownloadCode(ctx, "hello", 3)
				if err != nil {
					return err
				}
				return rc.Close()
			},
			method: "GET", path: "/v1/functions/hello/code", query: "version=3",
		},
		{
			name:   "download latest",
			answer: answer{200, "PK"},
			call: func(c *client.Client) error {
				rc, err := c.DownloadCode(ctx, "hello", 0)
				if err != nil {
					return err
				}
				return rc.Close()
			},
			method: "GET", path: "/v1/functions/hello/code",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, tt.answer)
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			r := <-reqs
			if r.method != tt.method || r.path != tt.path || r.rawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.method, r.path, r.rawQuery, tt.method, tt.path, tt.query)
			}
			if got := r.header.Get("Authorization"); got != "Bearer tok" {
				t.Errorf("Authorization = %q, want %q", got, "Bearer tok")
			}
			if got := r.header.Get("If-Match"); got != tt.ifMatch {
				t.Errorf("If-Match = %q, want %q", got, tt.ifMatch)
			}
			if got := string(r.body); got != tt.body {
				t.Errorf("body = %s, want %s", got, tt.body)
			}
			if tt.body != "" {
				if got := r.header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", got)
				}
			}
		})
	}
}

func TestNoTokenNoHeader(t *testing.T) {
	reqs := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	if err := client.New(srv.URL, "", client.WithHTTPClient(srv.Client())).Health(context.Background()); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if got := (<-reqs).Get("Authorization"); got != "" {
		t.Errorf("Authorization = %q, want none", got)
	}
}

func TestAllFunctionsFollowsMarkers(t *testing.T) {
	c, reqs := fakeNode(t,
		answer{200, `{"functions":[{"name":"a"},{"name":"b"}],"next_marker":"b"}`},
		answer{200, `{"functions":[{"name":"c"}]}`},
	)
	fns, err := c.AllFunctions(context.Background())
	if err != nil {
		t.Fatalf("AllFunctions: %v", err)
	}
	var names []string
	for _, f := range fns {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, ","), "a,b,c"; got != want {
		t.Errorf("names = %s, want %s", got, want)
	}
	for _, want := range []string{"limit=1000", "limit=1000&marker=b"} {
		if got := (<-reqs).rawQuery; got != want {
			t.Errorf("query = %q, want %q", got, want)
		}
	}
}

func TestAllFunctionsStopsOnRepeatedMarker(t *testing.T) {
	c, _ := fakeNode(t, answer{200, `{"functions":[{"name":"a"}],"next_marker":"a"}`})
	if _, err := c.AllFunctions(context.Background()); err == nil {
		t.Fatal("AllFunctions of a node that repeats its marker: no error")
	}
}

func TestPublishCreated(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		want   bool
	}{
		{"new version", 201, true},
		{"unchanged", 200, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakeNode(t, answer{tt.status, `{"version":3,"function":{"name":"hello"}}`})
			v, created, err := c.PublishVersion(context.Background(), "hello", "", 0)
			if err != nil {
				t.Fatalf("PublishVersion: %v", err)
			}
			if v.Version != 3 || v.Function.Name != "hello" {
				t.Errorf("version = %+v, want version 3 of hello", v)
			}
			if created != tt.want {
				t.Errorf("created = %v, want %v", created, tt.want)
			}
		})
	}
}

func TestCreateFunctionMultipart(t *testing.T) {
	c, reqs := fakeNode(t, answer{201, `{"name":"hello","runtime":"nodejs","code_sha256":"abc","revision":1}`})
	code := append([]byte("PK\x03\x04"), bytes.Repeat([]byte("x"), 100_000)...)
	rt, handler, mem := "nodejs", "index.handler", 256
	cfg := apitype.Config{Name: "hello", Runtime: &rt, Handler: &handler, MemoryMB: &mem, Env: map[string]string{"A": "1"}}
	var lastSent, lastTotal int64
	f, err := c.CreateFunction(context.Background(), cfg, bytes.NewReader(code), int64(len(code)), func(sent, total int64) {
		lastSent, lastTotal = sent, total
	})
	if err != nil {
		t.Fatalf("CreateFunction: %v", err)
	}
	if f.Name != "hello" || f.Revision != 1 {
		t.Errorf("function = %+v, want hello at revision 1", f)
	}
	if lastSent != int64(len(code)) || lastTotal != int64(len(code)) {
		t.Errorf("last progress = %d/%d, want %d/%d", lastSent, lastTotal, len(code), len(code))
	}

	r := <-reqs
	if r.method != "POST" || r.path != "/v1/functions" {
		t.Errorf("request = %s %s, want POST /v1/functions", r.method, r.path)
	}
	if r.contentLength != int64(len(r.body)) {
		t.Errorf("Content-Length = %d, body is %d bytes", r.contentLength, len(r.body))
	}
	mediaType, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		t.Fatalf("Content-Type = %q (%v), want multipart/form-data", r.header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])

	p, err := mr.NextPart()
	if err != nil {
		t.Fatalf("first part: %v", err)
	}
	if p.FormName() != "config" || p.Header.Get("Content-Type") != "application/json" {
		t.Errorf("first part = %q (%s), want config (application/json)", p.FormName(), p.Header.Get("Content-Type"))
	}
	var gotCfg map[string]any
	if err := json.NewDecoder(p).Decode(&gotCfg); err != nil {
		t.Fatalf("decoding the config part: %v", err)
	}
	gotJSON, err := json.Marshal(gotCfg)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"env":{"A":"1"},"handler":"index.handler","memory_mb":256,"name":"hello","runtime":"nodejs"}`
	if string(gotJSON) != wantJSON {
		t.Errorf("config = %s, want %s", gotJSON, wantJSON)
	}

	p, err = mr.NextPart()
	if err != nil {
		t.Fatalf("second part: %v", err)
	}
	if p.FormName() != "code" || p.FileName() == "" || p.Header.Get("Content-Type") != "application/zip" {
		t.Errorf("second part = %q file %q (%s), want code, a file name, application/zip", p.FormName(), p.FileName(), p.Header.Get("Content-Type"))
	}
	gotCode, err := io.ReadAll(p)
	if err != nil {
		t.Fatalf("reading the code part: %v", err)
	}
	if !bytes.Equal(gotCode, code) {
		t.Errorf("code part is %d bytes, want the %d sent", len(gotCode), len(code))
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after the code part: %v, want io.EOF", err)
	}
}

func TestUpdateCode(t *testing.T) {
	tests := []struct {
		name     string
		code     []byte
		size     int64
		wantType string
		wantLen  int64
	}{
		{"zip", []byte("PK\x03\x04rest"), 8, "application/zip", 8},
		{"tar.gz", []byte("\x1f\x8b\x08rest"), 7, "application/gzip", 7},
		{"unknown size", []byte("PK\x03\x04rest"), -1, "application/zip", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakeNode(t, answer{200, `{"name":"hello","revision":9}`})
			// A reader that is not a *bytes.Reader, so net/http cannot
			// learn its length on its own.
			code := io.MultiReader(bytes.NewReader(tt.code))
			if _, err := c.UpdateCode(context.Background(), "hello", code, tt.size, 8, nil); err != nil {
				t.Fatalf("UpdateCode: %v", err)
			}
			r := <-reqs
			if r.method != "PUT" || r.path != "/v1/functions/hello/code" {
				t.Errorf("request = %s %s, want PUT /v1/functions/hello/code", r.method, r.path)
			}
			if got := r.header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := r.header.Get("If-Match"); got != `"8"` {
				t.Errorf("If-Match = %q, want %q", got, `"8"`)
			}
			if r.contentLength != tt.wantLen {
				t.Errorf("Content-Length = %d, want %d", r.contentLength, tt.wantLen)
			}
			if !bytes.Equal(r.body, tt.code) {
				t.Errorf("body = %q, want %q", r.body, tt.code)
			}
		})
	}
}

func TestContextCancels(t *testing.T) {
	c, _ := fakeNode(t, answer{200, `{}`})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetFunction(ctx, "hello"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetFunction with a cancelled context: %v, want context.Canceled", err)
	}
}
