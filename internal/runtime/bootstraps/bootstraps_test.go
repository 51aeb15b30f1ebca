package bootstraps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor bounds every wait on a bootstrap, so a broken one fails its test
// in seconds instead of hanging the run.
const waitFor = 10 * time.Second

func TestCommand(t *testing.T) {
	tests := []struct {
		runtime string
		file    string
		want    []byte
	}{
		{runtime: "nodejs", file: "bootstrap.cjs", want: nodeBootstrap},
		{runtime: "python", file: "bootstrap.py", want: pythonBootstrap},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			dir := t.TempDir()
			for range 2 { // the second call finds the file already there
				argv, err := Command(tt.runtime, "interp", dir)
				if err != nil {
					t.Fatalf("Command: %v", err)
				}
				wantArgv := []string{"interp", filepath.Join(dir, tt.file)}
				if !slices.Equal(argv, wantArgv) {
					t.Errorf("argv = %q, want %q", argv, wantArgv)
				}
				got, err := os.ReadFile(argv[1])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Errorf("%s differs from the embedded bootstrap", argv[1])
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("dir holds %d entries, want only %s", len(entries), tt.file)
			}
		})
	}

	t.Run("unknown runtime", func(t *testing.T) {
		_, err := Command("ruby", "ruby", t.TempDir())
		if !errors.Is(err, ErrUnknownRuntime) {
			t.Errorf("err = %v, want ErrUnknownRuntime", err)
		}
	})
}

// post is what a bootstrap sent the Runtime API.
type post struct {
	Kind      string // "response", "error" or "init"
	ID        string // request id; empty for "init"
	Body      []byte
	ErrorType string // the Lambda-Runtime-Function-Error-Type header
}

// invocation is an event waiting for a bootstrap's /next.
type invocation struct {
	ID       string
	Event    string
	Deadline time.Time
	Header   http.Header // extra headers: client context, identity, trace
}

// fakeRuntimeAPI is the Runtime API side of one instance: it hands queued
// invocations to /next and records what the bootstrap posts.
type fakeRuntimeAPI struct {
	srv     *httptest.Server
	pending chan invocation
	posts   chan post
	stop    chan struct{}
	conns   atomic.Int64 // connections the bootstrap opened
	seq     atomic.Int64 // numbers request ids

	mu         sync.Mutex
	dispatched map[string]time.Time // guarded by mu: when /next handed out each id
}

func newFakeRuntimeAPI(t *testing.T) *fakeRuntimeAPI {
	api := &fakeRuntimeAPI{
		pending:    make(chan invocation, 16),
		posts:      make(chan post, 16),
		stop:       make(chan struct{}),
		dispatched: make(map[string]time.Time),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", api.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		api.record(w, r, "response", r.PathValue("id"))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		api.record(w, r, "error", r.PathValue("id"))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		api.record(w, r, "init", "")
	})
	api.srv = httptest.NewUnstartedServer(mux)
	api.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			api.conns.Add(1)
		}
	}
	api.srv.Start()
	t.Cleanup(func() {
		close(api.stop)
		api.srv.Close()
	})
	return api
}

func (api *fakeRuntimeAPI) next(w http.ResponseWriter, r *http.Request) {
	var inv invocation
	select {
	case inv = <-api.pending:
	case <-r.Context().Done():
		return
	case <-api.stop:
		return
	}
	api.mu.Lock()
	api.dispatched[inv.ID] = time.Now()
	api.mu.Unlock()
	h := w.Header()
	for k, v := range inv.Header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.ID)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.Deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:fn-test")
	if _, err := io.WriteString(w, inv.Event); err != nil {
		return // the bootstrap went away; its test reports that
	}
}

func (api *fakeRuntimeAPI) record(w http.ResponseWriter, r *http.Request, kind, id string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	api.posts <- post{
		Kind:      kind,
		ID:        id,
		Body:      body,
		ErrorType: r.Header.Get("Lambda-Runtime-Function-Error-Type"),
	}
	w.WriteHeader(http.StatusAccepted)
	if _, err := io.WriteString(w, `{"status":"OK"}`); err != nil {
		return
	}
}

func (api *fakeRuntimeAPI) dispatchedAt(id string) time.Time {
	api.mu.Lock()
	defer api.mu.Unlock()
	return api.dispatched[id]
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one bootstrap process serving one fake Runtime API.
type instance struct {
	t      *testing.T
	api    *fakeRuntimeAPI
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{}
	state  *os.ProcessState // set before exited is closed
}

// interpreter finds the interpreter a runtime needs, or skips the test.
func interpreter(t *testing.T, runtime string) string {
	t.Helper()
	name := map[string]string{"nodejs": "node", "python": "python3"}[runtime]
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("skipping %s bootstrap test: %s not found on PATH: %v", runtime, name, err)
	}
	return path
}

