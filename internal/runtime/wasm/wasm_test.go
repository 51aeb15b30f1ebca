package wasm

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// The guests, built once for the whole run.
var (
	// exampleDir and guestDir hold examples/hello-wasm-go and
	// testdata/guest, built as main.wasm; guestDir also has data.txt.
	exampleDir, guestDir string
	// reuseExampleDir and reuseGuestDir hold the reactors for reuse mode,
	// examples/hello-wasm-go-reuse and testdata/reuseguest, as main.wasm.
	reuseExampleDir, reuseGuestDir string
	// watDirs holds each assembled .wat as main.wasm in a dir of its own,
	// by name: hello (examples/hello-wasm-wat), and testdata's.
	watDirs map[string]string
	// noWat says why the .wat guests are missing, if they are.
	noWat string
	// sharedCache is the compilation cache of most tests, so each guest
	// is compiled once per run.
	sharedCache string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "wisp-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	sharedCache = filepath.Join(tmp, "cache")
	exampleDir = filepath.Join(tmp, "example")
	guestDir = filepath.Join(tmp, "guest")
	reuseExampleDir = filepath.Join(tmp, "reuse-example")
	reuseGuestDir = filepath.Join(tmp, "reuse-guest")
	for _, b := range []struct {
		src, dir string
		args     []string
	}{
		{"../../../examples/hello-wasm-go", exampleDir, nil},
		{"./testdata/guest", guestDir, nil},
		{"../../../examples/hello-wasm-go-reuse", reuseExampleDir, []string{"-buildmode=c-shared"}},
		{"./testdata/reuseguest", reuseGuestDir, []string{"-buildmode=c-shared"}},
	} {
		if err := buildGo(b.src, b.dir, b.args...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := os.WriteFile(filepath.Join(guestDir, "data.txt"), []byte("some data"), 0o444); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	watDirs, noWat = assembleWat(tmp)
	if noWat != "" {
		fmt.Fprintf(os.Stderr, "wasm tests: the .wat guests are skipped: %s\n", noWat)
	}
	return m.Run()
}

// buildGo builds the Go program in src for wasip1 as dir/main.wasm, with
// more go build flags if given.
func buildGo(src, dir string, flags ...string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	args := append(append([]string{"build"}, flags...), "-o", filepath.Join(abs, "main.wasm"), ".")
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for wasip1: %v\n%s", src, err, out)
	}
	return nil
}

// assembleWat assembles the .wat guests with wabt's wat2wasm, or says why
// it cannot.
func assembleWat(tmp string) (map[string]string, string) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		return nil, "wat2wasm is not installed (Debian/Ubuntu: apt-get install wabt)"
	}
	srcs := map[string]string{"hello": "../../../examples/hello-wasm-wat/hello.wat"}
	files, err := filepath.Glob("testdata/*.wat")
	if err != nil {
		return nil, err.Error()
	}
	for _, f := range files {
		srcs[strings.TrimSuffix(filepath.Base(f), ".wat")] = f
	}
	dirs := make(map[string]string)
	for name, src := range srcs {
		dir := filepath.Join(tmp, "wat-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err.Error()
		}
		if out, err := exec.Command(wat2wasm, src, "-o", filepath.Join(dir, "main.wasm")).CombinedOutput(); err != nil {
			return nil, fmt.Sprintf("wat2wasm %s: %v: %s", src, err, out)
		}
		dirs[name] = dir
	}
	return dirs, ""
}

// watDir returns the dir of an assembled .wat guest, or skips the test.
func watDir(t testing.TB, name string) string {
	t.Helper()
	if noWat != "" {
		t.Skipf("needs the .wat guests: %s", noWat)
	}
	dir, ok := watDirs[name]
	if !ok {
		t.Fatalf("no .wat guest %q", name)
	}
	return dir
}

