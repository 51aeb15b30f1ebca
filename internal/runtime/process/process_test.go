package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// goFnDir holds the test function built from testdata/gofn, as bootstrap.
var goFnDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wisp-gofn-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "bootstrap"), "./testdata/gofn").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building testdata/gofn: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goFnDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newDriver returns a driver writing its bootstraps in a temp dir.
func newDriver(t testing.TB, cfg Config) *Driver {
	t.Helper()
	cfg.BootstrapDir = t.TempDir()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// start starts an instance and stops it when the test ends, checking that
// its process is gone.
func start(t testing.TB, d *Driver, spec runtime.Spec) *instance {
	t.Helper()
	if spec.Function == "" {
		spec.Function = "fn"
	}
	if spec.InstanceID == "" {
		spec.InstanceID = "inst-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	i := inst.(*instance)
	t.Cleanup(func() {
		if err := i.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		checkGone(t, i.proc.pid())
	})
	return i
}

func goSpec() runtime.Spec {
	return runtime.Spec{Runtime: "provided", Handler: "bootstrap", CodeDir: goFnDir, MemoryMB: 128, Timeout: 3 * time.Second}
}

// invoke runs one invocation of payload with a deadline of timeout.
func invoke(t testing.TB, i *instance, id, payload string, timeout time.Duration) runtime.Result {
	t.Helper()
	return i.Invoke(context.Background(), runtime.Invocation{
		RequestID: id, Payload: []byte(payload), Deadline: time.Now().Add(timeout),
	})
}

// errDoc is Lambda's error document.
type errDoc struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

func parseErr(t testing.TB, payload []byte) errDoc {
	t.Helper()
	var d errDoc
	if err := json.Unmarshal(payload, &d); err != nil {
		t.Fatalf("error payload %q: %v", payload, err)
	}
	return d
}

// alive reports whether pid is a live process; a zombie that nobody reaps
// (as in a container without an init) counts as gone.
func alive(pid int) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// pid (comm) S ...: the state follows the last ')'.
		s := string(b)
		if j := strings.LastIndexByte(s, ')'); j >= 0 && j+2 < len(s) {
			return s[j+2] != 'Z'
		}
		return true
	}
	if goruntime.GOOS == "linux" {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// checkGone fails the test unless pid is gone within a few seconds.
func checkGone(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			t.Errorf("process %d still runs", pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// need skips the test unless the named program is installed.
func need(t *testing.T, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Skipf("%s is not installed: %v", prog, err)
	}
}

// codeDir writes files into a new temp dir.
func codeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		mode := os.FileMode(0o644)
		if name == "bootstrap" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

const (
	nodeHandlers = `
exports.echo = async (event) => ({got: event});
exports.fail = async () => { const e = new Error('nope'); e.name = 'CustomError'; throw e; };
exports.log = async (event) => { console.log('hello', event.n); return 'logged'; };
exports.big = async () => 'x'.repeat(7 * 1024 * 1024);
exports.exit = async () => { process.exit(2); };
`
	pythonHandlers = `
class MyError(Exception):
    pass

def echo(event, context):
    return {"got": event}

def fail(event, context):
    raise MyError("nope")
`
)

func TestInvoke(t *testing.T) {
	tests := []struct {
		name     string
		prog     string // needed on the machine, if any
		spec     func(t *testing.T) runtime.Spec
		payload  string
		want     string // the response, if it succeeds
		wantType string // the error type, if it fails
		wantMsg  string
	}{
		{
			name: "go echo", spec: func(*testing.T) runtime.Spec { return goSpec() },
			payload: `{"op":"echo","msg":"hi"}`, want: `{"op":"echo","msg":"hi"}`,
		},
		{
			name: "go function error", spec: func(*testing.T) runtime.Spec { return goSpec() },
			payload: `{"op":"error","msg":"short and stout"}`, wantType: "TeapotError", wantMsg: "short and stout",
		},
		{
			name: "node echo", prog: "node", spec: nodeSpec("index.echo"),
			payload: `{"a":1}`, want: `{"got":{"a":1}}`,
		},
		{
			name: "node function error", prog: "node", spec: nodeSpec("index.fail"),
			payload: `{}`, wantType: "CustomError", wantMsg: "nope",
		},
		{
			name: "python echo", prog: "python3", spec: pythonSpec("app.echo"),
			payload: `{"a":[1,2]}`, want: `{"got":{"a":[1,2]}}`,
		},
		{
			name: "python function error", prog: "python3", spec: pythonSpec("app.fail"),
			payload: `{}`, wantType: "MyError", wantMsg: "nope",
		},
	}
	d := newDriver(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prog != "" {
				need(t, tt.prog)
			}
			i := start(t, d, tt.spec(t))
			got := invoke(t, i, "req-1", tt.payload, 5*time.Second)
			if got.ErrorType != tt.wantType {
				t.Fatalf("ErrorType = %q, want %q (payload %s)", got.ErrorType, tt.wantType, got.Payload)
			}
			if !got.Reusable {
				t.Errorf("Reusable = false, want true")
			}
			if tt.wantType == "" {
				if !sameJSON(t, got.Payload, []byte(tt.want)) {
					t.Errorf("Payload = %s, want %s", got.Payload, tt.want)
				}
				return
			}
			doc := parseErr(t, got.Payload)
			if doc.Type != tt.wantType || doc.Message != tt.wantMsg {
				t.Errorf("error document = %+v, want type %q message %q", doc, tt.wantType, tt.wantMsg)
			}
		})
	}
}

func nodeSpec(handler string) func(t *testing.T) runtime.Spec {
	return func(t *testing.T) runtime.Spec {
		return runtime.Spec{Runtime: "nodejs", Handler: handler, Timeout: 3 * time.Second,
			CodeDir: codeDir(t, map[string]string{"index.js": nodeHandlers})}
	}
}

func pythonSpec(handler string) func(t *testing.T) runtime.Spec {
	return func(t *testing.T) runtime.Spec {
		return runtime.Spec{Runtime: "python", Handler: handler, Timeout: 3 * time.Second,
			CodeDir: codeDir(t, map[string]string{"app.py": pythonHandlers})}
	}
}

func TestInvocationHeaders(t *testing.T) {
	i := start(t, newDriver(t, Config{}), goSpec())
	deadline := time.Now().Add(2 * time.Second).Truncate(time.Millisecond)
	got := i.Invoke(context.Background(), runtime.Invocation{
		RequestID:       "req-ctx",
		Payload:         []byte(`{"op":"context"}`),
		Deadline:        deadline,
		FunctionARN:     "arn:aws:lambda:us-east-1:000000000000:function:fn",
		TraceID:         "Root=1-5759e988-bd862e3fe1be46a994272793",
		ClientContext:   `{"custom":{"k":"v"}}`,
		CognitoIdentity: `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`,
	})
	if got.Failed() {
		t.Fatalf("Invoke failed: %s %s", got.ErrorType, got.Payload)
	}
	want := fmt.Sprintf(`{"requestId":"req-ctx","arn":"arn:aws:lambda:us-east-1:000000000000:function:fn",
		"deadline":%d,"custom":{"k":"v"},"identity":"id-1"}`, deadline.UnixMilli())
	if !sameJSON(t, got.Payload, []byte(want)) {
		t.Errorf("Payload = %s, want %s", got.Payload, want)
	}
}

func TestTimeout(t *testing.T) {
	d := newDriver(t, Config{})
	spec := goSpec()
	spec.Timeout = 300 * time.Millisecond
	i := start(t, d, spec)

	begin := time.Now()
	got := invoke(t, i, "req-slow", `{"op":"sleep","ms":5000}`, spec.Timeout)
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Invoke took %v, want about %v", took, spec.Timeout)
	}
	if got.ErrorType != runtime.ErrTypeTimeout {
		t.Fatalf("ErrorType = %q, want %q", got.ErrorType, runtime.ErrTypeTimeout)
	}
	if got.Reusable {
		t.Errorf("Reusable = true after a timeout")
	}
	doc := parseErr(t, got.Payload)
	if want := "RequestId: req-slow Error: Task timed out after 0.30 seconds"; doc.Message != want {
		t.Errorf("errorMessage = %q, want %q", doc.Message, want)
	}
	select {
	case <-i.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed after a timeout")
	}
	checkGone(t, i.proc.pid())

	// The instance is done with; a new one works.
	j := start(t, d, goSpec())
	if got := invoke(t, j, "req-next", `{"op":"echo"}`, time.Second); got.Failed() {
		t.Errorf("Invoke on a new instance: %s %s", got.ErrorType, got.Payload)
	}
}

