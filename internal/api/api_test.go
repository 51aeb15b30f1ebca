package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/internal/server"
)

// startNode starts a real node on 127.0.0.1:0 with a temp data dir.
func startNode(t *testing.T) *server.Node {
	t.Helper()
	n, err := server.Start(context.Background(), server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type apiClient struct {
	t     *testing.T
	base  string
	token string
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// errType is the error's type: "type" in the control API, "__type" where
// the node speaks Lambda's.
func (r resp) errType() string {
	var e struct {
		Type       string
		LambdaType string `json:"__type"`
	}
	json.Unmarshal(r.body, &e) //nolint:errcheck // a non-JSON body has no type
	if e.Type == "" {
		return e.LambdaType
	}
	return e.Type
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (c apiClient) do(method, path, ctype string, body []byte, hdr ...string) resp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func (c apiClient) json(method, path string, v any, hdr ...string) resp {
	c.t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	return c.do(method, path, "application/json", body, hdr...)
}

// create posts the multipart create call; config is raw JSON.
func (c apiClient) create(config string, code []byte) resp {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if config != "" {
		w, _ := mw.CreateFormField("config")
		io.WriteString(w, config) //nolint:errcheck // bytes.Buffer
	}
	if code != nil {
		w, _ := mw.CreateFormFile("code", "code.zip")
		w.Write(code) //nolint:errcheck // bytes.Buffer
	}
	mw.Close()
	return c.do("POST", "/v1/functions", mw.FormDataContentType(), buf.Bytes())
}

func newClient(t *testing.T, n *server.Node) apiClient {
	return apiClient{t: t, base: n.URL(), token: n.AdminToken()}
}

func mustStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

const helloConfig = `{"name":"hello","runtime":"nodejs","handler":"index.handler"}`

var helloCode = map[string]string{"index.js": "exports.handler = async () => 'hi'\n"}

func TestFunctionLifecycle(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	code := zipOf(t, helloCode)

	r := c.create(helloConfig, code)
	mustStatus(t, r, http.StatusCreated)
	var f struct {
		Name, Runtime, Handler, URLAuth string
		MemoryMB                        int    `json:"memory_mb"`
		Timeout                         int    `json:"timeout"`
		CodeSHA                         string `json:"code_sha256"`
		Revision                        uint64 `json:"revision"`
		Concurrency                     *int   `json:"concurrency"`
		Env                             map[string]string
	}
	r.decode(t, &f)
	if f.MemoryMB != 128 || f.Timeout != 3 || f.Runtime != "nodejs" || len(f.CodeSHA) != 64 || f.Revision == 0 {
		t.Fatalf("created function has wrong defaults: %+v", f)
	}
	if got, want := r.header.Get("ETag"), fmt.Sprintf("%q", fmt.Sprint(f.Revision)); got != want {
		t.Errorf("ETag %s, want %s", got, want)
	}

	mustStatus(t, c.json("GET", "/v1/functions/hello", nil), http.StatusOK)

	r = c.json("PATCH", "/v1/functions/hello", map[string]any{"memory_mb": 256, "env": map[string]string{"GREETING": "hi"}, "concurrency": 5},
		"If-Match", fmt.Sprint(f.Revision))
	mustStatus(t, r, http.StatusOK)
	oldRev := f.Revision
	r.decode(t, &f)
	if f.MemoryMB != 256 || f.Env["GREETING"] != "hi" || f.Concurrency == nil || *f.Concurrency != 5 || f.Revision == oldRev {
		t.Fatalf("update did not apply: %+v", f)
	}

	// Same code again is stored once: the sha does not change.
	sha := f.CodeSHA
	r = c.do("PUT", "/v1/functions/hello/code", "application/zip", code)
	mustStatus(t, r, http.StatusOK)
	r.decode(t, &f)
	if f.CodeSHA != sha {
		t.Errorf("same code, new sha %s != %s", f.CodeSHA, sha)
	}
	code2 := zipOf(t, map[string]string{"index.js": "exports.handler = async () => 'v2'\n"})
	r = c.do("PUT", "/v1/functions/hello/code", "application/zip", code2)
	mustStatus(t, r, http.StatusOK)
	r.decode(t, &f)
	if f.CodeSHA == sha {
		t.Errorf("new code kept the old sha")
	}
	r = c.do("GET", "/v1/functions/hello/code", "", nil)
	mustStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, code2) {
		t.Errorf("downloaded code differs from the upload")
	}

	// Versions.
	r = c.json("POST", "/v1/functions/hello/versions", map[string]string{"description": "first"})
	mustStatus(t, r, http.StatusCreated)
	var v struct {
		Version     int
		Description string
		Function    struct {
			CodeSHA string `json:"code_sha256"`
		}
	}
	r.decode(t, &v)
	if v.Version != 1 || v.Description != "first" || v.Function.CodeSHA != f.CodeSHA {
		t.Fatalf("version 1: %+v", v)
	}
	// Unchanged $LATEST publishes nothing new.
	r = c.json("POST", "/v1/functions/hello/versions", nil)
	mustStatus(t, r, http.StatusOK)
	r.decode(t, &v)
	if v.Version != 1 {
		t.Errorf("republish of unchanged code made version %d", v.Version)
	}
	mustStatus(t, c.json("PATCH", "/v1/functions/hello", map[string]any{"timeout": 10}), http.StatusOK)
	r = c.json("POST", "/v1/functions/hello/versions", nil)
	mustStatus(t, r, http.StatusCreated)
	r.decode(t, &v)
	if v.Version != 2 {
		t.Errorf("second publish made version %d", v.Version)
	}
	r = c.json("GET", "/v1/functions/hello/versions", nil)
	mustStatus(t, r, http.StatusOK)
	var vl struct{ Versions []struct{ Version int } }
	r.decode(t, &vl)
	if len(vl.Versions) != 2 || vl.Versions[0].Version != 1 || vl.Versions[1].Version != 2 {
		t.Errorf("versions: %s", r.body)
	}
	mustStatus(t, c.json("GET", "/v1/functions/hello/versions/2", nil), http.StatusOK)

	// Aliases.
	r = c.json("PUT", "/v1/functions/hello/aliases/live", map[string]any{"version": 1, "additional_version": 2, "additional_weight": 0.25})
	mustStatus(t, r, http.StatusCreated)
	var al struct {
		Version           int
		AdditionalVersion int     `json:"additional_version"`
		AdditionalWeight  float64 `json:"additional_weight"`
		Revision          uint64
	}
	r.decode(t, &al)
	if al.Version != 1 || al.AdditionalVersion != 2 || al.AdditionalWeight != 0.25 {
		t.Errorf("alias: %s", r.body)
	}
	mustStatus(t, c.json("PUT", "/v1/functions/hello/aliases/live", map[string]any{"version": 2}, "If-Match", fmt.Sprint(al.Revision)), http.StatusOK)
	r = c.json("GET", "/v1/functions/hello/aliases/live", nil)
	mustStatus(t, r, http.StatusOK)
	al.AdditionalVersion = -1
	r.decode(t, &al)
	if al.Version != 2 || al.AdditionalVersion != -1 {
		t.Errorf("alias after replace: %s", r.body)
	}
	mustStatus(t, c.json("PUT", "/v1/functions/hello/aliases/beta", map[string]any{"version": 1}), http.StatusCreated)
	r = c.json("GET", "/v1/functions/hello/aliases", nil)
	var als struct{ Aliases []struct{ Name string } }
	r.decode(t, &als)
	if len(als.Aliases) != 2 || als.Aliases[0].Name != "beta" || als.Aliases[1].Name != "live" {
		t.Errorf("aliases: %s", r.body)
	}
	mustStatus(t, c.json("DELETE", "/v1/functions/hello/aliases/beta", nil), http.StatusNoContent)
	mustStatus(t, c.json("GET", "/v1/functions/hello/aliases/beta", nil), http.StatusNotFound)

	// Delete takes everything with it, and the name can be used afresh.
	mustStatus(t, c.json("DELETE", "/v1/functions/hello", nil), http.StatusNoContent)
	for _, p := range []string{"/v1/functions/hello", "/v1/functions/hello/versions/1", "/v1/functions/hello/aliases/live"} {
		if r := c.json("GET", p, nil); r.status != http.StatusNotFound || r.errType() != "ResourceNotFoundException" {
			t.Errorf("GET %s after delete: %d %s", p, r.status, r.body)
		}
	}
	mustStatus(t, c.create(helloConfig, code), http.StatusCreated)
	r = c.json("POST", "/v1/functions/hello/versions", nil)
	r.decode(t, &v)
	if v.Version != 1 {
		t.Errorf("a re-created function starts at version %d, want 1", v.Version)
	}
}

func TestCodeDeletedWhenUnused(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	shared := zipOf(t, helloCode)
	mustStatus(t, c.create(helloConfig, shared), http.StatusCreated)
	mustStatus(t, c.create(`{"name":"other","runtime":"nodejs","handler":"index.handler"}`, shared), http.StatusCreated)
	mustStatus(t, c.json("DELETE", "/v1/functions/hello", nil), http.StatusNoContent)
	// other still has its code.
	r := c.do("GET", "/v1/functions/other/code", "", nil)
	mustStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.body, shared) {
		t.Fatal("shared code lost when one user was deleted")
	}
	var f struct {
		CodeSHA string `json:"code_sha256"`
	}
	c.json("GET", "/v1/functions/other", nil).decode(t, &f)
	mustStatus(t, c.json("DELETE", "/v1/functions/other", nil), http.StatusNoContent)
	rc, err := n.Registry().Code(context.Background(), f.CodeSHA)
	if err == nil {
		rc.Close()
		t.Fatal("code nobody uses was kept")
	}
}

func TestList(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	code := zipOf(t, helloCode)
	for i := range 5 {
		mustStatus(t, c.create(fmt.Sprintf(`{"name":"f%d","runtime":"nodejs","handler":"index.handler"}`, i), code), http.StatusCreated)
	}
	var names []string
	marker := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := c.json("GET", "/v1/functions?limit=2&marker="+marker, nil)
		mustStatus(t, r, http.StatusOK)
		var page struct {
			Functions  []struct{ Name string }
			NextMarker string `json:"next_marker"`
		}
		r.decode(t, &page)
		for _, f := range page.Functions {
			names = append(names, f.Name)
		}
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	if got, want := strings.Join(names, ","), "f0,f1,f2,f3,f4"; got != want {
		t.Errorf("listed %s, want %s", got, want)
	}
	mustStatus(t, c.json("GET", "/v1/functions?limit=0", nil), http.StatusBadRequest)
}

func TestAuth(t *testing.T) {
	n := startNode(t)
	for _, tc := range []struct{ name, token string }{{"none", ""}, {"wrong", "nope"}, {"prefix", n.AdminToken()[:10]}} {
		t.Run(tc.name, func(t *testing.T) {
			c := apiClient{t: t, base: n.URL(), token: tc.token}
			r := c.create(helloConfig, zipOf(t, helloCode))
			if r.status != http.StatusUnauthorized || r.errType() != "UnauthorizedException" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if r := c.json("GET", "/v1/functions", nil); r.status != http.StatusUnauthorized {
				t.Fatalf("list got %d", r.status)
			}
		})
	}
	// Nothing was created.
	r := newClient(t, n).json("GET", "/v1/functions/hello", nil)
	mustStatus(t, r, http.StatusNotFound)
	if r := (apiClient{t: t, base: n.URL()}).do("GET", "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("healthz without token: %d", r.status)
	}
}