func newDriver(t testing.TB, cacheDir string) *Driver {
	t.Helper()
	d, err := New(Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// logs collects what an instance logs.
type logs struct {
	mu    sync.Mutex
	lines []runtime.Line
}

func (l *logs) log(line runtime.Line) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

// texts returns the text of the lines tagged with requestID.
func (l *logs) texts(requestID string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if line.RequestID == requestID {
			out = append(out, line.Text)
		}
	}
	return out
}

// start starts an instance of the module in dir, with defaults for what
// spec leaves out, and stops it when the test ends.
func start(t testing.TB, d *Driver, dir string, spec runtime.Spec) runtime.Instance {
	t.Helper()
	spec.CodeDir = dir
	if spec.Handler == "" {
		spec.Handler = "main.wasm"
	}
	if spec.Function == "" {
		spec.Function = "fn"
	}
	if spec.InstanceID == "" {
		spec.InstanceID = "inst-1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return inst
}

func invoke(inst runtime.Instance, id, payload string, timeout time.Duration) runtime.Result {
	return inst.Invoke(context.Background(), runtime.Invocation{
		RequestID: id, Payload: []byte(payload), Deadline: time.Now().Add(timeout),
	})
}

// errorDoc is Lambda's error document.
type errorDoc struct {
	Message string   `json:"errorMessage"`
	Type    string   `json:"errorType"`
	Stack   []string `json:"stackTrace"`
}

func parseError(t testing.TB, r runtime.Result) errorDoc {
	t.Helper()
	var doc errorDoc
	if err := json.Unmarshal(r.Payload, &doc); err != nil {
		t.Fatalf("error payload %q: %v", r.Payload, err)
	}
	if doc.Type != r.ErrorType {
		t.Errorf("errorType in the payload = %q, ErrorType = %q", doc.Type, r.ErrorType)
	}
	return doc
}

func TestContract(t *testing.T) {
	tests := []struct {
		name        string
		dir         func(t testing.TB) string
		payload     string
		want        string // the payload, or on error the errorMessage
		wantErrType string
		wantLogs    []string
	}{
		{
			name: "go example", dir: func(testing.TB) string { return exampleDir },
			payload: `{"name":"ada"}`, want: `{"greeting":"hello, ada"}` + "\n",
			wantLogs: []string{"greeting ada in hello"},
		},
		{
			name: "go example, function URL", dir: func(testing.TB) string { return exampleDir },
			payload: `{"version":"2.0","rawPath":"/","queryStringParameters":{"name":"bob"},"requestContext":{"http":{"method":"GET","path":"/"}}}`,
			want:    `{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"hello, bob\n"}` + "\n",
		},
		{
			name: "go example, bad event", dir: func(testing.TB) string { return exampleDir },
			payload: `[1]`, wantErrType: runtime.ErrTypeExit,
			want:     "event is not an object with a name: json: cannot unmarshal array into Go value of type struct { Name string \"json:\\\"name\\\"\" }",
			wantLogs: []string{"event is not an object with a name: json: cannot unmarshal array into Go value of type struct { Name string \"json:\\\"name\\\"\" }"},
		},
		{
			name: "wat example", dir: func(t testing.TB) string { return watDir(t, "hello") },
			payload: `{"name":"ada"}`, want: `{"greeting":"hello from wat"}`,
		},
		{
			name: "stderr lines, the last without a newline", dir: func(testing.TB) string { return guestDir },
			payload: `{"mode":"log"}`, want: `"logged"` + "\n",
			wantLogs: []string{"first line", "second line", "no newline at the end"},
		},
		{
			name: "empty stdout", dir: func(testing.TB) string { return guestDir },
			payload: `{"mode":"empty"}`, want: `null`,
		},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			inst := start(t, d, tt.dir(t), runtime.Spec{Function: "hello", Log: l.log})
			// Twice, as each invocation is a new instantiation.
			for n := range 2 {
				id := fmt.Sprintf("req-%d", n)
				got := invoke(inst, id, tt.payload, 10*time.Second)
				if got.ErrorType != tt.wantErrType {
					t.Fatalf("ErrorType = %q (%s), want %q", got.ErrorType, got.Payload, tt.wantErrType)
				}
				if !got.Reusable {
					t.Errorf("Reusable = false")
				}
				if tt.wantErrType == "" {
					if string(got.Payload) != tt.want {
						t.Errorf("Payload = %q, want %q", got.Payload, tt.want)
					}
				} else if doc := parseError(t, got); doc.Message != tt.want {
					t.Errorf("errorMessage = %q, want %q", doc.Message, tt.want)
				}
				if got := l.texts(id); !slices.Equal(got, tt.wantLogs) {
					t.Errorf("logs of %s = %q, want %q", id, got, tt.wantLogs)
				}
				if got.MaxMemoryMB <= 0 || got.MaxMemoryMB > 128 {
					t.Errorf("MaxMemoryMB = %d, want 1…128", got.MaxMemoryMB)
				}
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	d := newDriver(t, sharedCache)
	inst := start(t, d, guestDir, runtime.Spec{
		Function: "greeter", Version: "7", MemoryMB: 256, InstanceID: "i-42",
		Env: map[string]string{"GREETING": "hi", "AWS_REGION": "mars-1", "LAMBDA_TASK_ROOT": "/x"},
	})
	type echo struct {
		Env      map[string]string `json:"env"`
		Args     []string          `json:"args"`
		Cwd      string            `json:"cwd"`
		Data     string            `json:"data"`
		ReadErr  string            `json:"readErr"`
		WriteErr string            `json:"writeErr"`
		Unix     int64             `json:"unix"`
		Rand     string            `json:"rand"`
		Event    json.RawMessage   `json:"event"`
	}
	var echoes []echo
	for _, trace := range []string{"Root=1-abc", ""} {
		before := time.Now().Unix()
		r := inst.Invoke(context.Background(), runtime.Invocation{RequestID: "r", Payload: []byte(`{"mode":"echo"}`),
			Deadline: time.Now().Add(10 * time.Second), TraceID: trace})
		if r.Failed() {
			t.Fatalf("Invoke: %s", r.Payload)
		}
		var e echo
		if err := json.Unmarshal(r.Payload, &e); err != nil {
			t.Fatalf("answer %q: %v", r.Payload, err)
		}
		if e.Unix < before || e.Unix > time.Now().Unix() {
			t.Errorf("the guest's clock says %d, the host's %d", e.Unix, before)
		}
		if got := e.Env["_X_AMZN_TRACE_ID"]; got != trace {
			t.Errorf("_X_AMZN_TRACE_ID = %q, want %q", got, trace)
		}
		echoes = append(echoes, e)
	}
	e := echoes[0]
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "greeter",
		"AWS_LAMBDA_FUNCTION_VERSION":     "7",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"_HANDLER":                        "main.wasm",
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"LAMBDA_TASK_ROOT":                "/var/task",
		"GREETING":                        "hi",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/greeter",
		"AWS_EXECUTION_ENV":               "AWS_Lambda_wasm",
	}
	for k, v := range want {
		if got := e.Env[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if v, ok := e.Env["AWS_LAMBDA_RUNTIME_API"]; ok {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want it unset", v)
	}
	if !strings.HasSuffix(e.Env["AWS_LAMBDA_LOG_STREAM_NAME"], "/[7]i-42") {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", e.Env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	if e.Cwd != "/var/task" || e.Data != "some data" || e.ReadErr != "" {
		t.Errorf("cwd %q, data.txt %q (err %q), want /var/task and the code's file", e.Cwd, e.Data, e.ReadErr)
	}
	if e.WriteErr == "" {
		t.Errorf("writing to /var/task worked, want it read-only")
	}
	if !slices.Equal(e.Args, []string{"main.wasm"}) {
		t.Errorf("args = %q", e.Args)
	}
	if string(e.Event) != `{"mode":"echo"}` {
		t.Errorf("event = %s", e.Event)
	}
	if e.Rand == echoes[1].Rand || e.Rand == strings.Repeat("0", 32) {
		t.Errorf("random bytes %s then %s: want the host's randomness", e.Rand, echoes[1].Rand)
	}
}

func TestFreshInstancePerInvocation(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t testing.TB) string
		want string
	}{
		{"go global", func(testing.TB) string { return guestDir }, "1\n"},
		{"wat global and memory", func(t testing.TB) string { return watDir(t, "counter") }, `{"global":1,"memory":1}`},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := start(t, d, tt.dir(t), runtime.Spec{})
			for n := range 3 {
				r := invoke(inst, fmt.Sprint(n), `{"mode":"counter"}`, 10*time.Second)
				if r.Failed() || string(r.Payload) != tt.want {
					t.Fatalf("invocation %d: %s (%s), want %s", n, r.Payload, r.ErrorType, tt.want)
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name     string
		dir      func(t testing.TB) string
		payload  string
		timeout  time.Duration
		memoryMB int
		wantType string
		wantMsg  string // the errorMessage has it
		wantLogs []string
		check    func(t *testing.T, r runtime.Result, doc errorDoc, took time.Duration)
	}{
		{
			name: "go exits non-zero", dir: func(testing.TB) string { return guestDir }, payload: `{"mode":"exit"}`,
			wantType: runtime.ErrTypeExit, wantMsg: "bad thing happened",
			wantLogs: []string{"something went wrong", "bad thing happened"},
			check: func(t *testing.T, _ runtime.Result, doc errorDoc, _ time.Duration) {
				if doc.Message != "bad thing happened" {
					t.Errorf("errorMessage = %q, want stderr's last line", doc.Message)
				}
			},
		},
		{
			name: "go panics", dir: func(testing.TB) string { return guestDir }, payload: `{"mode":"panic"}`,
			wantType: runtime.ErrTypeExit, wantMsg: "panic: boom",
		},
		{
			name: "wat traps", dir: func(t testing.TB) string { return watDir(t, "trap") },
			wantType: ErrTypeTrap, wantMsg: "wasm trap: unreachable", wantLogs: []string{"about to trap"},
			check: func(t *testing.T, _ runtime.Result, doc errorDoc, _ time.Duration) {
				if len(doc.Stack) == 0 || !strings.Contains(doc.Stack[0], "$1") {
					t.Errorf("stackTrace = %q, want the trapping function first", doc.Stack)
				}
			},
		},
		{
			// The same without wabt.
			name: "hand-written module traps", dir: func(t testing.TB) string { return codeDir(t, startModule(0x00, 0x0b)) },
			wantType: ErrTypeTrap, wantMsg: "wasm trap: unreachable",
		},
		{
			name:    "hand-written module loops past the deadline",
			dir:     func(t testing.TB) string { return codeDir(t, startModule(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b)) },
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeTimeout, wantMsg: "Task timed out after 0.30 seconds",
		},
		{
			name: "go spins past the deadline", dir: func(testing.TB) string { return guestDir }, payload: `{"mode":"spin"}`,
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeTimeout, wantMsg: "Task timed out after 0.30 seconds",
		},
		{
			name: "go sleeps past the deadline", dir: func(testing.TB) string { return guestDir }, payload: `{"mode":"sleep"}`,
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeTimeout, wantMsg: "Task timed out after 0.30 seconds",
		},
		{
			name: "wat loops past the deadline", dir: func(t testing.TB) string { return watDir(t, "loop") },
			timeout: 300 * time.Millisecond, wantType: runtime.ErrTypeTimeout, wantMsg: "Task timed out after 0.30 seconds",
		},
		{
			name: "wat grows past the memory", dir: func(t testing.TB) string { return watDir(t, "grow") },
			memoryMB: 128, wantType: runtime.ErrTypeOutOfMemory, wantMsg: "memory limit of 128 MB reached",
			check: func(t *testing.T, r runtime.Result, _ errorDoc, _ time.Duration) {
				if r.MaxMemoryMB != 128 {
					t.Errorf("MaxMemoryMB = %d, want 128", r.MaxMemoryMB)
				}
			},
		},
		{
			name: "go allocates past the memory", dir: func(testing.TB) string { return guestDir }, payload: `{"mode":"alloc","mb":200}`,
			memoryMB: 128, wantType: runtime.ErrTypeOutOfMemory, wantMsg: "memory limit of 128 MB reached",
		},
		{
			name: "response too large", dir: func(testing.TB) string { return guestDir }, payload: `{"mode":"big"}`,
			wantType: runtime.ErrTypeResponseTooLarge, wantMsg: "Response payload size exceeded maximum allowed payload size (6291456 bytes).",
		},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l logs
			timeout := cmp.Or(tt.timeout, 10*time.Second)
			inst := start(t, d, tt.dir(t), runtime.Spec{Log: l.log, MemoryMB: tt.memoryMB, Timeout: timeout})
			begin := time.Now()
			r := invoke(inst, "req-1", cmp.Or(tt.payload, "{}"), timeout)
			took := time.Since(begin)
			if r.ErrorType != tt.wantType {
				t.Fatalf("ErrorType = %q (%s), want %q", r.ErrorType, r.Payload, tt.wantType)
			}
			doc := parseError(t, r)
			if !strings.Contains(doc.Message, tt.wantMsg) {
				t.Errorf("errorMessage = %q, want it to have %q", doc.Message, tt.wantMsg)
			}
			if tt.wantLogs != nil {
				if got := l.texts("req-1"); !slices.Equal(got, tt.wantLogs) {
					t.Errorf("logs = %q, want %q", got, tt.wantLogs)
				}
			}
			if tt.timeout > 0 && took > tt.timeout+time.Second {
				t.Errorf("took %v, over the %v deadline", took, tt.timeout)
			}
			if !r.Reusable {
				t.Errorf("Reusable = false, want true: the next invocation is a new instantiation")
			}
			if tt.check != nil {
				tt.check(t, r, doc, took)
			}
			// The node, the driver and the instance are as good as before.
			select {
			case <-inst.Done():
				t.Fatalf("the instance is done")
			default:
			}
			ok := start(t, d, exampleDir, runtime.Spec{InstanceID: "after"})
			if r := invoke(ok, "req-2", `{"name":"again"}`, 10*time.Second); r.Failed() {
				t.Errorf("an invocation after: %s", r.Payload)
			}
		})
	}
}

func TestInvokeBeyondItsDeadline(t *testing.T) {
	d := newDriver(t, sharedCache)
	inst := start(t, d, guestDir, runtime.Spec{Timeout: time.Second})
	r := inst.Invoke(context.Background(), runtime.Invocation{RequestID: "late", Payload: []byte(`{}`), Deadline: time.Now().Add(-time.Millisecond)})
	if r.ErrorType != runtime.ErrTypeTimeout || !r.Reusable {
		t.Fatalf("ErrorType %q, Reusable %v, want %q and true", r.ErrorType, r.Reusable, runtime.ErrTypeTimeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = inst.Invoke(ctx, runtime.Invocation{RequestID: "gone", Payload: []byte(`{}`), Deadline: time.Now().Add(time.Second)})
	if r.ErrorType != runtime.ErrTypeExit || !r.Reusable || !strings.Contains(string(r.Payload), "abandoned before it started") {
		t.Fatalf("caller gone: %s (Reusable %v)", r.Payload, r.Reusable)
	}
}

func TestStopDuringAnInvocation(t *testing.T) {
	d := newDriver(t, sharedCache)
	inst := start(t, d, guestDir, runtime.Spec{})
	res := make(chan runtime.Result, 1)
	go func() { res <- invoke(inst, "spin", `{"mode":"spin"}`, time.Minute) }()
	time.Sleep(200 * time.Millisecond) // let it spin
	begin := time.Now()
	if err := inst.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Stop took %v", took)
	}
	select {
	case <-inst.Done():
	default:
		t.Errorf("Done is not closed after Stop")
	}
	r := <-res
	if r.ErrorType != runtime.ErrTypeExit || !strings.Contains(string(r.Payload), "instance stopped") {
		t.Errorf("the stopped invocation: %s %s", r.ErrorType, r.Payload)
	}
	r = invoke(inst, "after", `{}`, time.Second)
	if !r.Undelivered || r.ErrorType == "" {
		t.Errorf("an invocation after Stop: %+v, want an undelivered error", r)
	}
	if err := inst.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}

// tinyModule writes a WebAssembly module by hand: one type, func(), for
// every function; the imports named; one function, exported as export,
// that does nothing; a memory of minPages if it is not 0; and a custom
// section holding nonce, which makes a module new to any cache.
func tinyModule(export string, minPages int, nonce string, imports ...string) []byte {
	leb, name, section := uleb, wasmName, wasmSection
	m := [][]byte{
		[]byte("\x00asm\x01\x00\x00\x00"),
		section(1, []byte{1, 0x60, 0, 0}), // types: func()
	}
	if len(imports) > 0 {
		p := [][]byte{leb(len(imports))}
		for _, imp := range imports {
			mod, fn, _ := strings.Cut(imp, ".")
			p = append(p, name(mod), name(fn), []byte{0, 0}) // a func of type 0
		}
		m = append(m, section(2, p...))
	}
	m = append(m, section(3, []byte{1, 0})) // one function of type 0
	if minPages > 0 {
		m = append(m, section(5, []byte{1, 0}, leb(minPages))) // one memory, no maximum
	}
	m = append(m,
		section(7, []byte{1}, name(export), []byte{0}, leb(len(imports))), // export the function
		section(10, []byte{1, 2, 0, 0x0b}),                                // its body: no locals, end
	)
	if nonce != "" {
		m = append(m, section(0, name("nonce"), []byte(nonce)))
	}
	return bytes.Join(m, nil)
}

// uleb encodes n in unsigned LEB128.
func uleb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// wasmName encodes a name: its length, then its bytes.
func wasmName(s string) []byte { return append(uleb(len(s)), s...) }

// wasmSection encodes a section: its id, its size, its payload.
func wasmSection(id byte, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	return append(append([]byte{id}, uleb(len(p))...), p...)
}

// codeDir writes a module as main.wasm in a new dir.
func codeDir(t testing.TB, module []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.wasm"), module, 0o444); err != nil {
		t.Fatal(err)
	}
	return dir
}

func nonce(t testing.TB) string {
	t.Helper()
	return rand.Text()
}

func TestCompilationCache(t *testing.T) {
	cacheDir := t.TempDir()
	module := tinyModule("_start", 1, nonce(t))
	dirA, dirB := codeDir(t, module), codeDir(t, module)

	d1 := newDriver(t, cacheDir)
	first := start(t, d1, dirA, runtime.Spec{InstanceID: "a1"})
	if got := d1.Compiles(); got != 1 {
		t.Fatalf("Compiles after the first Start = %d, want 1", got)
	}
	// Another instance of it, and the same module in another code dir:
	// no compilation.
	second := start(t, d1, dirA, runtime.Spec{InstanceID: "a2"})
	start(t, d1, dirB, runtime.Spec{InstanceID: "b1"})
	if got := d1.Compiles(); got != 1 {
		t.Errorf("Compiles after more Starts = %d, want 1", got)
	}
	for _, inst := range []runtime.Instance{first, second} {
		if r := invoke(inst, "r", `{}`, 5*time.Second); r.Failed() || string(r.Payload) != "null" {
			t.Errorf("Invoke: %s %s", r.ErrorType, r.Payload)
		}
	}

	// A restarted node: a new driver on the same dir.
	d2 := newDriver(t, cacheDir)
	inst := start(t, d2, dirA, runtime.Spec{})
	if got := d2.Compiles(); got != 0 {
		t.Errorf("Compiles of a second driver on the cache = %d, want 0", got)
	}
	if r := invoke(inst, "r", `{}`, 5*time.Second); r.Failed() {
		t.Errorf("Invoke: %s", r.Payload)
	}
	// A new module is compiled.
	start(t, d2, codeDir(t, tinyModule("_start", 1, nonce(t))), runtime.Spec{})
	if got := d2.Compiles(); got != 1 {
		t.Errorf("Compiles after a new module = %d, want 1", got)
	}
}

func TestConcurrentInstances(t *testing.T) {
	d := newDriver(t, sharedCache)
	dir := codeDir(t, tinyModule("_start", 1, nonce(t)))
	var (
		wg    sync.WaitGroup
		insts = make([]runtime.Instance, 8)
		errs  = make([]error, len(insts))
	)
	for n := range insts {
		wg.Go(func() {
			insts[n], errs[n] = d.Start(context.Background(), runtime.Spec{Function: "fn", CodeDir: dir, Handler: "main.wasm"})
		})
	}
	wg.Wait()
	for n, err := range errs {
		if err != nil {
			t.Fatalf("Start %d: %v", n, err)
		}
		t.Cleanup(func() { insts[n].Stop() })
	}
	if got := d.Compiles(); got != 1 {
		t.Errorf("Compiles = %d for 8 concurrent Starts, want 1", got)
	}
	var l logs
	go1 := start(t, d, guestDir, runtime.Spec{Log: l.log, InstanceID: "go-1"})
	go2 := start(t, d, guestDir, runtime.Spec{Log: l.log, InstanceID: "go-2"})
	for _, inst := range append(insts, go1, go2) {
		wg.Go(func() {
			for n := range 5 {
				id := fmt.Sprintf("%p-%d", inst, n)
				if r := invoke(inst, id, `{"mode":"log"}`, 10*time.Second); r.Failed() {
					t.Errorf("Invoke: %s", r.Payload)
				}
			}
		})
	}
	wg.Wait()
	for n := range 5 {
		id := fmt.Sprintf("%p-%d", go1, n)
		if got := l.texts(id); len(got) != 3 {
			t.Errorf("logs of %s = %q, want its own 3 lines", id, got)
		}
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string][]byte
		handler  string
		memoryMB int
		wantType string // of the *runtime.InitError; "" for another error
		wantMsg  string
	}{
		{name: "no such file", files: map[string][]byte{}, handler: "main.wasm",
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "the code has no main.wasm"},
		{name: "no handler", files: map[string][]byte{}, handler: "",
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "no handler"},
		{name: "handler outside the code", files: map[string][]byte{}, handler: "../main.wasm",
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "not a path inside the code"},
		{name: "not wasm", files: map[string][]byte{"main.wasm": []byte("#!/bin/sh\necho hi\n")}, handler: "main.wasm",
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "not a WebAssembly module"},
		{name: "not WASI", files: map[string][]byte{"main.wasm": tinyModule("_start", 1, "", "env.foo")}, handler: "main.wasm",
			wantType: runtime.ErrTypeInvalidEntrypoint, wantMsg: "it imports env.foo: only WASI preview 1"},
		{name: "memory over the function's", files: map[string][]byte{"main.wasm": tinyModule("_start", 3000, "")}, handler: "main.wasm",
			memoryMB: 128, wantType: runtime.ErrTypeOutOfMemory, wantMsg: "the module needs 188 MB of memory to start, over the function's 128 MB"},
	}
	d := newDriver(t, sharedCache)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o444); err != nil {
					t.Fatal(err)
				}
			}
			inst, err := d.Start(context.Background(), runtime.Spec{Function: "fn", CodeDir: dir, Handler: tt.handler, MemoryMB: tt.memoryMB})
			if err == nil {
				inst.Stop()
				t.Fatalf("Start worked, want an error")
			}
			ie, ok := errors.AsType[*runtime.InitError](err)
			if !ok || ie.Type != tt.wantType || !strings.Contains(ie.Message, tt.wantMsg) {
				t.Fatalf("Start: %v, want an InitError %s with %q", err, tt.wantType, tt.wantMsg)
			}
			if !json.Valid(ie.Payload) {
				t.Errorf("InitError payload %q is not JSON", ie.Payload)
			}
		})
	}
	// The module too large for 128 MB fits in 256.
	dir := codeDir(t, tinyModule("_start", 3000, ""))
	inst := start(t, d, dir, runtime.Spec{MemoryMB: 256})
	if r := invoke(inst, "r", `{}`, 5*time.Second); r.Failed() || r.MaxMemoryMB != 188 {
		t.Errorf("Invoke: %s, MaxMemoryMB %d, want success and 188", r.Payload, r.MaxMemoryMB)
	}
}