func TestCallerGone(t *testing.T) {
	i := start(t, newDriver(t, Config{}), goSpec())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got := i.Invoke(ctx, runtime.Invocation{RequestID: "req-gone", Payload: []byte(`{"op":"sleep","ms":5000}`),
		Deadline: time.Now().Add(5 * time.Second)})
	if got.Reusable || !got.Failed() {
		t.Errorf("Result = %+v, want a failure that is not reusable", got)
	}
	select {
	case <-i.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed after the caller went")
	}
	checkGone(t, i.proc.pid())
}

func TestNotStarted(t *testing.T) {
	i := start(t, newDriver(t, Config{}), goSpec())
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		deadline time.Time
		wantType string
	}{
		{name: "deadline passed", ctx: context.Background(), deadline: time.Now().Add(-time.Second), wantType: runtime.ErrTypeTimeout},
		{name: "caller gone", ctx: canceled, deadline: time.Now().Add(time.Minute), wantType: runtime.ErrTypeExit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := i.Invoke(tt.ctx, runtime.Invocation{RequestID: "req-never", Payload: []byte(`{"op":"pid"}`), Deadline: tt.deadline})
			if got.ErrorType != tt.wantType {
				t.Errorf("ErrorType = %q, want %q", got.ErrorType, tt.wantType)
			}
			// The runtime never saw it, so the instance is as good as before.
			if !got.Reusable {
				t.Errorf("Reusable = false for an invocation that never started")
			}
			if res := invoke(t, i, "req-after", `{"op":"pid"}`, 5*time.Second); res.Failed() || string(res.Payload) != strconv.Itoa(i.proc.pid()) {
				t.Errorf("next Invoke = %s %s, want pid %d", res.ErrorType, res.Payload, i.proc.pid())
			}
		})
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		name    string
		prog    string
		spec    func(t *testing.T) runtime.Spec
		payload string
		wantMsg string
	}{
		{
			name: "go", spec: func(*testing.T) runtime.Spec { return goSpec() },
			payload: `{"op":"exit","code":1}`, wantMsg: "RequestId: req-exit Error: Runtime exited with error: exit status 1",
		},
		{
			name: "node", prog: "node", spec: nodeSpec("index.exit"),
			payload: `{}`, wantMsg: "RequestId: req-exit Error: Runtime exited with error: exit status 2",
		},
	}
	d := newDriver(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prog != "" {
				need(t, tt.prog)
			}
			i := start(t, d, tt.spec(t))
			got := invoke(t, i, "req-exit", tt.payload, 5*time.Second)
			if got.ErrorType != runtime.ErrTypeExit {
				t.Fatalf("ErrorType = %q, want %q (payload %s)", got.ErrorType, runtime.ErrTypeExit, got.Payload)
			}
			if got.Reusable {
				t.Errorf("Reusable = true after an exit")
			}
			if doc := parseErr(t, got.Payload); doc.Message != tt.wantMsg {
				t.Errorf("errorMessage = %q, want %q", doc.Message, tt.wantMsg)
			}
			// A dead instance answers at once.
			begin := time.Now()
			again := invoke(t, i, "req-again", `{"op":"echo"}`, 5*time.Second)
			if again.ErrorType != runtime.ErrTypeExit {
				t.Errorf("second Invoke: ErrorType = %q, want %q", again.ErrorType, runtime.ErrTypeExit)
			}
			if took := time.Since(begin); took > 100*time.Millisecond {
				t.Errorf("second Invoke took %v on a dead instance", took)
			}
		})
	}
}

