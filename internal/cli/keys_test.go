package cli

import (
	"net/http"
	"strings"
	"testing"
)

func TestKeysCreate(t *testing.T) {
	const created = `{"access_key_id":"WISPAAAAAAAAAAAAAAAA","secret_access_key":"abc-def_0123456789abcdefghijklmnopqrstuv","description":"ci","created_at":"2026-11-23T16:00:00Z"}`
	tests := []struct {
		name string
		args []string
		body string
		want string
	}{
		{
			name: "text",
			args: []string{"--description", "ci"},
			body: `{"description":"ci"}`,
			want: "" +
				"access_key_id:     WISPAAAAAAAAAAAAAAAA\n" +
				"secret_access_key: abc-def_0123456789abcdefghijklmnopqrstuv\n" +
				"description:       ci\n" +
				"\n" +
				"The secret is not shown again: keep it now. To sign with this key pair\n" +
				"(AWS SDKs, the AWS CLI):\n" +
				"\n" +
				"export AWS_ACCESS_KEY_ID=WISPAAAAAAAAAAAAAAAA AWS_SECRET_ACCESS_KEY=abc-def_0123456789abcdefghijklmnopqrstuv\n",
		},
		{
			name: "json",
			args: []string{"-o", "json"},
			body: `{}`,
			want: `{
  "access_key_id": "WISPAAAAAAAAAAAAAAAA",
  "secret_access_key": "abc-def_0123456789abcdefghijklmnopqrstuv",
  "description": "ci",
  "created_at": "2026-11-23T16:00:00Z"
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "POST" || r.URL.Path != "/v1/keys" {
					t.Errorf("request %s %s, want POST /v1/keys", r.Method, r.URL.Path)
				}
				if got := readAll(t, r); got != tt.body {
					t.Errorf("body = %s, want %s", got, tt.body)
				}
				answer(w, 201, created)
			})
			stdout, stderr, err := runCLI(t, env, append([]string{"keys", "create"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp keys create: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
		})
	}
}

func TestKeysLs(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != "/v1/keys" {
			t.Errorf("request %s %s, want GET /v1/keys", r.Method, r.URL.Path)
		}
		answer(w, 200, `{"keys":[
			{"access_key_id":"WISPAAAAAAAAAAAAAAAA","created_at":"2026-11-21T16:00:00Z"},
			{"access_key_id":"WISPBBBBBBBBBBBBBBBB","description":"ci\tdeploys","created_at":"2026-11-23T15:00:00Z"}]}`)
	})
	stdout, stderr, err := runCLI(t, env, "keys", "ls")
	if err != nil {
		t.Fatalf("wisp keys ls: %v (stderr %q)", err, stderr)
	}
	want := "" +
		"ID                     CREATED   DESCRIPTION\n" +
		"WISPAAAAAAAAAAAAAAAA   2d ago\n" +
		"WISPBBBBBBBBBBBBBBBB   1h ago    ci deploys\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}

	stdout, stderr, err = runCLI(t, env, "keys", "ls", "-o", "json")
	if err != nil {
		t.Fatalf("wisp keys ls -o json: %v (stderr %q)", err, stderr)
	}
	if !strings.HasPrefix(stdout, "[\n  {\n    \"access_key_id\": \"WISPAAAAAAAAAAAAAAAA\",") || strings.Contains(stdout, "secret") {
		t.Errorf("stdout = %s, want the keys as a JSON array without secrets", stdout)
	}
}

func TestKeysRm(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "DELETE" {
			t.Errorf("method %s, want DELETE", r.Method)
		}
		if r.URL.Path == "/v1/keys/WISPAAAAAAAAAAAAAAAA" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		answer(w, 404, `{"type":"ResourceNotFoundException","message":"access key \"WISPZZZZZZZZZZZZZZZZ\" not found"}`)
	})
	stdout, stderr, err := runCLI(t, env, "keys", "rm", "WISPAAAAAAAAAAAAAAAA")
	if err != nil {
		t.Fatalf("wisp keys rm: %v (stderr %q)", err, stderr)
	}
	if want := "deleted access key WISPAAAAAAAAAAAAAAAA\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}

	stdout, stderr, err = runCLI(t, env, "keys", "rm", "WISPZZZZZZZZZZZZZZZZ")
	if err == nil {
		t.Fatal("wisp keys rm of an unknown key: no error")
	}
	if want := "wisp: access key \"WISPZZZZZZZZZZZZZZZZ\" not found (ResourceNotFoundException)\n"; stderr != want || stdout != "" {
		t.Errorf("stdout %q, stderr %q; want nothing and %q", stdout, stderr, want)
	}
}

func TestKeysUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"rm without an id", []string{"keys", "rm"}, "wisp: got 0 arguments, want ID (see 'wisp keys rm --help')"},
		{"create with an argument", []string{"keys", "create", "x"}, "wisp: got 1 argument, want none (see 'wisp keys create --help')"},
		{"unknown subcommand", []string{"keys", "add"}, `wisp: unknown command "add" for "wisp keys" (see 'wisp keys --help')`},
		{"bad output format", []string{"keys", "ls", "-o", "text"}, `wisp: invalid argument "text" for "-o, --output" flag: must be table or json (see 'wisp keys ls --help')`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, nil, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if stderr != tt.want+"\n" {
				t.Errorf("stderr = %q, want %q", stderr, tt.want+"\n")
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}