func TestValidate(t *testing.T) {
	read := func(dir string) func(t testing.TB) []byte {
		return func(t testing.TB) []byte {
			b, err := os.ReadFile(filepath.Join(dir, "main.wasm"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	bin := func(b []byte) func(testing.TB) []byte { return func(testing.TB) []byte { return b } }
	tests := []struct {
		name    string
		module  func(t testing.TB) []byte
		wantErr string // "" to accept
	}{
		{"go example", read(exampleDir), ""},
		{"go test guest", read(guestDir), ""},
		{"wat example", func(t testing.TB) []byte { return read(watDir(t, "hello"))(t) }, ""},
		{"a module importing nothing", bin(tinyModule("_start", 0, "")), ""},
		{"empty", bin(nil), "not a WebAssembly module"},
		{"garbage", bin([]byte("garbage, not a module at all")), "not a WebAssembly module"},
		{"a component", bin([]byte("\x00asm\x0d\x00\x01\x00")), "a WebAssembly component (WASI preview 2)"},
		{"a future version", bin([]byte("\x00asm\x02\x00\x00\x00")), "unsupported WebAssembly binary version 2"},
		{"truncated", func(t testing.TB) []byte { b := read(exampleDir)(t); return b[:len(b)/2] }, "invalid WebAssembly module"},
		{"imports env.foo", bin(tinyModule("_start", 1, "", "wasi_snapshot_preview1.fd_close", "env.foo")),
			"it imports env.foo: only WASI preview 1 (wasi_snapshot_preview1) is provided"},
		{"WASI preview 0", bin(tinyModule("_start", 1, "", "wasi_unstable.fd_write")), "wasi_unstable (WASI preview 0)"},
		{"an unknown WASI function", bin(tinyModule("_start", 1, "", "wasi_snapshot_preview1.no_such_thing")),
			"it imports no_such_thing from wasi_snapshot_preview1, which the host does not provide"},
		{"a WASI function with the wrong signature", bin(tinyModule("_start", 1, "", "wasi_snapshot_preview1.fd_write")),
			"it imports wasi_snapshot_preview1.fd_write as func(), but it is func(i32, i32, i32, i32) i32"},
		{"a reactor without the reuse ABI", bin(tinyModule("_initialize", 1, "")), "it exports no _start"},
		{"the go reuse example", read(reuseExampleDir), ""},
		{"the go reuse test guest", read(reuseGuestDir), ""},
		{"a reactor without _initialize", func(t testing.TB) []byte { return read(watDir(t, "reactor"))(t) }, ""},
		{"wisp_handle of the wrong type", bin(tinyModule("wisp_handle", 1, "")),
			"its wisp_handle is func(), not func(i32, i32) i64"},
		// A few bytes that claim a lot: refused before wazero allocates.
		{"200 million imports", bin(append([]byte("\x00asm\x01\x00\x00\x00"), wasmSection(2, uleb(200_000_000))...)),
			"import section: 200000000 imports, over the limit of 100000"},
		{"more functions than bytes", bin(append([]byte("\x00asm\x01\x00\x00\x00"), wasmSection(3, uleb(1000), []byte{0, 0})...)),
			"function section: 1000 functions in 2 bytes"},
		{"4 billion locals", bin(bytes.Join([][]byte{
			[]byte("\x00asm\x01\x00\x00\x00"),
			wasmSection(1, []byte{1, 0x60, 0, 0}),
			wasmSection(3, []byte{1, 0}),
			wasmSection(10, []byte{1, 8, 1}, uleb(1<<32-1), []byte{0x7f, 0x0b}),
		}, nil)), "code section: a function has more than 50000 locals"},
		{"a 4 GB data segment", bin(dataModule(1, nil, bytes.Join([][]byte{{0, 0x41, 0, 0x0b}, uleb(1<<32 - 1)}, nil))),
			"data section: unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(context.Background(), tt.module(t))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// startModule is a module whose _start runs code, the instructions of
// its body.
func startModule(code ...byte) []byte {
	body := append([]byte{0}, code...) // no locals
	return bytes.Join([][]byte{
		[]byte("\x00asm\x01\x00\x00\x00"),
		wasmSection(1, []byte{1, 0x60, 0, 0}),
		wasmSection(3, []byte{1, 0}),
		wasmSection(7, []byte{1}, wasmName("_start"), []byte{0, 0}),
		wasmSection(10, []byte{1}, wasmName(string(body))),
	}, nil)
}

// loopingStart is a module whose start section never ends.
func loopingStart() []byte {
	return bytes.Join([][]byte{
		[]byte("\x00asm\x01\x00\x00\x00"),
		wasmSection(1, []byte{1, 0x60, 0, 0}),
		wasmSection(3, []byte{2, 0, 0}),
		wasmSection(7, []byte{1}, wasmName("_start"), []byte{0, 1}),
		wasmSection(8, []byte{0}), // start: function 0
		// Function 0 loops forever, function 1 does nothing.
		wasmSection(10, []byte{2, 7, 0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, 2, 0, 0x0b}),
	}, nil)
}

func TestValidateEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := Validate(ctx, loopingStart())
	if err == nil || !strings.Contains(err.Error(), "cannot instantiate") {
		t.Errorf("Validate: %v, want it to fail instantiating", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Validate took %v", took)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(tinyModule("_start", 1, ""))
	f.Add(tinyModule("_start", 0, "", "wasi_snapshot_preview1.fd_write", "env.foo"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, module []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		Validate(ctx, module) // must not panic, or hang
	})
}

func TestClosedDriver(t *testing.T) {
	d, err := New(Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := d.Start(context.Background(), runtime.Spec{Function: "fn", CodeDir: exampleDir, Handler: "main.wasm"}); err == nil {
		t.Errorf("Start on a closed driver worked")
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Errorf("New without a CacheDir worked")
	}
}

// TestMeasure reports the figures of the fast path. It measures, so it
// runs only when asked: WISP_WASM_MEASURE=1 go test -run Measure -v.
func TestMeasure(t *testing.T) {
	if os.Getenv("WISP_WASM_MEASURE") == "" {
		t.Skip("set WISP_WASM_MEASURE=1 to measure")
	}
	// Compilation of the Go example: fresh cache, then a second driver.
	cacheDir := t.TempDir()
	var cd *Driver
	for _, what := range []string{"compile (empty cache)", "cache hit (new driver)", "in memory (same driver)"} {
		if what != "in memory (same driver)" {
			cd = newDriver(t, cacheDir)
		}
		inst := start(t, cd, exampleDir, runtime.Spec{InstanceID: what})
		t.Logf("Go example Start, %s: %v (Compiles %d)", what, inst.InitDuration(), cd.Compiles())
	}
	begin := time.Now()
	b, err := os.ReadFile(filepath.Join(exampleDir, "main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	t.Logf("Validate of the Go example (%d bytes): %v", len(b), time.Since(begin))

	d := newDriver(t, sharedCache)
	for _, g := range []struct{ name, dir, payload string }{
		{"wat hello", watDir(t, "hello"), `{"name":"ada"}`},
		{"go example", exampleDir, `{"name":"ada"}`},
	} {
		inst := start(t, d, g.dir, runtime.Spec{InstanceID: g.name})
		var took []time.Duration
		for n := range 220 {
			begin := time.Now()
			r := invoke(inst, "r", g.payload, 10*time.Second)
			if n >= 20 { // after a warm-up
				took = append(took, time.Since(begin))
			}
			if r.Failed() {
				t.Fatalf("%s: %s", g.name, r.Payload)
			}
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		t.Logf("%s: fresh-instance Invoke over %d runs: p50 %v, p90 %v, p99 %v", g.name, len(took),
			took[len(took)/2], took[len(took)*9/10], took[len(took)*99/100])
	}
}