func TestInitError(t *testing.T) {
	pidFile := func(t *testing.T) string { return filepath.Join(t.TempDir(), "pid") }
	tests := []struct {
		name     string
		prog     string
		runtime  string
		handler  string
		files    map[string]string
		cfg      Config
		ctxAfter time.Duration // cancel the Start ctx after this long, if set
		wantType string
		wantMsg  []string // each in the message
	}{
		{
			name: "node missing module", prog: "node", runtime: "nodejs", handler: "index.handler",
			files: map[string]string{"index.js": `require('fs').writeFileSync(process.env.PIDFILE, String(process.pid));
require('does-not-exist');
exports.handler = async () => 1;`},
			wantType: "Runtime.ImportModuleError", wantMsg: []string{"does-not-exist"},
		},
		{
			name: "node handler not found", prog: "node", runtime: "nodejs", handler: "index.nothere",
			files:    map[string]string{"index.js": `require('fs').writeFileSync(process.env.PIDFILE, String(process.pid));`},
			wantType: "Runtime.HandlerNotFound", wantMsg: []string{"index.nothere"},
		},
		{
			name: "python missing module", prog: "python3", runtime: "python", handler: "app.handler",
			files:    map[string]string{"app.py": "import os\nopen(os.environ['PIDFILE'], 'w').write(str(os.getpid()))\nimport does_not_exist\n"},
			wantType: "Runtime.ImportModuleError", wantMsg: []string{"does_not_exist"},
		},
		{
			name: "exit during init", runtime: "provided", handler: "x",
			files:    map[string]string{"bootstrap": "#!/bin/sh\necho $$ > \"$PIDFILE\"\necho starting\necho 'cannot start: no config' >&2\nexit 3\n"},
			wantType: runtime.ErrTypeInit, wantMsg: []string{"exit status 3", "cannot start: no config"},
		},
		{
			name: "init timeout", runtime: "provided", handler: "x", cfg: Config{InitTimeout: 300 * time.Millisecond},
			files:    map[string]string{"bootstrap": "#!/bin/sh\necho $$ > \"$PIDFILE\"\nexec sleep 100\n"},
			wantType: runtime.ErrTypeInit, wantMsg: []string{"init timed out after 300ms"},
		},
		{
			name: "start ctx ends", runtime: "go", handler: "x", ctxAfter: 300 * time.Millisecond,
			files:    map[string]string{"bootstrap": "#!/bin/sh\necho $$ > \"$PIDFILE\"\nsleep 100\n"},
			wantType: runtime.ErrTypeInit, wantMsg: []string{"init timed out after", "context deadline exceeded"},
		},
		{
			name: "missing bootstrap", runtime: "provided", handler: "x",
			files:    map[string]string{"README": "no bootstrap here"},
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: []string{"Couldn't find valid bootstrap"},
		},
		{
			name: "bootstrap not executable", runtime: "provided", handler: "x",
			files:    map[string]string{"bootstrap.sh": "#!/bin/sh\n"}, // renamed below
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: []string{"not executable"},
		},
		{
			name: "bootstrap not a program", runtime: "provided", handler: "x",
			files:    map[string]string{"bootstrap": "just some text\x00\x01\x02"},
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: []string{"exec format error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prog != "" {
				need(t, tt.prog)
			}
			dir := codeDir(t, tt.files)
			if _, ok := tt.files["bootstrap.sh"]; ok {
				if err := os.Rename(filepath.Join(dir, "bootstrap.sh"), filepath.Join(dir, "bootstrap")); err != nil {
					t.Fatal(err)
				}
			}
			pf := pidFile(t)
			d := newDriver(t, tt.cfg)
			ctx := context.Background()
			if tt.ctxAfter > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxAfter)
				defer cancel()
			}
			begin := time.Now()
			inst, err := d.Start(ctx, runtime.Spec{Function: "fn", Runtime: tt.runtime, Handler: tt.handler,
				CodeDir: dir, InstanceID: "inst-init", Env: map[string]string{"PIDFILE": pf}})
			if err == nil {
				inst.Stop()
				t.Fatal("Start succeeded, want an init error")
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Errorf("Start took %v to fail", took)
			}
			ie, ok := errors.AsType[*runtime.InitError](err)
			if !ok {
				t.Fatalf("err = %v (%T), want an *runtime.InitError", err, err)
			}
			if ie.Type != tt.wantType {
				t.Errorf("Type = %q, want %q (message %q)", ie.Type, tt.wantType, ie.Message)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(ie.Message, m) {
					t.Errorf("Message = %q, want it to contain %q", ie.Message, m)
				}
			}
			if doc := parseErr(t, ie.Payload); doc.Type != ie.Type {
				t.Errorf("Payload errorType = %q, want %q", doc.Type, ie.Type)
			}
			if b, err := os.ReadFile(pf); err == nil {
				pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil {
					t.Fatalf("pid file: %v", err)
				}
				checkGone(t, pid)
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		prog    string
		spec    func(t *testing.T) runtime.Spec
		payload string
	}{
		// aws-lambda-go sends its response chunked; Node gives a length.
		{name: "go", spec: func(*testing.T) runtime.Spec { return goSpec() }, payload: `{"op":"big","size":7340032}`},
		{name: "node", prog: "node", spec: nodeSpec("index.big"), payload: `{}`},
	}
	d := newDriver(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prog != "" {
				need(t, tt.prog)
			}
			i := start(t, d, tt.spec(t))
			got := invoke(t, i, "req-big", tt.payload, 10*time.Second)
			if got.ErrorType != runtime.ErrTypeResponseTooLarge {
				t.Fatalf("ErrorType = %q, want %q", got.ErrorType, runtime.ErrTypeResponseTooLarge)
			}
			doc := parseErr(t, got.Payload)
			want := fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", runtime.MaxResponseBytes)
			if doc.Message != want {
				t.Errorf("errorMessage = %q, want %q", doc.Message, want)
			}
			if got.Reusable {
				t.Errorf("Reusable = true after a refused response")
			}
		})
	}
}

