// Package client is the Go client of a Wisp node's control API (/v1, see
// docs/api.md). The wisp CLI is built on it; so can anything else that
// deploys or inspects functions. What it sends and returns are the wire
// types of package apitype; the client and apitype import nothing but the
// standard library.
package client

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/apitype"
)

// Error is an error the API answered with.
type Error struct {
	Status int // the HTTP status
	// Type is the stable error type (apitype.Type…); empty when the body
	// was not an API error.
	Type    string
	Message string // the API's message, or the status text
	// Reason says why a 429 of the Lambda API refused a call: a throttle
	// (Lambda's reasons) or ReasonSpendCap.
	Reason string
}

func (e *Error) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	}
	return e.Type + ": " + e.Message
}

// IsNotFound reports whether err is the API saying that a function, version
// or alias does not exist. A bare 404 (say, from a proxy or a wrong URL) is
// not.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Type == apitype.TypeResourceNotFound
}

// Client calls one node's control API. It is safe for concurrent use.
type Client struct {
	baseURL string // without a trailing slash
	token   string // sent as a bearer token unless empty
	hc      *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of
// http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// New returns a client of the node at baseURL (such as
// "http://127.0.0.1:8080") that authenticates with token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), token: token, hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// request is one API call, built by the methods below and sent by send.
type request struct {
	method     string
	path       string // escaped, from the root of the node
	query      url.Values
	ifRevision uint64      // sent as If-Match unless 0
	header     http.Header // more headers, if any

	json any // the JSON body, if any

	// A raw body, when json is nil: its length (-1 when unknown) and type.
	body        io.Reader
	size        int64
	contentType string
}

// send makes the call r. It returns the response when its status is 2xx (the
// caller closes the body) and an *Error otherwise.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	body, size, contentType := r.body, r.size, r.contentType
	if r.json != nil {
		b, err := json.Marshal(r.json)
		if err != nil {
			return nil, fmt.Errorf("client: encoding %s %s: %w", r.method, r.path, err)
		}
		body, size, contentType = bytes.NewReader(b), int64(len(b)), "application/json"
	}
	u := c.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if r.ifRevision != 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatUint(r.ifRevision, 10)))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err // a *url.Error naming the method and URL
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// call sends r and decodes the JSON answer into out (when out is not nil).
// It returns the response's status.
func (c *Client) call(ctx context.Context, r request, out any) (int, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out == nil {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return resp.StatusCode, fmt.Errorf("client: reading %s %s: %w", r.method, r.path, err)
		}
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("client: decoding the answer to %s %s: %w", r.method, r.path, err)
	}
	return resp.StatusCode, nil
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// decodeError turns a non-2xx answer into an *Error: the API's JSON error,
// or the status text when the body is not one.
func decodeError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	// The body is the control API's or the Lambda API's, which name the
	// type differently.
	var (
		v1     apitype.Error
		lambda apitype.LambdaError
	)
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err == nil && json.Unmarshal(b, &v1) == nil && json.Unmarshal(b, &lambda) == nil {
		e.Type, e.Message, e.Reason = cmp.Or(v1.Type, lambda.Type), v1.Message, lambda.Reason
	}
	// The Lambda API names the type in a header, as AWS does.
	if t := resp.Header.Get("X-Amzn-ErrorType"); t != "" {
		e.Type = t
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if e.Message == "" {
		e.Message = "status " + strconv.Itoa(resp.StatusCode)
	}
	return e
}

func functionPath(name string) string {
	return "/v1/functions/" + url.PathEscape(name)
}

func aliasPath(fn, alias string) string {
	return functionPath(fn) + "/aliases/" + url.PathEscape(alias)
}

// Health calls GET /healthz, which answers without a token once the node
// serves.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
	return err
}

// ListFunctions returns up to limit functions (0: the node's default) whose
// names sort after marker, and the marker of the next page ("" on the last).
func (c *Client) ListFunctions(ctx context.Context, limit int, marker string) ([]apitype.Function, string, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if marker != "" {
		q.Set("marker", marker)
	}
	var out apitype.FunctionList
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/functions", query: q}, &out); err != nil {
		return nil, "", err
	}
	return out.Functions, out.NextMarker, nil
}

// AllFunctions returns every function, by name, following the pages.
func (c *Client) AllFunctions(ctx context.Context) ([]apitype.Function, error) {
	all := []apitype.Function{}
	marker := ""
	for {
		fns, next, err := c.ListFunctions(ctx, 1000, marker)
		if err != nil {
			return nil, err
		}
		all = append(all, fns...)
		if next == "" {
			return all, nil
		}
		if next == marker {
			return nil, fmt.Errorf("client: listing functions: the node sent next_marker %q twice", next)
		}
		marker = next
	}
}

