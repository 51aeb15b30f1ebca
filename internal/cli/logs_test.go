package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/api"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/server"
	"github.com/wisp-dev/wisp/internal/store"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

const logRecords = `{"time":"2026-11-23T17:00:00.123456+01:00","function":"hello","version":"$LATEST","request_id":"8f507cfc","stream":"platform","message":"START RequestId: 8f507cfc Version: $LATEST"}
{"time":"2026-11-23T16:00:00.2Z","function":"hello","version":"$LATEST","request_id":"8f507cfc","stream":"stdout","message":"hi\tthere\n"}
{"time":"2026-11-23T16:00:01Z","function":"hello","version":"1","stream":"stderr","message":"no request"}
`

func TestLogs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantQuery string
		want      string
	}{
		{
			name: "text", args: nil, wantQuery: "",
			want: "" +
				"2026-11-23T16:00:00.123Z  8f507cfc  START RequestId: 8f507cfc Version: $LATEST\n" +
				"2026-11-23T16:00:00.200Z  8f507cfc  hi\\tthere\n" +
				"2026-11-23T16:00:01.000Z  -  no request\n",
		},
		{
			name: "json", args: []string{"-o", "json", "--since", "10m", "--request-id", "8f507cfc"},
			wantQuery: "request_id=8f507cfc&since=10m",
			want: "" +
				`{"time":"2026-11-23T17:00:00.123456+01:00","function":"hello","version":"$LATEST","request_id":"8f507cfc","stream":"platform","message":"START RequestId: 8f507cfc Version: $LATEST"}` + "\n" +
				`{"time":"2026-11-23T16:00:00.2Z","function":"hello","version":"$LATEST","request_id":"8f507cfc","stream":"stdout","message":"hi\tthere\n"}` + "\n" +
				`{"time":"2026-11-23T16:00:01Z","function":"hello","version":"1","stream":"stderr","message":"no request"}` + "\n",
		},
		{
			name: "follow", args: []string{"-f", "--since", "2026-11-23T15:00:00Z"},
			wantQuery: "follow=true&since=2026-11-23T15%3A00%3A00Z",
			want:      "2026-11-23T16:00:00.123Z  8f507cfc  START RequestId: 8f507cfc Version: $LATEST\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "GET" || r.URL.Path != "/v1/functions/hello/logs" || r.URL.RawQuery != tt.wantQuery {
					t.Errorf("request %s %s?%s, want GET /v1/functions/hello/logs?%s", r.Method, r.URL.Path, r.URL.RawQuery, tt.wantQuery)
				}
				w.Header().Set("Content-Type", "application/x-ndjson")
				body := logRecords
				if strings.Contains(r.URL.RawQuery, "follow") {
					// A followed stream that ends (the node shut down) ends wisp cleanly.
					body = strings.SplitAfter(logRecords, "\n")[0]
				}
				io.WriteString(w, body)
			})
			stdout, stderr, err := runCLI(t, env, append([]string{"logs", "hello"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp logs: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
		})
	}
}

func TestLogsErrors(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 400, `{"type":"InvalidParameterValueException","message":"since \"yesterday\" must be a duration back from now (such as 10m, 2h or 7d) or an RFC 3339 time"}`)
	})
	stdout, stderr, err := runCLI(t, env, "logs", "hello", "--since", "yesterday")
	if err == nil {
		t.Fatal("no error")
	}
	want := `wisp: since "yesterday" must be a duration back from now (such as 10m, 2h or 7d) or an RFC 3339 time (InvalidParameterValueException)` + "\n"
	if stderr != want || stdout != "" {
		t.Errorf("stdout %q, stderr %q; want stderr %q", stdout, stderr, want)
	}

	for _, args := range [][]string{{"logs"}, {"logs", "a", "b"}, {"logs", "hello", "-o", "table"}} {
		if _, _, err := runCLI(t, env, args...); err == nil {
			t.Errorf("wisp %s: no error", strings.Join(args, " "))
		}
	}
}

// signalWriter passes writes on and says when the first one happened.
type signalWriter struct {
	strings.Builder
	first chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.Builder.Write(p)
	if w.first != nil {
		close(w.first)
		w.first = nil
	}
	return n, err
}

// TestLogsFollowInterrupted checks that -f prints records as they come and
// that Ctrl-C ends it without an error.
func TestLogsFollowInterrupted(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, strings.SplitAfter(logRecords, "\n")[0])
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // more may come, until the client leaves
	})
	root := newRootCmd(append(env, "HOME="+t.TempDir()), time.Now)
	out := &signalWriter{first: make(chan struct{})}
	first := out.first
	var errOut strings.Builder
	root.SetArgs([]string{"logs", "hello", "-f"})
	root.SetOut(out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- execute(ctx, root) }()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("no record printed while following")
	}
	cancel() // as SIGINT would
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("wisp logs -f: %v (stderr %q)", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wisp logs -f did not end when interrupted")
	}
	if got, want := out.String(), "2026-11-23T16:00:00.123Z  8f507cfc  START RequestId: 8f507cfc Version: $LATEST\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// TestLogsRealHandler runs wisp logs against the real API handler and logs