func TestEnv(t *testing.T) {
	// What the node has must not reach the function.
	t.Setenv("WISP_ADMIN_TOKEN", "secret")
	t.Setenv("SOME_NODE_VAR", "node")
	d := newDriver(t, Config{Region: "eu-west-3"})
	spec := goSpec()
	spec.Function, spec.Version, spec.MemoryMB, spec.InstanceID = "envfn", "7", 256, "inst-env"
	spec.Env = map[string]string{
		"MY_VAR":                   "mine",
		"TZ":                       ":Europe/Paris", // the function may set it, as on Lambda
		"AWS_LAMBDA_FUNCTION_NAME": "evil",
		"LAMBDA_TASK_ROOT":         "/evil",
		"_HANDLER":                 "evil",
	}
	i := start(t, d, spec)
	res := invoke(t, i, "req-env", `{"op":"env"}`, 5*time.Second)
	if res.Failed() {
		t.Fatalf("Invoke: %s %s", res.ErrorType, res.Payload)
	}
	var env map[string]string
	if err := json.Unmarshal(res.Payload, &env); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		want string
	}{
		{"AWS_LAMBDA_FUNCTION_NAME", "envfn"},
		{"AWS_LAMBDA_FUNCTION_VERSION", "7"},
		{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"},
		{"AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/envfn"},
		{"AWS_LAMBDA_LOG_STREAM_NAME", time.Now().UTC().Format("2006/01/02") + "/[7]inst-env"},
		{"AWS_REGION", "eu-west-3"},
		{"AWS_DEFAULT_REGION", "eu-west-3"},
		{"AWS_EXECUTION_ENV", "AWS_Lambda_provided"},
		{"LAMBDA_TASK_ROOT", goFnDir},
		{"LAMBDA_RUNTIME_DIR", d.cfg.BootstrapDir},
		{"_HANDLER", "bootstrap"},
		{"HOME", "/tmp"},
		{"LANG", "C.UTF-8"},
		{"TZ", ":Europe/Paris"},
		{"MY_VAR", "mine"},
		{"cwd", goFnDir},
	}
	for _, tt := range tests {
		if got := env[tt.name]; got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := env["AWS_LAMBDA_RUNTIME_API"]; !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want 127.0.0.1:<port>", got)
	}
	if got := env["PATH"]; !strings.HasPrefix(got, basePath) {
		t.Errorf("PATH = %q, want it to start with %q", got, basePath)
	}
	for _, name := range []string{"WISP_ADMIN_TOKEN", "SOME_NODE_VAR"} {
		if got, ok := env[name]; ok {
			t.Errorf("%s = %q reached the function", name, got)
		}
	}
}

