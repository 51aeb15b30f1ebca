package cli

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestNameFromDir(t *testing.T) {
	tests := []struct {
		dir     string
		want    string
		wantErr bool
	}{
		{dir: "/src/hello", want: "hello"},
		{dir: "/src/Hello-World", want: "hello-world"},
		{dir: "/src/hello/", want: "hello"},
		{dir: "/src/x" + strings.Repeat("y", 62), want: "x" + strings.Repeat("y", 62)},
		{dir: "/src/x" + strings.Repeat("y", 63), wantErr: true},
		{dir: "/src/my_app", wantErr: true},
		{dir: "/src/2fast", wantErr: true},
		{dir: "/src/my app", wantErr: true},
		{dir: "/", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, err := nameFromDir(tt.dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("nameFromDir(%q) = %q, %v; want an error: %v", tt.dir, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("nameFromDir(%q) = %q, want %q", tt.dir, got, tt.want)
			}
		})
	}
}

// deployNode is a fake node for deploy: it knows at most one function,
// records the calls it gets and what was uploaded.
type deployNode struct {
	t *testing.T

	mu       sync.Mutex
	exists   bool                   // whether the function exists; guarded by mu
	quota    string                 // the existing function's quota as JSON, if any
	calls    []string               // "METHOD /path If-Match"; guarded by mu
	config   map[string]any         // the last config sent; guarded by mu
	code     map[string]string      // the last code uploaded, by entry; guarded by mu
	codeMode map[string]os.FileMode // guarded by mu
}

// ServeHTTP runs in the server's goroutines, so it reports with Errorf.

func (n *deployNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("If-Match")))
	const fn = `{"name":"hello","runtime":"nodejs","code_sha256":"abc123","revision":%d}`
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/functions/hello":
		if !n.exists {
			answer(w, 404, `{"type":"ResourceNotFoundException","message":"function \"hello\" not found"}`)
			return
		}
		f := strings.Replace(fn, "%d", "4", 1)
		if n.quota != "" {
			f = strings.Replace(f, "{", `{"quota":`+n.quota+",", 1)
		}
		answer(w, 200, f)
	case r.Method == "POST" && r.URL.Path == "/v1/functions":
		_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil {
			n.t.Errorf("POST Content-Type: %v", err)
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				n.t.Errorf("reading the upload: %v", err)
				break
			}
			b, err := io.ReadAll(p)
			if err != nil {
				n.t.Errorf("reading part %s: %v", p.FormName(), err)
			}
			switch p.FormName() {
			case "config":
				n.decodeConfig(b)
			case "code":
				n.unzip(b)
			}
		}
		n.exists = true
		answer(w, 201, strings.Replace(fn, "%d", "1", 1))
	case r.Method == "PUT" && r.URL.Path == "/v1/functions/hello/code":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			n.t.Errorf("reading the code: %v", err)
		}
		n.unzip(b)
		answer(w, 200, strings.Replace(fn, "%d", "5", 1))
	case r.Method == "PATCH" && r.URL.Path == "/v1/functions/hello":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			n.t.Errorf("reading the config: %v", err)
		}
		n.decodeConfig(b)
		answer(w, 200, strings.Replace(fn, "%d", "6", 1))
	default:
		n.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		answer(w, 500, `{}`)
	}
}

func (n *deployNode) decodeConfig(b []byte) {
	n.config = nil
	if err := json.Unmarshal(b, &n.config); err != nil {
		n.t.Errorf("config %s: %v", b, err)
	}
}

func (n *deployNode) unzip(b []byte) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		n.t.Errorf("the code is not a zip: %v", err)
		return
	}
	n.code, n.codeMode = map[string]string{}, map[string]os.FileMode{}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			n.t.Errorf("opening %s: %v", f.Name, err)
			continue
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			n.t.Errorf("reading %s: %v", f.Name, err)
		}
		n.code[f.Name] = string(data)
		n.codeMode[f.Name] = f.Mode()
	}
}