// on an embedded JetStream.
func TestLogsRealHandler(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.Open(ctx, st.JS, time.Now, log, registry.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := telemetry.OpenLogs(ctx, st.JS, telemetry.LogsConfig{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close(ctx)
	srv := httptest.NewServer(api.New(api.Config{Registry: reg, Logs: logs, AdminToken: "tok", StageDir: t.TempDir(), Logger: log}))
	defer srv.Close()

	at := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	for i, rid := range []string{"r1", "r2", "r1"} {
		logs.Append(telemetry.Record{Time: at.Add(time.Duration(i) * time.Second), Function: "hello", RequestID: rid, Message: "line from " + rid})
	}
	logs.Append(telemetry.Record{Time: at, Function: "other", RequestID: "r1", Message: "not hello's"})
	if err := logs.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	env := []string{"WISP_URL=" + srv.URL, "WISP_TOKEN=tok"}
	stdout, stderr, err := runCLI(t, env, "logs", "hello", "--request-id", "r1")
	if err != nil {
		t.Fatalf("wisp logs: %v (stderr %q)", err, stderr)
	}
	want := "2026-11-23T16:00:00.000Z  r1  line from r1\n2026-11-23T16:00:02.000Z  r1  line from r1\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	stdout, stderr, err = runCLI(t, env, "logs", "hello", "-o", "json", "--since", "1h")
	if err != nil {
		t.Fatalf("wisp logs -o json: %v (stderr %q)", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), stdout)
	}
	var rec telemetry.Record
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.RequestID != "r2" || rec.Function != "hello" {
		t.Errorf("line 2 = %s (%v), want r2's record", lines[1], err)
	}
}

// hostileRecords are log records whose messages try to steer a terminal or
// pass for the node's own lines, and the line wisp logs prints for each.
var hostileRecords = []struct {
	rec  apitype.LogRecord
	want string // the line printed, escaped
}{
	{apitype.LogRecord{Stream: "platform", Message: "START RequestId: 8f507cfc Version: $LATEST"},
		"START RequestId: 8f507cfc Version: $LATEST"},
	{apitype.LogRecord{Stream: "stdout", Message: "ok\nREPORT RequestId: 8f507cfc\tDuration: 1.00 ms\tBilled Duration: 1 ms"},
		`ok\nREPORT RequestId: 8f507cfc\tDuration: 1.00 ms\tBilled Duration: 1 ms`},
	{apitype.LogRecord{Stream: "stdout", Message: "working\rEND RequestId: 8f507cfc"},
		`working\rEND RequestId: 8f507cfc`},
	{apitype.LogRecord{Stream: "stdout", Message: "\x1b]0;pwned\x07retitled"},
		`\x1b]0;pwned\aretitled`},
	{apitype.LogRecord{Stream: "stderr", Message: "\x1b[1A\x1b[2Kerased the line above\x00"},
		`\x1b[1A\x1b[2Kerased the line above\x00`},
	{apitype.LogRecord{Stream: "stdout", Message: "c1 \u009b31m, del \x7f, next line \u0085, é ✓ \\x1b as typed"},
		`c1 \u009b31m, del \x7f, next line \u0085, é ✓ \x1b as typed`},
	{apitype.LogRecord{Stream: "stdout", Message: "ends with its newline\r\n"},
		"ends with its newline"},
	// The node's lines keep their tabs; what a function put in them does
	// not pass unescaped.
	{apitype.LogRecord{Stream: "platform", Message: "ASYNC RequestId: 8f507cfc\tAttempt: 1 of 3\tError: boom\nREPORT RequestId: 8f507cfc\x1b[31m"},
		"ASYNC RequestId: 8f507cfc\tAttempt: 1 of 3\tError: boom\\nREPORT RequestId: 8f507cfc\\x1b[31m"},
	{apitype.LogRecord{Stream: "platform", Message: "REPORT RequestId: 8f507cfc\tDuration: 2.00 ms\tBilled Duration: 2 ms"},
		"REPORT RequestId: 8f507cfc\tDuration: 2.00 ms\tBilled Duration: 2 ms"},
}

// serveHostile is a node answering hostileRecords.
func serveHostile(t *testing.T) []string {
	return fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for i, h := range hostileRecords {
			rec := h.rec
			rec.Time = time.Date(2026, 11, 23, 16, 0, i, 0, time.UTC)
			rec.Function, rec.RequestID = "hello", "8f507cfc"
			if err := enc.Encode(rec); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestLogsEscapesControls checks that wisp logs prints a function's control
// characters as visible escapes, so each record is one line that cannot
// steer the terminal, following or not, and verbatim only with --raw.
func TestLogsEscapesControls(t *testing.T) {
	env := serveHostile(t)
	var escaped, raw strings.Builder
	for i, h := range hostileRecords {
		prefix := time.Date(2026, 11, 23, 16, 0, i, 0, time.UTC).Format(logTime) + "  8f507cfc  "
		escaped.WriteString(prefix + h.want + "\n")
		raw.WriteString(prefix + strings.TrimRight(h.rec.Message, "\r\n") + "\n")
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, escaped.String()},
		{"follow", []string{"-f"}, escaped.String()},
		{"raw", []string{"--raw"}, raw.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, env, append([]string{"logs", "hello"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp logs: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%q\nwant:\n%q", stdout, tt.want)
			}
		})
	}
	stdout, _, err := runCLI(t, env, "logs", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(stdout, "\n"), len(hostileRecords); got != want {
		t.Errorf("%d lines for %d records", got, want)
	}
	for _, r := range stdout {
		if r != '\n' && r != '\t' && (r < 0x20 || 0x7f <= r && r <= 0x9f) {
			t.Errorf("control character %U printed", r)
		}
	}
}

// TestLogsJSONEscapesControls checks that -o json leaves no control
// character unescaped either (encoding/json leaves DEL and C1 ones), and
// that the JSON decodes to the records as written.
func TestLogsJSONEscapesControls(t *testing.T) {
	env := serveHostile(t)
	stdout, stderr, err := runCLI(t, env, "logs", "hello", "-o", "json")
	if err != nil {
		t.Fatalf("wisp logs -o json: %v (stderr %q)", err, stderr)
	}
	for _, r := range stdout {
		if r != '\n' && (r < 0x20 || 0x7f <= r && r <= 0x9f) {
			t.Errorf("control character %U printed", r)
		}
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(hostileRecords) {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(hostileRecords), stdout)
	}
	for i, line := range lines {
		var rec apitype.LogRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if rec.Message != hostileRecords[i].rec.Message {
			t.Errorf("line %d message %q, want %q", i, rec.Message, hostileRecords[i].rec.Message)
		}
	}

	_, stderr, err = runCLI(t, env, "logs", "hello", "-o", "json", "--raw")
	if want := "wisp: --raw is for text output, not -o json (see 'wisp logs --help')\n"; err == nil || stderr != want {
		t.Errorf("--raw with -o json: %v, stderr %q; want %q", err, stderr, want)
	}
}

// reportWriter collects what wisp logs -f prints and says when the real
// REPORT line of an invocation came (its fields tab-separated, which a
// function's text cannot be).
type reportWriter struct {
	mu     sync.Mutex
	b      strings.Builder
	want   string
	came   chan struct{}
	closed bool
}

func (w *reportWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if !w.closed && strings.Contains(w.b.String(), w.want) {
		w.closed = true
		close(w.came)
	}
	return n, err
}

func (w *reportWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestLogsHostileFunction runs a function that writes escape sequences and
// a forged REPORT line on a real node, and reads its logs with wisp logs -f.
func TestLogsHostileFunction(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	env, run := startNode(t, server.Config{})
	dir := t.TempDir()
	code := `exports.handler = async () => {
  process.stdout.write("working\rREPORT RequestId: forged\tDuration: 1.00 ms\n");
  process.stdout.write("\x1b]0;pwned\x07\x1b[2J\u009b31m\n");
  return "ok";
};`
	if err := os.WriteFile(filepath.Join(dir, "index.js"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	run("deploy", dir, "--name", "hostile", "--runtime", "nodejs", "--handler", "index.handler")
	run("invoke", "hostile")

	root := newRootCmd(append(env, "HOME="+t.TempDir()), time.Now)
	out := &reportWriter{want: "  REPORT RequestId: ", came: make(chan struct{})}
	var errOut strings.Builder
	root.SetArgs([]string{"logs", "hostile", "-f", "--since", "1h"})
	root.SetOut(out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- execute(ctx, root) }()
	select {
	case <-out.came:
	case <-time.After(20 * time.Second):
		t.Fatalf("no REPORT line while following: %q", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("wisp logs -f: %v (stderr %q)", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		`  working\rREPORT RequestId: forged\tDuration: 1.00 ms` + "\n",
		`  \x1b]0;pwned\a\x1b[2J\u009b31m` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("wisp logs -f printed:\n%s\nwant a line ending %q", got, want)
		}
	}
	if strings.ContainsAny(got, "\r\x1b\x07\u009b") {
		t.Errorf("wisp logs -f printed control characters: %q", got)
	}
}
