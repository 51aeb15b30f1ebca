package cli

import (
	"io"
	"net/http"
	"testing"
)

func readAll(t *testing.T, r *http.Request) string {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("reading the request: %v", err)
	}
	return string(b)
}

func TestAliasSet(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		body   string
		answer string
		want   string
	}{
		{
			name:   "one version",
			args:   []string{"hello", "live", "2"},
			body:   `{"version":2}`,
			answer: `{"name":"live","function":"hello","version":2,"revision":12}`,
			want:   "alias hello:live -> version 2  revision 12\n",
		},
		{
			name:   "canary",
			args:   []string{"hello", "live", "2", "--additional-version", "3", "--weight", "0.1", "--description", "canary"},
			body:   `{"version":2,"additional_version":3,"additional_weight":0.1,"description":"canary"}`,
			answer: `{"name":"live","function":"hello","version":2,"additional_version":3,"additional_weight":0.1,"revision":13}`,
			want:   "alias hello:live -> version 2 (90%), version 3 (10%)  revision 13\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "PUT" || r.URL.Path != "/v1/functions/hello/aliases/live" {
					t.Errorf("request %s %s, want PUT /v1/functions/hello/aliases/live", r.Method, r.URL.Path)
				}
				if got := readAll(t, r); got != tt.body {
					t.Errorf("body = %s, want %s", got, tt.body)
				}
				answer(w, 200, tt.answer)
			})
			stdout, stderr, err := runCLI(t, env, append([]string{"alias", "set"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp alias set: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout = %q, want %q", stdout, tt.want)
			}
		})
	}
}

func TestAliasLs(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"aliases":[
			{"name":"live","function":"hello","version":2,"additional_version":3,"additional_weight":0.25,"updated_at":"2026-11-23T15:58:00Z"},
			{"name":"old","function":"hello","version":1,"description":"the first","updated_at":"2026-11-22T16:00:00Z"}]}`)
	})
	stdout, stderr, err := runCLI(t, env, "alias", "ls", "hello")
	if err != nil {
		t.Fatalf("wisp alias ls: %v (stderr %q)", err, stderr)
	}
	want := "" +
		"NAME   VERSIONS                           UPDATED   DESCRIPTION\n" +
		"live   version 2 (75%), version 3 (25%)   2m ago\n" +
		"old    version 1                          24h ago   the first\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}