// CreateFunction creates the function cfg.Name with the code archive read
// from code (a zip or a tar.gz of codeSize bytes; -1 if unknown). The code is
// streamed, not buffered. progress, if not nil, is called as the code is sent
// (total is codeSize), possibly from another goroutine.
func (c *Client) CreateFunction(ctx context.Context, cfg apitype.Config, code io.Reader, codeSize int64, progress func(sent, total int64)) (apitype.Function, error) {
	body, size, contentType, err := multipartBody(cfg, code, codeSize, progress)
	if err != nil {
		return apitype.Function{}, err
	}
	var f apitype.Function
	_, err = c.call(ctx, request{
		method: http.MethodPost, path: "/v1/functions",
		body: body, size: size, contentType: contentType,
	}, &f)
	return f, err
}

// GetFunction returns the function's $LATEST.
func (c *Client) GetFunction(ctx context.Context, name string) (apitype.Function, error) {
	var f apitype.Function
	_, err := c.call(ctx, request{method: http.MethodGet, path: functionPath(name)}, &f)
	return f, err
}

// UpdateConfig changes the fields set in cfg (cfg.Name is ignored). A
// non-zero ifRevision makes the update happen only if the function is still
// at that revision.
func (c *Client) UpdateConfig(ctx context.Context, name string, cfg apitype.Config, ifRevision uint64) (apitype.Function, error) {
	cfg.Name = ""
	var f apitype.Function
	_, err := c.call(ctx, request{method: http.MethodPatch, path: functionPath(name), json: cfg, ifRevision: ifRevision}, &f)
	return f, err
}

// UpdateCode replaces the function's code with the archive read from code,
// as CreateFunction sends it. ifRevision is as for UpdateConfig.
func (c *Client) UpdateCode(ctx context.Context, name string, code io.Reader, codeSize int64, ifRevision uint64, progress func(sent, total int64)) (apitype.Function, error) {
	code, contentType := sniffArchive(code)
	var f apitype.Function
	_, err := c.call(ctx, request{
		method: http.MethodPut, path: functionPath(name) + "/code", ifRevision: ifRevision,
		body: countingReader(code, codeSize, progress), size: codeSize, contentType: contentType,
	}, &f)
	return f, err
}

// DownloadCode returns the code archive of a version of the function
// (0: $LATEST). The caller closes it.
func (c *Client) DownloadCode(ctx context.Context, name string, version int) (io.ReadCloser, error) {
	var q url.Values
	if version != 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: functionPath(name) + "/code", query: q})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// DeleteFunction deletes the function with its versions and aliases.
// ifRevision is as for UpdateConfig.
func (c *Client) DeleteFunction(ctx context.Context, name string, ifRevision uint64) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: functionPath(name), ifRevision: ifRevision}, nil)
	return err
}

// PublishVersion publishes $LATEST as the function's next version. When
// $LATEST has not changed since the last version, it returns that version
// and created is false. A non-zero ifRevision names the revision of $LATEST
// meant to be published.
func (c *Client) PublishVersion(ctx context.Context, name, description string, ifRevision uint64) (v apitype.Version, created bool, err error) {
	body := struct {
		Description string `json:"description,omitempty"`
	}{description}
	status, err := c.call(ctx, request{method: http.MethodPost, path: functionPath(name) + "/versions", json: body, ifRevision: ifRevision}, &v)
	return v, status == http.StatusCreated, err
}