// writeFiles lays out a function's code in a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// start runs the runtime's bootstrap on the code in files with handler.
func start(t *testing.T, runtime string, files map[string]string, handler string) *instance {
	t.Helper()
	return startIn(t, runtime, writeFiles(t, files), t.TempDir(), handler)
}

// startIn runs the runtime's bootstrap, written to bootstrapDir, on the code
// in taskRoot with handler.
func startIn(t *testing.T, runtime, taskRoot, bootstrapDir, handler string) *instance {
	t.Helper()
	interp := interpreter(t, runtime)
	api := newFakeRuntimeAPI(t)
	argv, err := Command(runtime, interp, bootstrapDir)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = taskRoot
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(api.srv.URL, "http://"),
		"_HANDLER=" + handler,
		"LAMBDA_TASK_ROOT=" + taskRoot,
		"AWS_LAMBDA_FUNCTION_NAME=fn-test",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/fn-test",
		"AWS_LAMBDA_LOG_STREAM_NAME=2024/01/01/[$LATEST]abc",
		"AWS_REGION=us-east-1",
		"TZ=:UTC",
	}
	in := &instance{
		t:      t,
		api:    api,
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		exited: make(chan struct{}),
	}
	cmd.Stdout = in.stdout
	cmd.Stderr = in.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", argv, err)
	}
	go func() {
		// Wait reports a non-zero exit as an error; the state says it all.
		if err := cmd.Wait(); err != nil && cmd.ProcessState == nil {
			t.Errorf("wait %s: %v", argv, err)
		}
		in.state = cmd.ProcessState
		close(in.exited)
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill bootstrap: %v", err)
		}
		<-in.exited
		if t.Failed() {
			t.Logf("bootstrap stdout:\n%s\nbootstrap stderr:\n%s", in.stdout, in.stderr)
		}
	})
	return in
}

// invoke queues event and waits for the bootstrap's answer to it (or for an
// init error, which is all a bootstrap that failed to load sends).
func (in *instance) invoke(event string, header http.Header) (post, string) {
	in.t.Helper()
	id := fmt.Sprintf("8f5c1a9e-0000-4000-8000-%012d", in.api.seq.Add(1))
	in.api.pending <- invocation{
		ID:       id,
		Event:    event,
		Deadline: time.Now().Add(5 * time.Second),
		Header:   header,
	}
	return in.waitPost(), id
}

func (in *instance) waitPost() post {
	in.t.Helper()
	select {
	case p := <-in.api.posts:
		return p
	case <-in.exited:
		// It may have posted just before exiting.
		select {
		case p := <-in.api.posts:
			return p
		default:
		}
		in.t.Fatalf("bootstrap exited (%v) without posting", in.state)
	case <-time.After(waitFor):
		in.t.Fatalf("no post from the bootstrap within %v", waitFor)
	}
	return post{}
}

// waitExit waits for the bootstrap to end and returns its exit code.
func (in *instance) waitExit() int {
	in.t.Helper()
	select {
	case <-in.exited:
		return in.state.ExitCode()
	case <-time.After(waitFor):
		in.t.Fatalf("bootstrap still running after %v", waitFor)
	}
	return 0
}

// waitStdout waits for the bootstrap's stdout to contain substr: the pipe is
// copied to the buffer concurrently with the posts.
func (in *instance) waitStdout(substr string) string {
	in.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		out := in.stdout.String()
		if strings.Contains(out, substr) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errorBody is the body of an /error or /init/error post.
type errorBody struct {
	ErrorType    string   `json:"errorType"`
	ErrorMessage string   `json:"errorMessage"`
	StackTrace   []string `json:"stackTrace"`
}

func decodeError(t *testing.T, p post) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(p.Body, &e); err != nil {
		t.Fatalf("error body %q: %v", p.Body, err)
	}
	return e
}

// checkResponse checks that p is a successful response whose JSON body
// equals want's.
func checkResponse(t *testing.T, p post, id, want string) {
	t.Helper()
	if p.Kind != "response" || p.ID != id {
		t.Fatalf("got %s post for %q (%s), want response for %q", p.Kind, p.ID, p.Body, id)
	}
	var got, wantV any
	if err := json.Unmarshal(p.Body, &got); err != nil {
		t.Fatalf("response %q is not JSON: %v", p.Body, err)
	}
	if err := json.Unmarshal([]byte(want), &wantV); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(wantV)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("response = %s, want %s", gotJSON, wantJSON)
	}
}

