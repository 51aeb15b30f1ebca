package cli

import (
	"net/http"
	"testing"
)

func TestPublish(t *testing.T) {
	tests := []struct {
		name   string
		status int
		args   []string
		body   string
		want   string
	}{
		{"new version", 201, []string{"--description", "first"}, `{"description":"first"}`, "published hello version 3\n"},
		{"unchanged", 200, nil, `{}`, "hello version 3 unchanged\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "POST" || r.URL.Path != "/v1/functions/hello/versions" {
					t.Errorf("request %s %s, want POST /v1/functions/hello/versions", r.Method, r.URL.Path)
				}
				if got := readAll(t, r); got != tt.body {
					t.Errorf("body = %s, want %s", got, tt.body)
				}
				answer(w, tt.status, `{"version":3,"function":{"name":"hello"}}`)
			})
			stdout, stderr, err := runCLI(t, env, append([]string{"publish", "hello"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp publish: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout = %q, want %q", stdout, tt.want)
			}
		})
	}
}

func TestVersionsTable(t *testing.T) {
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"versions":[
			{"version":1,"function":{"code_sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"},"created_at":"2026-11-21T16:00:00Z"},
			{"version":2,"function":{"code_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},"created_at":"2026-11-23T15:00:00Z","description":"fix\tthe bug"}]}`)
	})
	stdout, stderr, err := runCLI(t, env, "versions", "hello")
	if err != nil {
		t.Fatalf("wisp versions: %v (stderr %q)", err, stderr)
	}
	want := "" +
		"VERSION   CODE           CREATED   DESCRIPTION\n" +
		"1         60303ae22b99   2d ago\n" +
		"2         9f86d081884c   1h ago    fix the bug\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}