// ListVersions returns the function's versions, oldest first.
func (c *Client) ListVersions(ctx context.Context, name string) ([]apitype.Version, error) {
	var out struct {
		Versions []apitype.Version `json:"versions"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: functionPath(name) + "/versions"}, &out); err != nil {
		return nil, err
	}
	if out.Versions == nil {
		out.Versions = []apitype.Version{}
	}
	return out.Versions, nil
}

// GetVersion returns version n of the function.
func (c *Client) GetVersion(ctx context.Context, name string, n int) (apitype.Version, error) {
	var v apitype.Version
	_, err := c.call(ctx, request{method: http.MethodGet, path: functionPath(name) + "/versions/" + strconv.Itoa(n)}, &v)
	return v, err
}

// PutAlias creates or replaces the alias of function fn. Only a's Version,
// AdditionalVersion, AdditionalWeight and Description are sent. A non-zero
// ifRevision makes the change happen only if the alias is at that revision.
func (c *Client) PutAlias(ctx context.Context, fn, alias string, a apitype.Alias, ifRevision uint64) (apitype.Alias, error) {
	body := struct {
		Version           int     `json:"version"`
		AdditionalVersion int     `json:"additional_version,omitempty"`
		AdditionalWeight  float64 `json:"additional_weight,omitempty"`
		Description       string  `json:"description,omitempty"`
	}{a.Version, a.AdditionalVersion, a.AdditionalWeight, a.Description}
	var out apitype.Alias
	_, err := c.call(ctx, request{method: http.MethodPut, path: aliasPath(fn, alias), json: body, ifRevision: ifRevision}, &out)
	return out, err
}

// GetAlias returns the alias of function fn.
func (c *Client) GetAlias(ctx context.Context, fn, alias string) (apitype.Alias, error) {
	var a apitype.Alias
	_, err := c.call(ctx, request{method: http.MethodGet, path: aliasPath(fn, alias)}, &a)
	return a, err
}

// ListAliases returns the aliases of function fn by name.
func (c *Client) ListAliases(ctx context.Context, fn string) ([]apitype.Alias, error) {
	var out struct {
		Aliases []apitype.Alias `json:"aliases"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: functionPath(fn) + "/aliases"}, &out); err != nil {
		return nil, err
	}
	if out.Aliases == nil {
		out.Aliases = []apitype.Alias{}
	}
	return out.Aliases, nil
}

// DeleteAlias deletes the alias of function fn.
func (c *Client) DeleteAlias(ctx context.Context, fn, alias string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: aliasPath(fn, alias)}, nil)
	return err
}

// sniffArchive tells a zip from a gzip by its first bytes; the returned
// reader still yields them.
func sniffArchive(r io.Reader) (io.Reader, string) {
	br := bufio.NewReader(r)
	// A failed Peek is reported again by the first Read of br.
	b, err := br.Peek(2)
	switch {
	case err != nil:
		return br, "application/octet-stream"
	case b[0] == 'P' && b[1] == 'K':
		return br, "application/zip"
	case b[0] == 0x1f && b[1] == 0x8b:
		return br, "application/gzip"
	}
	return br, "application/octet-stream"
}

// multipartBody is POST /v1/functions's body: a "config" part and a "code"
// part. Only the small parts around the code are built in memory; the code
// is streamed, so the body's length is known without buffering it.
func multipartBody(cfg apitype.Config, code io.Reader, codeSize int64, progress func(sent, total int64)) (body io.Reader, size int64, contentType string, err error) {
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, 0, "", fmt.Errorf("client: encoding the config: %w", err)
	}
	code, codeType := sniffArchive(code)
	filename := "code.zip"
	if codeType == "application/gzip" {
		filename = "code.tar.gz"
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part := func(disposition, contentType string) (io.Writer, error) {
		return mw.CreatePart(textproto.MIMEHeader{
			"Content-Disposition": {disposition},
			"Content-Type":        {contentType},
		})
	}
	w, err := part(`form-data; name="config"`, "application/json")
	if err == nil {
		_, err = w.Write(cfgJSON)
	}
	if err == nil {
		// A filename makes servers take the code as a file, not a form value.
		_, err = part(`form-data; name="code"; filename="`+filename+`"`, codeType)
	}
	if err != nil {
		return nil, 0, "", fmt.Errorf("client: building the upload: %w", err)
	}
	head := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, 0, "", fmt.Errorf("client: building the upload: %w", err)
	}
	tail := buf.Bytes()
	size = -1
	if codeSize >= 0 {
		size = int64(len(head)) + codeSize + int64(len(tail))
	}
	body = io.MultiReader(bytes.NewReader(head), countingReader(code, codeSize, progress), bytes.NewReader(tail))
	return body, size, mw.FormDataContentType(), nil
}

// countingReader reports the bytes read from r to progress, if not nil.
func countingReader(r io.Reader, total int64, progress func(sent, total int64)) io.Reader {
	if progress == nil {
		return r
	}
	return &counter{r: r, total: total, progress: progress}
}

type counter struct {
	r        io.Reader
	sent     int64
	total    int64
	progress func(sent, total int64)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.sent += int64(n)
		c.progress(c.sent, c.total)
	}
	return n, err
}

// Metrics returns the node's metrics (GET /metrics) in Prometheus' text
// format; the caller closes it. They are the node's own, since it started:
// in a cluster, each node has its own.
func (c *Client) Metrics(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/metrics"})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