// nodeDir makes a directory named hello with a Node.js function in it.
func nodeDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "hello")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.js"), []byte("exports.handler = async () => 'hi'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeploy(t *testing.T) {
	tests := []struct {
		name       string
		exists     bool
		quota      string // the existing function's
		args       []string
		wantCalls  []string
		wantConfig string // the last config sent, as JSON
		wantOut    string
	}{
		{
			name: "create",
			args: []string{"--runtime", "nodejs", "--handler", "index.handler", "--memory", "256",
				"--env", "A=1", "--env", "B=x=y,z", "--url-auth", "none", "--concurrency", "0"},
			wantCalls: []string{"GET /v1/functions/hello", "POST /v1/functions"},
			wantConfig: `{"concurrency":0,"env":{"A":"1","B":"x=y,z"},"handler":"index.handler",` +
				`"memory_mb":256,"name":"hello","runtime":"nodejs","url_auth":"none"}`,
			wantOut: "created hello  sha256:abc123  revision 1\n",
		},
		{
			name:       "update code and the flags given",
			exists:     true,
			args:       []string{"--timeout", "30", "--description", "", "--concurrency", "-1"},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"clear_concurrency":true,"description":"","timeout":30}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name: "create with schedules and async",
			args: []string{"--runtime", "nodejs", "--schedule", "rate(5 minutes)", "--schedule", "cron(0 8 * * ? *)",
				"--timezone", "Europe/Paris", "--catch-up", "--retries", "0", "--max-event-age", "1h", "--on-failure", "topic:failed"},
			wantCalls: []string{"GET /v1/functions/hello", "POST /v1/functions"},
			wantConfig: `{"async":{"max_event_age":3600,"on_failure":"topic:failed","retries":0},"name":"hello","runtime":"nodejs",` +
				`"schedules":[{"catch_up":true,"expression":"rate(5 minutes)","name":"","timezone":"Europe/Paris"},` +
				`{"catch_up":true,"expression":"cron(0 8 * * ? *)","name":"","timezone":"Europe/Paris"}]}`,
			wantOut: "created hello  sha256:abc123  revision 1\n",
		},
		{
			name:       "update removes schedules and clears destinations",
			exists:     true,
			args:       []string{"--schedule", "", "--on-success", "", "--dead-letter", ""},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"async":{"dead_letter":"","on_success":""},"schedules":[]}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name:       "update one async setting",
			exists:     true,
			args:       []string{"--on-success", "function:audit:live"},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"async":{"on_success":"function:audit:live"}}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name: "create with publish grants and queue bounds",
			args: []string{"--runtime", "nodejs", "--publish", "orders,audit.*", "--publish", "audit.>",
				"--max-queued-events", "1000", "--max-queued-bytes", "1048576"},
			wantCalls: []string{"GET /v1/functions/hello", "POST /v1/functions"},
			wantConfig: `{"async":{"max_queued_bytes":1048576,"max_queued_events":1000},"name":"hello",` +
				`"publish":["orders","audit.*","audit.\u003e"],"runtime":"nodejs"}`,
			wantOut: "created hello  sha256:abc123  revision 1\n",
		},
		{
			name:       "update takes the grants back",
			exists:     true,
			args:       []string{"--publish", ""},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"publish":[]}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name:       "create with a quota",
			args:       []string{"--runtime", "nodejs", "--quota-period", "day", "--quota-invocations", "1000", "--quota-async", "fail"},
			wantCalls:  []string{"GET /v1/functions/hello", "POST /v1/functions"},
			wantConfig: `{"name":"hello","quota":{"async":"fail","max_invocations":1000,"period":"day"},"runtime":"nodejs"}`,
			wantOut:    "created hello  sha256:abc123  revision 1\n",
		},
		{
			name:       "update one cap of the quota",
			exists:     true,
			quota:      `{"period":"day","max_invocations":1000,"max_cost":5}`,
			args:       []string{"--quota-cost", "2.5", "--quota-invocations", "0"},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"quota":{"max_cost":2.5,"period":"day"}}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name:       "update removes the quota",
			exists:     true,
			quota:      `{"period":"day","max_invocations":1000}`,
			args:       []string{"--quota-period", ""},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"quota":{"period":""}}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name:       "create with log limits",
			args:       []string{"--runtime", "nodejs", "--log-max-bytes", "64MB", "--log-retention", "72h"},
			wantCalls:  []string{"GET /v1/functions/hello", "POST /v1/functions"},
			wantConfig: `{"logs":{"max_age":259200,"max_bytes":64000000},"name":"hello","runtime":"nodejs"}`,
			wantOut:    "created hello  sha256:abc123  revision 1\n",
		},
		{
			name:       "update sets the log size back to the node's",
			exists:     true,
			args:       []string{"--log-max-bytes", "0"},
			wantCalls:  []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`, `PATCH /v1/functions/hello "5"`},
			wantConfig: `{"logs":{"max_bytes":0}}`,
			wantOut:    "updated hello  sha256:abc123  revision 6\n",
		},
		{
			name:      "update code only",
			exists:    true,
			wantCalls: []string{"GET /v1/functions/hello", `PUT /v1/functions/hello/code "4"`},
			wantOut:   "updated hello  sha256:abc123  revision 5\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &deployNode{t: t, exists: tt.exists, quota: tt.quota}
			dir := nodeDir(t)
			stdout, stderr, err := runCLI(t, fakeNode(t, node.ServeHTTP), append([]string{"deploy", dir}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp deploy: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.wantOut {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantOut)
			}
			node.mu.Lock()
			defer node.mu.Unlock()
			if !slices.Equal(node.calls, tt.wantCalls) {
				t.Errorf("calls = %q, want %q", node.calls, tt.wantCalls)
			}
			if tt.wantConfig != "" {
				if got := jsonString(t, node.config); got != tt.wantConfig {
					t.Errorf("config = %s, want %s", got, tt.wantConfig)
				}
			}
			if got, want := jsonString(t, node.code), `{"index.js":"exports.handler = async () =\u003e 'hi'\n"}`; got != want {
				t.Errorf("code = %s, want %s", got, want)
			}
		})
	}
}

func TestDeployRefuses(t *testing.T) {
	tests := []struct {
		name string
		args func(dir string) []string
		want string
	}{
		{
			name: "create without a runtime",
			args: func(dir string) []string { return []string{dir} },
			want: `wisp: function "hello" does not exist yet: pass --runtime to create it (see 'wisp deploy --help')`,
		},
		{
			name: "a directory that does not name a function",
			args: func(dir string) []string { return []string{filepath.Join(dir, "My_App")} },
			want: `wisp: directory "My_App" does not make a function name ([a-z][a-z0-9-]{0,62}): pass --name (see 'wisp deploy --help')`,
		},
		{
			name: "a bad --name",
			args: func(dir string) []string { return []string{dir, "--name", "Hello"} },
			want: `wisp: function name "Hello" must match [a-z][a-z0-9-]{0,62} (see 'wisp deploy --help')`,
		},
		{
			name: "a quota without a period",
			args: func(dir string) []string { return []string{dir, "--runtime", "nodejs", "--quota-cost", "1"} },
			want: `wisp: --quota-period (hour, day or month) is needed to set a quota (see 'wisp deploy --help')`,
		},
		{
			name: "a log size that is not one",
			args: func(dir string) []string { return []string{dir, "--runtime", "nodejs", "--log-max-bytes", "12XB"} },
			want: `wisp: invalid argument "12XB" for "--log-max-bytes" flag: must be a number of bytes with an optional unit, such as 64MB, 1GiB or 1048576 (see 'wisp deploy --help')`,
		},
		{
			name: "a log retention in fractions of a second",
			args: func(dir string) []string { return []string{dir, "--runtime", "nodejs", "--log-retention", "1.5s"} },
			want: `wisp: --log-retention 1.5s is not whole seconds (see 'wisp deploy --help')`,
		},
		{
			name: "go without go.mod or bootstrap",
			args: func(dir string) []string { return []string{dir, "--runtime", "go"} },
			want: `wisp: runtime go: DIR has neither a go.mod to build nor an executable bootstrap`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &deployNode{t: t}
			dir := nodeDir(t)
			if err := os.Mkdir(filepath.Join(dir, "My_App"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := runCLI(t, fakeNode(t, node.ServeHTTP), append([]string{"deploy"}, tt.args(dir)...)...)
			if err == nil {
				t.Fatal("no error")
			}
			if want := strings.ReplaceAll(tt.want, "DIR", dir) + "\n"; stderr != want {
				t.Errorf("stderr = %q, want %q", stderr, want)
			}
			node.mu.Lock()
			defer node.mu.Unlock()
			if node.exists {
				t.Error("the function was created")
			}
		})
	}
}

func TestDeployGoBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	gocache, err := exec.Command(goBin, "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hello")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"go.mod":    "module example.com/hello\n\ngo 1.22\n",
		"main.go":   "package main\n\nfunc main() {}\n",
		"README.md": "not uploaded\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	node := &deployNode{t: t}
	env := append(fakeNode(t, node.ServeHTTP),
		"PATH="+os.Getenv("PATH"), "GOCACHE="+strings.TrimSpace(string(gocache)),
		"GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=")
	stdout, stderr, err := runCLI(t, env, "deploy", dir, "--runtime", "go")
	if err != nil {
		t.Fatalf("wisp deploy: %v (stderr %q)", err, stderr)
	}
	if want := "created hello  sha256:abc123  revision 1\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	node.mu.Lock()
	defer node.mu.Unlock()
	if got, want := jsonString(t, node.config), `{"handler":"bootstrap","name":"hello","runtime":"go"}`; got != want {
		t.Errorf("config = %s, want %s", got, want)
	}
	if len(node.code) != 1 || !strings.HasPrefix(node.code["bootstrap"], "\x7fELF") {
		t.Errorf("code has %d entries, want just an ELF bootstrap", len(node.code))
	}
	if node.codeMode["bootstrap"]&0o111 == 0 {
		t.Errorf("bootstrap mode = %v, want executable", node.codeMode["bootstrap"])
	}
}
