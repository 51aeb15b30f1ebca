package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// twoPages answers GET /v1/functions with hello on the first page and
// world on the second.
func twoPages(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != "/v1/functions" {
			t.Errorf("request %s %s, want GET /v1/functions", r.Method, r.URL.Path)
		}
		switch r.URL.Query().Get("marker") {
		case "":
			answer(w, 200, `{"functions":[{"name":"hello","runtime":"nodejs","memory_mb":128,"timeout":3,
				"code_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				"updated_at":"2026-11-23T15:55:00Z"}],"next_marker":"hello"}`)
		case "hello":
			answer(w, 200, `{"functions":[{"name":"world","runtime":"go","memory_mb":1024,"timeout":900,
				"code_sha256":"sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
				"updated_at":"2026-11-20T16:00:00Z"}]}`)
		default:
			t.Errorf("marker %q", r.URL.Query().Get("marker"))
		}
	}
}

// unsandboxed answers GET /v1/functions with a function of a node that
// runs them without a sandbox.
func unsandboxed(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"functions":[{"name":"hello","runtime":"nodejs","memory_mb":128,"timeout":3,
			"insecure_no_sandbox":true,"updated_at":"2026-11-23T15:55:00Z"}]}`)
	}
}

func TestLs(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(t *testing.T) http.HandlerFunc
		args       []string
		want       string
		wantStderr string
	}{
		{
			name:    "table",
			handler: twoPages,
			want: "" +
				"NAME    RUNTIME   MEMORY    TIMEOUT   CODE           UPDATED\n" +
				"hello   nodejs    128 MB    3s        9f86d081884c   5m ago\n" +
				"world   go        1024 MB   900s      60303ae22b99   3d ago\n",
		},
		{
			name: "empty table",
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"functions":[]}`) }
			},
			want: "NAME   RUNTIME   MEMORY   TIMEOUT   CODE   UPDATED\n",
		},
		{
			name: "empty json",
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"functions":[]}`) }
			},
			args: []string{"-o", "json"},
			want: "[]\n",
		},
		{
			name:    "unsandboxed table",
			handler: unsandboxed,
			want: "" +
				"NAME                  RUNTIME   MEMORY   TIMEOUT   CODE   UPDATED\n" +
				"hello (UNSANDBOXED)   nodejs    128 MB   3s               5m ago\n",
			wantStderr: "warning: this node runs functions without a sandbox (--insecure-no-sandbox)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, fakeNode(t, tt.handler(t)), append([]string{"ls"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp ls: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
			if stderr != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestLsJSON(t *testing.T) {
	stdout, stderr, err := runCLI(t, fakeNode(t, twoPages(t)), "ls", "-o", "json")
	if err != nil {
		t.Fatalf("wisp ls -o json: %v (stderr %q)", err, stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON array: %v\n%s", err, stdout)
	}
	if len(got) != 2 || got[0]["name"] != "hello" || got[1]["name"] != "world" || got[1]["memory_mb"] != 1024.0 {
		t.Errorf("stdout = %s, want hello and world as the node sent them", stdout)
	}

	// Without a sandbox the field says so; the warning is for tables.
	stdout, stderr, err = runCLI(t, fakeNode(t, unsandboxed(t)), "ls", "-o", "json")
	if err != nil || stderr != "" || !strings.Contains(stdout, `"insecure_no_sandbox": true`) {
		t.Errorf("wisp ls -o json without a sandbox: %v, stderr %q, stdout:\n%s", err, stderr, stdout)
	}
}

func TestGet(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != "/v1/functions/hello" {
			t.Errorf("request %s %s, want GET /v1/functions/hello", r.Method, r.URL.Path)
		}
		answer(w, 200, `{"name":"hello","runtime":"nodejs","handler":"index.handler","memory_mb":256,"timeout":10,
			"env":{"B":"2","A":"1"},"concurrency":5,
			"async":{"retries":0,"max_event_age":3600,"on_failure":"topic:failed"},
			"schedules":[{"name":"schedule-1","expression":"rate(5 minutes)"},
				{"name":"morning","expression":"cron(0 8 * * ? *)","timezone":"Europe/Paris","catch_up":true,"qualifier":"live"}],
			"quota":{"period":"day","max_invocations":1000,"max_cost":2.5},"logs":{"max_bytes":67108864},"min_instances":1,"description":"says hi","url_auth":"none","network":"none",
			"code_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","code_size":2048,
			"created_at":"2026-11-23T14:00:00Z","updated_at":"2026-11-23T15:59:30Z","revision":7}`)
	})
	stdout, stderr, err := runCLI(t, env, "get", "hello")
	if err != nil {
		t.Fatalf("wisp get: %v (stderr %q)", err, stderr)
	}
	want := "" +
		"name:          hello\n" +
		"runtime:       nodejs\n" +
		"handler:       index.handler\n" +
		"memory_mb:     256\n" +
		"timeout:       10s\n" +
		"concurrency:   5\n" +
		"min_instances: 1\n" +
		"keep_warm:     node default\n" +
		"url_auth:      none\n" +
		"network:       none\n" +
		"sandbox:       yes\n" +
		"description:   says hi\n" +
		"env:           A=1\n" +
		"               B=2\n" +
		"retries:       0\n" +
		"max_event_age: 1h0m0s\n" +
		"on_success:\n" +
		"on_failure:    topic:failed\n" +
		"dead_letter:   dlq.hello\n" +
		"schedules:     schedule-1: rate(5 minutes)\n" +
		"               morning: cron(0 8 * * ? *) in Europe/Paris, catch-up, qualifier live\n" +
		"quota:         1000 invocations, $2.5 per day; capped events wait\n" +
		"logs:          max_bytes 64MiB, max_age node default\n" +
		"code_sha256:   sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n" +
		"code_size:     2048 (2.0 KB)\n" +
		"created_at:    2026-11-23T14:00:00Z (2h ago)\n" +
		"updated_at:    2026-11-23T15:59:30Z (30s ago)\n" +
		"revision:      7\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}