// logs collects an instance's lines.
type logs struct {
	mu    sync.Mutex
	lines []runtime.Line
}

func (l *logs) add(line runtime.Line) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

// take returns the lines so far and forgets them.
func (l *logs) take() []runtime.Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	l.lines = nil
	return lines
}

// line is what a test checks of a runtime.Line.
type line struct{ RequestID, Stream, Text string }

func simple(lines []runtime.Line) []line {
	var out []line
	for _, l := range lines {
		out = append(out, line{l.RequestID, l.Stream, l.Text})
	}
	return out
}

func TestLogs(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		var got logs
		spec := goSpec()
		spec.Log = got.add
		i := start(t, newDriver(t, Config{}), spec)
		if init, want := simple(got.take()), []line{{"", "stderr", "gofn: init"}}; !reflect.DeepEqual(init, want) {
			t.Errorf("init lines = %q, want %q", init, want)
		}

		long := strings.Repeat("y", maxLine+100)
		tests := []struct {
			name    string
			id      string
			payload string
			want    []line
		}{
			{
				name: "first", id: "req-1", payload: `{"op":"log","stdout":["one-a","one-b"],"stderr":["one-err"]}`,
				want: []line{{"req-1", "stdout", "one-a"}, {"req-1", "stdout", "one-b"}, {"req-1", "stderr", "one-err"}},
			},
			{
				name: "second", id: "req-2", payload: `{"op":"log","stdout":["two"]}`,
				want: []line{{"req-2", "stdout", "two"}},
			},
			{
				name: "long line split", id: "req-3", payload: `{"op":"log","stdout":["` + long + `"]}`,
				want: []line{{"req-3", "stdout", long[:maxLine]}, {"req-3", "stdout", long[maxLine:]}},
			},
			{
				name: "crash", id: "req-4", payload: `{"op":"exit","code":1}`,
				want: []line{{"req-4", "stderr", "gofn: exiting"}},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				invoke(t, i, tt.id, tt.payload, 5*time.Second)
				// Delivered by the time Invoke returns: no waiting here.
				got := simple(got.take())
				if len(got) != len(tt.want) {
					t.Fatalf("got %d lines, want %d: %.200q", len(got), len(tt.want), got)
				}
				// Lines of the two streams may come in either order.
				for _, w := range tt.want {
					found := false
					for _, g := range got {
						found = found || g == w
					}
					if !found {
						t.Errorf("line %.80q missing from %.200q", w, got)
					}
				}
			})
		}
	})

	t.Run("node", func(t *testing.T) {
		need(t, "node")
		var got logs
		spec := nodeSpec("index.log")(t)
		spec.Log = got.add
		i := start(t, newDriver(t, Config{}), spec)
		got.take()
		for _, id := range []string{"req-a", "req-b"} {
			invoke(t, i, id, `{"n":42}`, 5*time.Second)
			lines := got.take()
			if len(lines) != 1 {
				t.Fatalf("%s: got lines %q, want one", id, simple(lines))
			}
			// The Node bootstrap writes "time\trequest id\tLEVEL\ttext".
			l := lines[0]
			fields := strings.Split(l.Text, "\t")
			if l.RequestID != id || l.Stream != "stdout" || len(fields) != 4 || fields[1] != id || fields[2] != "INFO" || fields[3] != "hello 42" {
				t.Errorf("%s: line = %+v", id, l)
			}
		}
	})
}

