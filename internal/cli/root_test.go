package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNow is the clock of every CLI test.
var testNow = time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)

// runCLI runs wisp in-process with args and env as its whole environment
// (HOME is a fresh temp dir unless env sets it), and returns what it wrote.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCLIStdin(t, env, "", args...)
}

// runCLIStdin is runCLI with stdin as wisp's standard input.
func runCLIStdin(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	env = append([]string{"HOME=" + t.TempDir()}, env...)
	root := newRootCmd(env, func() time.Time { return testNow })
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = execute(ctx, root)
	return out.String(), errOut.String(), err
}

// fakeNode serves h as a node would, and returns the env that points wisp
// at it with a token.
func fakeNode(t *testing.T, h http.HandlerFunc) []string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return []string{"WISP_URL=" + srv.URL, "WISP_TOKEN=tok"}
}

// answer writes a JSON answer.
func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing argument", []string{"get"}, "wisp: got 0 arguments, want NAME (see 'wisp get --help')"},
		{"extra argument", []string{"deploy", "a", "b"}, "wisp: got 2 arguments, want [DIR] (see 'wisp deploy --help')"},
		{"no arguments wanted", []string{"ls", "x"}, "wisp: got 1 argument, want none (see 'wisp ls --help')"},
		{"unknown flag", []string{"ls", "--bogus"}, "wisp: unknown flag: --bogus (see 'wisp ls --help')"},
		{"bad output format", []string{"ls", "-o", "yaml"}, `wisp: invalid argument "yaml" for "-o, --output" flag: must be table or json (see 'wisp ls --help')`},
		{"get output format", []string{"get", "x", "-o", "table"}, `wisp: invalid argument "table" for "-o, --output" flag: must be text or json (see 'wisp get --help')`},
		{"bad number", []string{"deploy", "--memory", "lots"}, `wisp: invalid argument "lots" for "--memory" flag: strconv.ParseInt: parsing "lots": invalid syntax (see 'wisp deploy --help')`},
		{"bad env", []string{"deploy", "--env", "FOO"}, `wisp: --env "FOO" is not K=V (see 'wisp deploy --help')`},
		{"timezone without a schedule", []string{"deploy", "--timezone", "UTC"}, `wisp: --timezone and --catch-up apply to the --schedule expressions given with them (see 'wisp deploy --help')`},
		{"event age in parts of seconds", []string{"deploy", "--max-event-age", "90.5s"}, `wisp: --max-event-age 1m30.5s is not whole seconds (see 'wisp deploy --help')`},
		{"bad quota period", []string{"deploy", "--quota-period", "week"}, `wisp: --quota-period "week" must be hour, day or month (see 'wisp deploy --help')`},
		{"quota removed and set", []string{"deploy", "--quota-period", "", "--quota-cost", "1"}, `wisp: --quota-period '' removes the quota: it takes no --quota-cost (see 'wisp deploy --help')`},
		{"bad quota async", []string{"deploy", "--quota-async", "drop"}, `wisp: --quota-async "drop" must be wait or fail (see 'wisp deploy --help')`},
		{"bad price", []string{"server", "--price-gb-second", "free"}, `wisp: invalid argument "free" for "--price-gb-second" flag: must be a number of dollars, 0 or more (see 'wisp server --help')`},
		{"bad log rate", []string{"server", "--log-rate", "fast"}, `wisp: invalid argument "fast" for "--log-rate" flag: must be a number of bytes with an optional unit, such as 64MB, 1GiB or 1048576 (see 'wisp server --help')`},
		{"node quota without a cap", []string{"server", "--quota-period", "day"}, `wisp: a quota needs --quota-invocations, --quota-gb-seconds or --quota-cost (--quota-period '' removes it) (see 'wisp server --help')`},
		{"async with the log", []string{"invoke", "hello", "--async", "--log"}, `wisp: --log is for synchronous invocations, not --async (see 'wisp invoke --help')`},
		{"event data not JSON", []string{"events", "publish", "orders", "{oops"}, `wisp: the event's data is not valid JSON (see 'wisp events publish --help')`},
		{"extension not a pair", []string{"events", "publish", "orders", "--ext", "tenant"}, `wisp: --ext "tenant" is not NAME=VALUE (see 'wisp events publish --help')`},
		{"filter given twice", []string{"events", "subscribe", "orders", "ship", "--type", "a", "--filter", "type=b"}, `wisp: --filter: type is given twice (see 'wisp events subscribe --help')`},
		{"no read limit", []string{"events", "read", "orders", "--limit", "0"}, `wisp: --limit 0 is not a positive number (see 'wisp events read --help')`},
		{"unknown events command", []string{"events", "pub"}, `wisp: unknown command "pub" for "wisp events" (see 'wisp events --help')`},
		{"unknown command", []string{"frobnicate"}, `wisp: unknown command "frobnicate" for "wisp" (see 'wisp --help')`},
		{"unknown command with a suggestion", []string{"lss"}, `wisp: unknown command "lss" for "wisp" Did you mean this? ls logs (see 'wisp --help')`},
		{"unknown alias command", []string{"alias", "sett"}, `wisp: unknown command "sett" for "wisp alias" (see 'wisp alias --help')`},
		{"alias version not a number", []string{"alias", "set", "hello", "live", "two"}, `wisp: VERSION must be a version number, not "two" (see 'wisp alias set --help')`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, nil, tt.args...)
			if err == nil {
				t.Fatalf("wisp %s: no error", strings.Join(tt.args, " "))
			}
			if got := stderr; got != tt.want+"\n" {
				t.Errorf("stderr = %q, want %q", got, tt.want+"\n")
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestErrorLines(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{
			name:   "api error",
			status: 404, body: `{"type":"ResourceNotFoundException","message":"function \"nope\" not found"}`,
			want: `wisp: function "nope" not found (ResourceNotFoundException)`,
		},
		{
			name:   "unauthorized",
			status: 401, body: `{"type":"UnauthorizedException","message":"wrong token"}`,
			want: `wisp: wrong token (UnauthorizedException)`,
		},
		{
			name:   "not an api error",
			status: 502, body: "<html>upstream went away</html>",
			want: `wisp: Bad Gateway (HTTP 502)`,
		},
		{
			name:   "multi-line message",
			status: 500, body: `{"type":"ServiceException","message":"disk full\nretry later"}`,
			want: `wisp: disk full retry later (ServiceException)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(tt.body, "{") {
					answer(w, tt.status, tt.body)
					return
				}
				http.Error(w, tt.body, tt.status)
			})
			stdout, stderr, err := runCLI(t, env, "get", "nope")
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

func TestNoNode(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, stderr, err := runCLI(t, []string{"WISP_TOKEN=tok"}, "--url", url, "ls")
	if err == nil {
		t.Fatal("no error")
	}
	want := "wisp: no node answers at " + url + " (connection refused): start one with 'wisp server', or pass --url\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

func TestInterrupted(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	env := fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	root := newRootCmd(append(env, "HOME="+t.TempDir()), time.Now)
	var errOut bytes.Buffer
	root.SetArgs([]string{"ls"})
	root.SetOut(io.Discard)
	root.SetErr(&errOut)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // as SIGINT would
	if err := execute(ctx, root); err == nil {
		t.Fatal("no error")
	}
	if got, want := errOut.String(), "wisp: interrupted\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestURLAndToken(t *testing.T) {
	type request struct{ host, auth string }
	reqs := make(chan request, 1)
	handler := func(w http.ResponseWriter, r *http.Request) {
		reqs <- request{r.Host, r.Header.Get("Authorization")}
		answer(w, 200, `{"functions":[]}`)
	}
	flagSrv := httptest.NewServer(http.HandlerFunc(handler))
	defer flagSrv.Close()
	envSrv := httptest.NewServer(http.HandlerFunc(handler))
	defer envSrv.Close()
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }

	home := t.TempDir()
	tokenFile := filepath.Join(home, ".local", "share", "wisp", "admin.token")
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	xdg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(xdg, "wisp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(xdg, "wisp", "admin.token"), []byte(" from-xdg "), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		env      []string
		args     []string
		wantHost string
		wantAuth string
	}{
		{
			name:     "flags win",
			env:      []string{"WISP_URL=" + envSrv.URL, "WISP_TOKEN=from-env", "HOME=" + home},
			args:     []string{"--url", flagSrv.URL, "--token", "from-flag"},
			wantHost: hostOf(flagSrv.URL), wantAuth: "Bearer from-flag",
		},
		{
			name:     "a URL without a scheme",
			env:      []string{"WISP_TOKEN=from-env"},
			args:     []string{"--url", hostOf(flagSrv.URL)},
			wantHost: hostOf(flagSrv.URL), wantAuth: "Bearer from-env",
		},
		{
			name:     "then the environment",
			env:      []string{"WISP_URL=" + envSrv.URL, "WISP_TOKEN=from-env", "HOME=" + home},
			wantHost: hostOf(envSrv.URL), wantAuth: "Bearer from-env",
		},
		{
			name:     "then the admin token file",
			env:      []string{"WISP_URL=" + envSrv.URL, "HOME=" + home},
			wantHost: hostOf(envSrv.URL), wantAuth: "Bearer from-file",
		},
		{
			name:     "under XDG_DATA_HOME",
			env:      []string{"WISP_URL=" + envSrv.URL, "HOME=" + home, "XDG_DATA_HOME=" + xdg},
			wantHost: hostOf(envSrv.URL), wantAuth: "Bearer from-xdg",
		},
		{
			name:     "an empty --token sends none",
			env:      []string{"WISP_URL=" + envSrv.URL, "WISP_TOKEN=from-env"},
			args:     []string{"--token", ""},
			wantHost: hostOf(envSrv.URL), wantAuth: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, stderr, err := runCLI(t, tt.env, append(tt.args, "ls")...); err != nil {
				t.Fatalf("wisp ls: %v (stderr %q)", err, stderr)
			}
			got := <-reqs
			if got.host != tt.wantHost {
				t.Errorf("request went to %s, want %s", got.host, tt.wantHost)
			}
			if got.auth != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", got.auth, tt.wantAuth)
			}
		})
	}
}

func TestNoToken(t *testing.T) {
	home := t.TempDir()
	_, stderr, err := runCLI(t, []string{"HOME=" + home}, "ls")
	if err == nil {
		t.Fatal("no error")
	}
	path := filepath.Join(home, ".local", "share", "wisp", "admin.token")
	want := "wisp: no API token: pass --token or set WISP_TOKEN (" + path + " does not exist; 'wisp server' writes it on first start)\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

func TestDataDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"xdg", map[string]string{"XDG_DATA_HOME": "/data", "HOME": "/home/u"}, "/data/wisp"},
		{"home", map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/wisp"},
		{"relative xdg is ignored", map[string]string{"XDG_DATA_HOME": "data", "HOME": "/home/u"}, "/home/u/.local/share/wisp"},
		{"nothing", nil, ".wisp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dataDirFrom(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("dataDirFrom = %q, want %q", got, tt.want)
			}
		})
	}
}