// checkError checks that p is an /error post for id of errorType carrying
// message, with the type in the header too.
func checkError(t *testing.T, p post, id, errorType, message string) errorBody {
	t.Helper()
	if p.Kind != "error" || p.ID != id {
		t.Fatalf("got %s post for %q (%s), want error for %q", p.Kind, p.ID, p.Body, id)
	}
	e := decodeError(t, p)
	if e.ErrorType != errorType {
		t.Errorf("errorType = %q, want %q", e.ErrorType, errorType)
	}
	if p.ErrorType != errorType {
		t.Errorf("Lambda-Runtime-Function-Error-Type = %q, want %q", p.ErrorType, errorType)
	}
	if e.ErrorMessage != message {
		t.Errorf("errorMessage = %q, want %q", e.ErrorMessage, message)
	}
	return e
}

// contextEcho is what the context-echoing handlers answer.
type contextEcho struct {
	FunctionName    string          `json:"functionName"`
	FunctionVersion string          `json:"functionVersion"`
	Memory          json.RawMessage `json:"memory"`
	RequestID       string          `json:"requestId"`
	ARN             string          `json:"arn"`
	LogGroup        string          `json:"logGroup"`
	LogStream       string          `json:"logStream"`
	Remaining       int64           `json:"remaining"`
	Trace           string          `json:"trace"`
	ClientCustom    string          `json:"clientCustom"`
	IdentityID      string          `json:"identityId"`
	Event           json.RawMessage `json:"event"`
}