func TestWarmReuse(t *testing.T) {
	i := start(t, newDriver(t, Config{}), goSpec())
	if i.InitDuration() <= 0 {
		t.Errorf("InitDuration = %v, want > 0", i.InitDuration())
	}
	for _, id := range []string{"req-1", "req-2"} {
		got := invoke(t, i, id, `{"op":"pid"}`, 5*time.Second)
		if got.Failed() || !got.Reusable {
			t.Fatalf("%s: %+v", id, got)
		}
		if pid, err := strconv.Atoi(string(got.Payload)); err != nil || pid != i.proc.pid() {
			t.Errorf("%s: ran in process %s, want %d", id, got.Payload, i.proc.pid())
		}
		if goruntime.GOOS == "linux" && got.MaxMemoryMB <= 0 {
			t.Errorf("%s: MaxMemoryMB = %d, want > 0", id, got.MaxMemoryMB)
		}
	}
}

func TestParallel(t *testing.T) {
	d := newDriver(t, Config{})
	a, b := start(t, d, goSpec()), start(t, d, goSpec())
	var wg sync.WaitGroup
	for n, i := range []*instance{a, b} {
		wg.Go(func() {
			for k := range 20 {
				msg := fmt.Sprintf("instance %d call %d", n, k)
				got := invoke(t, i, fmt.Sprintf("req-%d-%d", n, k), `{"op":"echo","msg":"`+msg+`"}`, 5*time.Second)
				if want := `{"op":"echo","msg":"` + msg + `"}`; got.Failed() || string(got.Payload) != want {
					t.Errorf("Payload = %s (%s), want %s", got.Payload, got.ErrorType, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRuntimeAPI(t *testing.T) {
	i := start(t, newDriver(t, Config{}), goSpec())
	if got := invoke(t, i, "req-done", `{"op":"echo"}`, 5*time.Second); got.Failed() {
		t.Fatalf("Invoke: %s", got.Payload)
	}
	// The function itself calls the Runtime API during an invocation, as a
	// confused runtime would; the invocation it is in must not suffer.
	tests := []struct {
		name string
		path string
		body string // GET if empty
		want int
	}{
		{name: "response for an unknown id", path: "/2018-06-01/runtime/invocation/nope/response", body: `{}`, want: 400},
		{name: "error for an unknown id", path: "/2018-06-01/runtime/invocation/nope/error", body: `{}`, want: 400},
		{name: "response for a finished id", path: "/2018-06-01/runtime/invocation/req-done/response", body: `{}`, want: 400},
		{name: "init error after init", path: "/2018-06-01/runtime/init/error", body: `{}`, want: 403},
		{name: "next before answering", path: "/2018-06-01/runtime/invocation/next", want: 403},
		{name: "unknown path", path: "/2018-06-01/runtime/nothing", want: 404},
		{name: "unknown invocation verb", path: "/2018-06-01/runtime/invocation/x/cancel", body: `{}`, want: 404},
		{name: "wrong method", path: "/2018-06-01/runtime/invocation/x/response", want: 405},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := json.Marshal(map[string]string{"op": "post", "path": tt.path, "body": tt.body})
			if err != nil {
				t.Fatal(err)
			}
			got := invoke(t, i, fmt.Sprintf("req-%d", n), string(ev), 5*time.Second)
			if got.Failed() {
				t.Fatalf("Invoke: %s %s", got.ErrorType, got.Payload)
			}
			if string(got.Payload) != strconv.Itoa(tt.want) {
				t.Errorf("status = %s, want %d", got.Payload, tt.want)
			}
		})
	}
}

func TestStop(t *testing.T) {
	before := goruntime.NumGoroutine()
	i := start(t, newDriver(t, Config{}), goSpec())
	got := invoke(t, i, "req-spawn", `{"op":"spawn"}`, 5*time.Second)
	if got.Failed() {
		t.Fatalf("Invoke: %s %s", got.ErrorType, got.Payload)
	}
	child, err := strconv.Atoi(string(got.Payload))
	if err != nil {
		t.Fatalf("child pid %q: %v", got.Payload, err)
	}
	if !alive(child) {
		t.Fatalf("child %d is not running before Stop", child)
	}

	for range 2 { // Stop twice: the second does nothing
		if err := i.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	select {
	case <-i.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	checkGone(t, i.proc.pid())
	checkGone(t, child)
	if got := invoke(t, i, "req-after", `{"op":"echo"}`, time.Second); got.ErrorType != runtime.ErrTypeExit {
		t.Errorf("Invoke after Stop: ErrorType = %q, want %q", got.ErrorType, runtime.ErrTypeExit)
	}

	// Nothing of the instance runs on: net/http's connection goroutines
	// may take a moment to notice their connections closed.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := goruntime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines after Stop, %d before:\n%s", n, before, buf[:goruntime.Stack(buf, true)])
			break
		}
	}
}