// checkContext checks an echoed context against the invocation sent.
func checkContext(t *testing.T, p post, id, wantMemory string) {
	t.Helper()
	if p.Kind != "response" || p.ID != id {
		t.Fatalf("got %s post for %q (%s), want response for %q", p.Kind, p.ID, p.Body, id)
	}
	var got contextEcho
	if err := json.Unmarshal(p.Body, &got); err != nil {
		t.Fatalf("response %q: %v", p.Body, err)
	}
	var event bytes.Buffer
	if err := json.Compact(&event, got.Event); err != nil {
		t.Fatalf("echoed event %q: %v", got.Event, err)
	}
	checks := []struct{ name, got, want string }{
		{"function name", got.FunctionName, "fn-test"},
		{"function version", got.FunctionVersion, "$LATEST"},
		{"memory", string(got.Memory), wantMemory},
		{"request id", got.RequestID, id},
		{"invoked function arn", got.ARN, "arn:aws:lambda:us-east-1:000000000000:function:fn-test"},
		{"log group", got.LogGroup, "/aws/lambda/fn-test"},
		{"log stream", got.LogStream, "2024/01/01/[$LATEST]abc"},
		{"_X_AMZN_TRACE_ID", got.Trace, "Root=1-5759e988-bd862e3fe1be46a994272793"},
		{"client context custom", got.ClientCustom, "yes"},
		{"cognito identity id", got.IdentityID, "us-east-1:identity"},
		{"event", event.String(), `{"k":"v"}`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	// The deadline is 5 s after the event was queued, which is before the
	// bootstrap picked it up.
	if got.Remaining <= 0 || got.Remaining > 5000 {
		t.Errorf("remaining time = %d ms, want in (0, 5000]", got.Remaining)
	}
}

func contextHeaders() http.Header {
	h := http.Header{}
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
	h.Set("Lambda-Runtime-Client-Context", `{"custom":{"flag":"yes"},"env":{},"client":{"app_title":"t"}}`)
	h.Set("Lambda-Runtime-Cognito-Identity", `{"cognitoIdentityId":"us-east-1:identity","cognitoIdentityPoolId":"us-east-1:pool"}`)
	return h
}

func TestNodeInvocations(t *testing.T) {
	interpreter(t, "nodejs")
	tests := []struct {
		name    string
		files   map[string]string
		handler string
		event   string
		want    string // JSON response
	}{
		{
			name:    "async handler",
			files:   map[string]string{"index.js": `exports.handler = async (event) => ({ got: event.x });`},
			handler: "index.handler",
			event:   `{"x":1}`,
			want:    `{"got":1}`,
		},
		{
			name: "promise-returning handler",
			files: map[string]string{"index.js": `exports.handler = function (event) {
				return new Promise((resolve) => setTimeout(() => resolve({ later: event.x }), 10));
			};`},
			handler: "index.handler",
			event:   `{"x":"p"}`,
			want:    `{"later":"p"}`,
		},
		{
			name: "callback handler",
			files: map[string]string{"index.js": `exports.handler = function (event, context, callback) {
				setTimeout(() => callback(null, { cb: event.x }), 10);
			};`},
			handler: "index.handler",
			event:   `{"x":true}`,
			want:    `{"cb":true}`,
		},
		{
			name: "legacy context.succeed",
			files: map[string]string{"index.js": `exports.handler = function (event, context) {
				setTimeout(() => context.succeed('legacy'), 10);
			};`},
			handler: "index.handler",
			event:   `{}`,
			want:    `"legacy"`,
		},
		{
			name:    "undefined result is null",
			files:   map[string]string{"index.js": `exports.handler = async () => undefined;`},
			handler: "index.handler",
			event:   `{}`,
			want:    `null`,
		},
		{
			// As AWS's Node.js runtimes: a handler that returns without a
			// promise and never calls back answers null once the loop empties.
			name:    "sync handler answers null like AWS",
			files:   map[string]string{"index.js": `exports.handler = (event) => ({ ignored: true });`},
			handler: "index.handler",
			event:   `{}`,
			want:    `null`,
		},
		{
			name:    "commonjs .cjs file",
			files:   map[string]string{"app.cjs": `module.exports.handler = async (e) => 'cjs:' + e.n;`},
			handler: "app.handler",
			event:   `{"n":7}`,
			want:    `"cjs:7"`,
		},
		{
			name:    "es module .mjs file",
			files:   map[string]string{"app.mjs": `export const handler = async (e) => ({ esm: e.n, meta: typeof import.meta.url });`},
			handler: "app.handler",
			event:   `{"n":8}`,
			want:    `{"esm":8,"meta":"string"}`,
		},
		{
			name: "es module .js under type module",
			files: map[string]string{
				"package.json": `{"type":"module"}`,
				"lib/app.js":   `import { sep } from 'node:path'; export async function handler(e) { return { sep, n: e.n }; }`,
			},
			handler: "lib/app.handler",
			event:   `{"n":9}`,
			want:    `{"sep":"/","n":9}`,
		},
		{
			name: "nested file and export",
			files: map[string]string{
				"src/lib/app.js": `exports.handlers = { v1: { main: async (e) => ({ nested: e.n }) } };`,
			},
			handler: "src/lib/app.handlers.v1.main",
			event:   `{"n":10}`,
			want:    `{"nested":10}`,
		},
		{
			name: "directory module with index.js",
			files: map[string]string{
				"api/index.js": `exports.handler = async () => 'dir';`,
			},
			handler: "api.handler",
			event:   `{}`,
			want:    `"dir"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "nodejs", tt.files, tt.handler)
			p, id := in.invoke(tt.event, nil)
			checkResponse(t, p, id, tt.want)
		})
	}
}

func TestNodeErrors(t *testing.T) {
	interpreter(t, "nodejs")
	tests := []struct {
		name      string
		code      string // index.js
		errorType string
		message   string
		stack0    string // first stackTrace line; "" for an empty trace
	}{
		{
			name:      "async throw",
			code:      `exports.handler = async () => { throw new TypeError('bad thing'); };`,
			errorType: "TypeError",
			message:   "bad thing",
			stack0:    "TypeError: bad thing",
		},
		{
			name:      "sync throw",
			code:      `exports.handler = (e, c, cb) => { throw new RangeError('out of range'); };`,
			errorType: "RangeError",
			message:   "out of range",
			stack0:    "RangeError: out of range",
		},
		{
			name:      "callback error",
			code:      `exports.handler = (e, c, cb) => { setTimeout(() => cb(new Error('cb failed')), 5); };`,
			errorType: "Error",
			message:   "cb failed",
			stack0:    "Error: cb failed",
		},
		{
			name: "custom error name",
			code: `class NotFound extends Error { constructor(m) { super(m); this.name = 'NotFound'; } }
				exports.handler = async () => { throw new NotFound('no such item'); };`,
			errorType: "NotFound",
			message:   "no such item",
			stack0:    "NotFound: no such item",
		},
		{
			name:      "unserializable result",
			code:      `exports.handler = async () => { const o = {}; o.self = o; return o; };`,
			errorType: "Error",
			message:   "Unable to stringify response body",
			stack0:    "Error: Unable to stringify response body",
		},
		{
			name:      "thrown string",
			code:      `exports.handler = async () => { throw 'oops'; };`,
			errorType: "string",
			message:   "oops",
		},
		{
			name:      "rejected promise that never settles",
			code:      `exports.handler = async () => { await new Promise(() => {}); };`,
			errorType: "Runtime.NodeJsExit",
			message:   "The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled.",
			stack0:    "Runtime.NodeJsExit: The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "nodejs", map[string]string{"index.js": tt.code}, "index.handler")
			p, id := in.invoke(`{}`, nil)
			e := checkError(t, p, id, tt.errorType, tt.message)
			if tt.stack0 == "" {
				if len(e.StackTrace) != 0 {
					t.Errorf("stackTrace = %q, want none", e.StackTrace)
				}
				return
			}
			if len(e.StackTrace) < 2 || e.StackTrace[0] != tt.stack0 {
				t.Errorf("stackTrace = %q, want %q then frames", e.StackTrace, tt.stack0)
			}
			if out := in.waitStdout("Invoke Error"); !strings.Contains(out, "\t"+id+"\tERROR\tInvoke Error \t{") {
				t.Errorf("stdout lacks the Invoke Error line for %s:\n%s", id, out)
			}
			// The instance stays usable after a function error.
			p, id = in.invoke(`{}`, nil)
			checkError(t, p, id, tt.errorType, tt.message)
		})
	}
}

func TestNodeInitErrors(t *testing.T) {
	interpreter(t, "nodejs")
	tests := []struct {
		name      string
		files     map[string]string
		handler   string
		errorType string
		message   string // a substring of the errorMessage
	}{
		{
			name:      "missing module",
			files:     map[string]string{"index.js": `exports.handler = async () => 1;`},
			handler:   "nothere.handler",
			errorType: "Runtime.ImportModuleError",
			message:   "Error: Cannot find module 'nothere'",
		},
		{
			name:      "missing dependency of an es module",
			files:     map[string]string{"app.mjs": `import x from 'not-installed'; export const handler = async () => x;`},
			handler:   "app.handler",
			errorType: "Runtime.ImportModuleError",
			message:   "not-installed",
		},
		{
			name:      "missing export",
			files:     map[string]string{"index.js": `exports.other = async () => 1;`},
			handler:   "index.handler",
			errorType: "Runtime.HandlerNotFound",
			message:   "index.handler is undefined or not exported",
		},
		{
			name:      "export is not a function",
			files:     map[string]string{"index.js": `exports.handler = 42;`},
			handler:   "index.handler",
			errorType: "Runtime.HandlerNotFound",
			message:   "index.handler is not a function",
		},
		{
			name:      "syntax error",
			files:     map[string]string{"index.js": `exports.handler = async () => {;`},
			handler:   "index.handler",
			errorType: "Runtime.UserCodeSyntaxError",
			message:   "SyntaxError: ",
		},
		{
			name:      "syntax error in an es module",
			files:     map[string]string{"app.mjs": `export const handler = async () => {;`},
			handler:   "app.handler",
			errorType: "Runtime.UserCodeSyntaxError",
			message:   "SyntaxError: ",
		},
		{
			name:      "exception at import",
			files:     map[string]string{"index.js": `throw new Error('init went wrong');`},
			handler:   "index.handler",
			errorType: "Error",
			message:   "init went wrong",
		},
		{
			name:      "malformed handler",
			files:     map[string]string{"index.js": `exports.handler = async () => 1;`},
			handler:   "index",
			errorType: "Runtime.MalformedHandlerName",
			message:   "Bad handler",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "nodejs", tt.files, tt.handler)
			p := in.waitPost()
			if p.Kind != "init" {
				t.Fatalf("got %s post (%s), want init error", p.Kind, p.Body)
			}
			e := decodeError(t, p)
			if e.ErrorType != tt.errorType || p.ErrorType != tt.errorType {
				t.Errorf("errorType = %q, header %q, want %q", e.ErrorType, p.ErrorType, tt.errorType)
			}
			if !strings.Contains(e.ErrorMessage, tt.message) {
				t.Errorf("errorMessage = %q, want it to contain %q", e.ErrorMessage, tt.message)
			}
			if code := in.waitExit(); code == 0 {
				t.Errorf("exit code = 0, want non-zero")
			}
		})
	}
}

// The bootstrap is CommonJS even when written under a package.json that
// makes .js files ES modules, such as the function's own.
func TestNodeBootstrapInTypeModuleDir(t *testing.T) {
	interpreter(t, "nodejs")
	taskRoot := writeFiles(t, map[string]string{
		"package.json": `{"type":"module"}`,
		"index.js":     `export const handler = async () => 'esm';`,
	})
	in := startIn(t, "nodejs", taskRoot, taskRoot, "index.handler")
	p, id := in.invoke(`{}`, nil)
	checkResponse(t, p, id, `"esm"`)
}

func TestNodeContext(t *testing.T) {
	in := start(t, "nodejs", map[string]string{"index.js": `
		exports.handler = async (event, context) => ({
			functionName: context.functionName,
			functionVersion: context.functionVersion,
			memory: context.memoryLimitInMB,
			requestId: context.awsRequestId,
			arn: context.invokedFunctionArn,
			logGroup: context.logGroupName,
			logStream: context.logStreamName,
			remaining: context.getRemainingTimeInMillis(),
			trace: process.env._X_AMZN_TRACE_ID,
			clientCustom: context.clientContext.custom.flag,
			identityId: context.identity.cognitoIdentityId,
			event,
		});`}, "index.handler")
	p, id := in.invoke(`{"k":"v"}`, contextHeaders())
	// memoryLimitInMB is a string, as on AWS.
	checkContext(t, p, id, `"256"`)
}

func TestNodeWarmReuse(t *testing.T) {
	in := start(t, "nodejs", map[string]string{"index.js": `
		let calls = 0;
		exports.handler = async (event, context) => {
			calls++;
			console.log('call', calls, 'of', event.n);
			return { calls, id: context.awsRequestId };
		};`}, "index.handler")
	for n := 1; n <= 2; n++ {
		p, id := in.invoke(fmt.Sprintf(`{"n":%d}`, n), nil)
		checkResponse(t, p, id, fmt.Sprintf(`{"calls":%d,"id":%q}`, n, id))
		line := fmt.Sprintf("\t%s\tINFO\tcall %d of %d\n", id, n, n)
		if out := in.waitStdout(line); !strings.Contains(out, line) {
			t.Errorf("stdout lacks %q:\n%s", line, out)
		}
	}
	if got := in.api.conns.Load(); got != 1 {
		t.Errorf("bootstrap opened %d connections, want 1 kept alive", got)
	}
}

func TestNodeLogLines(t *testing.T) {
	in := start(t, "nodejs", map[string]string{"index.js": `
		console.log('at init');
		exports.handler = async () => {
			console.info('info %d', 1);
			console.warn('careful');
			console.error('two\nlines');
			return 'ok';
		};`}, "index.handler")
	p, id := in.invoke(`{}`, nil)
	checkResponse(t, p, id, `"ok"`)
	wants := []string{
		"\tundefined\tINFO\tat init\n",
		"\t" + id + "\tINFO\tinfo 1\n",
		"\t" + id + "\tWARN\tcareful\n",
		"\t" + id + "\tERROR\ttwo\rlines\n",
	}
	out := in.waitStdout(wants[len(wants)-1])
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// Each line starts with an ISO-8601 UTC timestamp.
	for line := range strings.Lines(out) {
		ts, _, _ := strings.Cut(line, "\t")
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil {
			t.Errorf("line %q does not start with a timestamp: %v", line, err)
		}
	}
}

func TestNodeEmptyEventLoop(t *testing.T) {
	interpreter(t, "nodejs")
	tests := []struct {
		name    string
		code    string
		minWait time.Duration // the response comes no sooner than this
		maxWait time.Duration // and no later
	}{
		{
			// AWS waits for the timer before answering.
			name: "callback waits for pending timers",
			code: `exports.handler = (e, c, cb) => {
				setTimeout(() => {}, 300);
				cb(null, 'done');
			};`,
			minWait: 300 * time.Millisecond,
			maxWait: 990 * time.Millisecond, // under the grace period
		},
		{
			// AWS would time out; Wisp answers after its grace period.
			name: "callback on a loop that never empties",
			code: `setInterval(() => {}, 50);
				exports.handler = (e, c, cb) => cb(null, 'done');`,
			minWait: 950 * time.Millisecond, // the grace period, less timer slack
			maxWait: 5 * time.Second,
		},
		{
			name: "callbackWaitsForEmptyEventLoop false",
			code: `setInterval(() => {}, 50);
				exports.handler = (e, c, cb) => {
					c.callbackWaitsForEmptyEventLoop = false;
					cb(null, 'done');
				};`,
			maxWait: 990 * time.Millisecond, // under the grace period
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "nodejs", map[string]string{"index.js": tt.code}, "index.handler")
			p, id := in.invoke(`{}`, nil)
			took := time.Since(in.api.dispatchedAt(id))
			checkResponse(t, p, id, `"done"`)
			if took < tt.minWait || took > tt.maxWait {
				t.Errorf("answered after %v, want between %v and %v", took, tt.minWait, tt.maxWait)
			}
		})
	}
}

func TestNodeUncaughtDuringInvocation(t *testing.T) {
	interpreter(t, "nodejs")
	tests := []struct {
		name      string
		failure   string // JS statement run in a timer while the handler waits
		errorType string
		message   string
		exitCode  int
	}{
		{
			name:      "uncaught exception",
			failure:   `throw new Error('late failure');`,
			errorType: "Error",
			message:   "late failure",
			exitCode:  129,
		},
		{
			name:      "unhandled rejection",
			failure:   `Promise.reject(new Error('late rejection'));`,
			errorType: "Runtime.UnhandledPromiseRejection",
			message:   "Error: late rejection",
			exitCode:  128,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "nodejs", map[string]string{"index.js": `
				exports.handler = async () => {
					setTimeout(() => { ` + tt.failure + ` }, 0);
					await new Promise((resolve) => setTimeout(resolve, 2000));
					return 'unreachable';
				};`}, "index.handler")
			p, id := in.invoke(`{}`, nil)
			checkError(t, p, id, tt.errorType, tt.message)
			// As AWS: the process ends, and the next invocation meets a
			// cold start.
			if code := in.waitExit(); code != tt.exitCode {
				t.Errorf("exit code = %d, want %d", code, tt.exitCode)
			}
		})
	}
}

func TestPythonInvocations(t *testing.T) {
	interpreter(t, "python")
	tests := []struct {
		name    string
		files   map[string]string
		handler string
		event   string
		want    string
	}{
		{
			name:    "plain handler",
			files:   map[string]string{"app.py": "def handler(event, context):\n    return {'got': event['x']}\n"},
			handler: "app.handler",
			event:   `{"x":1}`,
			want:    `{"got":1}`,
		},
		{
			name:    "None is null",
			files:   map[string]string{"app.py": "def handler(event, context):\n    pass\n"},
			handler: "app.handler",
			event:   `{}`,
			want:    `null`,
		},
		{
			name: "decimal result",
			files: map[string]string{"app.py": "import decimal\n" +
				"def handler(event, context):\n    return [decimal.Decimal('3'), decimal.Decimal('1.5')]\n"},
			handler: "app.handler",
			event:   `{}`,
			want:    `[3, 1.5]`,
		},
		{
			name: "nested module by slash",
			files: map[string]string{
				"pkg/__init__.py": "",
				"pkg/mod.py":      "def fn(event, context):\n    return 'slash'\n",
			},
			handler: "pkg/mod.fn",
			event:   `{}`,
			want:    `"slash"`,
		},
		{
			name: "nested module by dot",
			files: map[string]string{
				"pkg/__init__.py":     "",
				"pkg/sub/__init__.py": "",
				"pkg/sub/mod.py":      "from . import helper\ndef fn(event, context):\n    return helper.VALUE\n",
				"pkg/sub/helper.py":   "VALUE = 'dot'\n",
			},
			handler: "pkg.sub.mod.fn",
			event:   `{}`,
			want:    `"dot"`,
		},
		{
			name: "task root comes first on sys.path",
			files: map[string]string{
				"app.py": "import sys, os\n" +
					"def handler(event, context):\n    return sys.path[0] == os.environ['LAMBDA_TASK_ROOT']\n",
			},
			handler: "app.handler",
			event:   `{}`,
			want:    `true`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "python", tt.files, tt.handler)
			p, id := in.invoke(tt.event, nil)
			checkResponse(t, p, id, tt.want)
		})
	}
}

func TestPythonContext(t *testing.T) {
	in := start(t, "python", map[string]string{"app.py": `
import os

def handler(event, context):
    return {
        "functionName": context.function_name,
        "functionVersion": context.function_version,
        "memory": context.memory_limit_in_mb,
        "requestId": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "logGroup": context.log_group_name,
        "logStream": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "clientCustom": context.client_context.custom["flag"],
        "identityId": context.identity.cognito_identity_id,
        "event": event,
    }
`}, "app.handler")
	p, id := in.invoke(`{"k":"v"}`, contextHeaders())
	// memory_limit_in_mb is a string, as in awslambdaric.
	checkContext(t, p, id, `"256"`)
}

func TestPythonException(t *testing.T) {
	in := start(t, "python", map[string]string{"app.py": `
class NotFoundError(Exception):
    pass

def lookup(key):
    raise NotFoundError("no item " + key)

def handler(event, context):
    return lookup(event["key"])
`}, "app.handler")
	p, id := in.invoke(`{"key":"k1"}`, nil)
	e := checkError(t, p, id, "NotFoundError", "no item k1")
	if len(e.StackTrace) != 2 {
		t.Fatalf("stackTrace = %q, want the handler and lookup frames", e.StackTrace)
	}
	for i, fn := range []string{"in handler", "in lookup"} {
		frame := e.StackTrace[i]
		if !strings.Contains(frame, "app.py\", line ") || !strings.Contains(frame, fn) {
			t.Errorf("stackTrace[%d] = %q, want an app.py frame %s", i, frame, fn)
		}
	}
	// The error is logged on one line, tagged [ERROR].
	want := "[ERROR] NotFoundError: no item k1\rTraceback (most recent call last):\r"
	if out := in.waitStdout(want); !strings.Contains(out, want) {
		t.Errorf("stdout lacks %q:\n%s", want, out)
	}
	// The instance stays usable.
	p, id = in.invoke(`{"key":"k2"}`, nil)
	checkError(t, p, id, "NotFoundError", "no item k2")
}

func TestPythonMarshalError(t *testing.T) {
	in := start(t, "python", map[string]string{"app.py": "def handler(event, context):\n    return {'s': {1, 2}}\n"}, "app.handler")
	p, id := in.invoke(`{}`, nil)
	checkError(t, p, id, "Runtime.MarshalError", "Unable to marshal response: Object of type set is not JSON serializable")
}

func TestPythonInitErrors(t *testing.T) {
	interpreter(t, "python")
	tests := []struct {
		name      string
		files     map[string]string
		handler   string
		errorType string
		message   string
	}{
		{
			name:      "missing module",
			files:     map[string]string{"app.py": "def handler(e, c):\n    return 1\n"},
			handler:   "nothere.handler",
			errorType: "Runtime.ImportModuleError",
			message:   "Unable to import module 'nothere': No module named 'nothere'",
		},
		{
			name:      "missing dependency",
			files:     map[string]string{"app.py": "import not_installed\ndef handler(e, c):\n    return 1\n"},
			handler:   "app.handler",
			errorType: "Runtime.ImportModuleError",
			message:   "Unable to import module 'app': No module named 'not_installed'",
		},
		{
			name:      "missing function",
			files:     map[string]string{"app.py": "def other(e, c):\n    return 1\n"},
			handler:   "app.handler",
			errorType: "Runtime.HandlerNotFound",
			message:   "Handler 'handler' missing on module 'app'",
		},
		{
			name:      "syntax error",
			files:     map[string]string{"app.py": "def handler(e, c)\n    return 1\n"},
			handler:   "app.handler",
			errorType: "Runtime.UserCodeSyntaxError",
			message:   "Syntax error in module 'app': ",
		},
		{
			name:      "exception at import",
			files:     map[string]string{"app.py": "raise ValueError('bad config')\n"},
			handler:   "app.handler",
			errorType: "ValueError",
			message:   "bad config",
		},
		{
			name:      "malformed handler",
			files:     map[string]string{"app.py": ""},
			handler:   "app",
			errorType: "Runtime.MalformedHandlerName",
			message:   "Bad handler 'app'",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, "python", tt.files, tt.handler)
			p := in.waitPost()
			if p.Kind != "init" {
				t.Fatalf("got %s post (%s), want init error", p.Kind, p.Body)
			}
			e := decodeError(t, p)
			if e.ErrorType != tt.errorType || p.ErrorType != tt.errorType {
				t.Errorf("errorType = %q, header %q, want %q", e.ErrorType, p.ErrorType, tt.errorType)
			}
			if !strings.Contains(e.ErrorMessage, tt.message) {
				t.Errorf("errorMessage = %q, want it to contain %q", e.ErrorMessage, tt.message)
			}
			if code := in.waitExit(); code == 0 {
				t.Errorf("exit code = 0, want non-zero")
			}
		})
	}
}

func TestPythonLogging(t *testing.T) {
	in := start(t, "python", map[string]string{"app.py": `
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)
calls = 0

def handler(event, context):
    global calls
    calls += 1
    logger.info("call %d", calls)
    logging.getLogger("child").warning("careful")
    print("printed", calls)
    return calls
`}, "app.handler")
	for n := 1; n <= 2; n++ {
		p, id := in.invoke(`{}`, nil)
		checkResponse(t, p, id, strconv.Itoa(n)) // the same process both times
		wants := []string{
			fmt.Sprintf("[INFO]\t%%s\t%s\tcall %d\n", id, n),
			fmt.Sprintf("[WARNING]\t%%s\t%s\tcareful\n", id),
		}
		out := in.waitStdout(fmt.Sprintf("printed %d\n", n))
		if !strings.Contains(out, fmt.Sprintf("printed %d\n", n)) {
			t.Errorf("stdout lacks the print output:\n%s", out)
		}
		for _, want := range wants {
			prefix, suffix, _ := strings.Cut(want, "%s")
			i := strings.Index(out, suffix)
			if i < 0 {
				t.Errorf("stdout lacks %q:\n%s", suffix, out)
				continue
			}
			// "[LEVEL]\t" then an ISO-8601 UTC timestamp with milliseconds.
			line := out[strings.LastIndex(out[:i], "\n")+1 : i]
			ts, ok := strings.CutPrefix(line, prefix)
			if !ok {
				t.Errorf("line %q does not start with %q", line, prefix)
				continue
			}
			if _, err := time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil {
				t.Errorf("line %q: bad timestamp: %v", line+suffix, err)
			}
		}
	}
	if got := in.api.conns.Load(); got != 1 {
		t.Errorf("bootstrap opened %d connections, want 1 kept alive", got)
	}
}
