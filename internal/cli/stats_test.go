package cli

import (
	"net/http"
	"testing"
)

// statsJSON is a node's answer to GET /v1/stats.
const statsJSON = `{"functions": [
  {"function": "hello", "invocations": 10, "errors": 2, "throttles": 3, "cold_starts": 3,
   "p50_ms": 21.25, "p99_ms": 97.5, "idle": 1, "busy": 3, "starting": 1, "queued": 4},
  {"function": "quiet", "invocations": 0, "errors": 0, "throttles": 0, "cold_starts": 0,
   "p50_ms": null, "p99_ms": null, "idle": 1, "busy": 0, "starting": 0, "queued": 0},
  {"function": "slow", "invocations": 2, "errors": 0, "throttles": 0, "cold_starts": 0,
   "p50_ms": 30000, "p99_ms": 118200, "idle": 0, "busy": 0, "starting": 0, "queued": 0}
]}`

// statsNode serves statsJSON at /v1/stats, and answers GET
// /v1/functions/NAME for the functions in known.
func statsNode(t *testing.T, known ...string) []string {
	return fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q, want Bearer tok", got)
		}
		if r.URL.Path == "/v1/stats" {
			answer(w, 200, statsJSON)
			return
		}
		for _, fn := range known {
			if r.URL.Path == "/v1/functions/"+fn {
				answer(w, 200, `{"name":"`+fn+`"}`)
				return
			}
		}
		answer(w, 404, `{"type":"ResourceNotFoundException","message":"function not found"}`)
	})
}

func TestStats(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		known []string
		want  string
	}{
		{
			name: "every function",
			want: "" +
				"FUNCTION   INVOCATIONS   ERRORS   THROTTLES   COLD STARTS   P50      P99      INSTANCES   QUEUE\n" +
				"hello      10            2        3           3             21.2ms   97.5ms   1/3         4\n" +
				"quiet      0             0        0           0             -        -        1/0         0\n" +
				"slow       2             0        0           0             30.00s   1m58s    0/0         0\n",
		},
		{
			name: "one function",
			args: []string{"hello"},
			want: "" +
				"FUNCTION   INVOCATIONS   ERRORS   THROTTLES   COLD STARTS   P50      P99      INSTANCES   QUEUE\n" +
				"hello      10            2        3           3             21.2ms   97.5ms   1/3         4\n",
		},
		{
			name:  "a function that has not run",
			args:  []string{"fresh"},
			known: []string{"fresh"},
			want: "" +
				"FUNCTION   INVOCATIONS   ERRORS   THROTTLES   COLD STARTS   P50   P99   INSTANCES   QUEUE\n" +
				"fresh      0             0        0           0             -     -     0/0         0\n",
		},
		{
			name: "json",
			args: []string{"hello", "-o", "json"},
			want: `[
  {
    "function": "hello",
    "invocations": 10,
    "errors": 2,
    "throttles": 3,
    "cold_starts": 3,
    "p50_ms": 21.25,
    "p99_ms": 97.5,
    "idle": 1,
    "busy": 3,
    "starting": 1,
    "queued": 4
  }
]
`,
		},
		{
			name:  "json without durations",
			args:  []string{"fresh", "-o", "json"},
			known: []string{"fresh"},
			want: `[
  {
    "function": "fresh",
    "invocations": 0,
    "errors": 0,
    "throttles": 0,
    "cold_starts": 0,
    "p50_ms": null,
    "p99_ms": null,
    "idle": 0,
    "busy": 0,
    "starting": 0,
    "queued": 0
  }
]
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, statsNode(t, tt.known...), append([]string{"stats"}, tt.args...)...)
			if err != nil {
				t.Fatalf("wisp stats: %v (stderr %q)", err, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.want)
			}
		})
	}
}

func TestStatsErrors(t *testing.T) {
	tests := []struct {
		name string
		env  func(t *testing.T) []string
		args []string
		want string
	}{
		{
			name: "unknown function",
			env:  func(t *testing.T) []string { return statsNode(t) },
			args: []string{"nope"},
			want: "wisp: function not found (ResourceNotFoundException)\n",
		},
		{
			name: "unauthorized",
			env: func(t *testing.T) []string {
				return fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
					answer(w, 401, `{"type":"UnauthorizedException","message":"wrong token"}`)
				})
			},
			want: "wisp: wrong token (UnauthorizedException)\n",
		},
		{
			name: "too many arguments",
			env:  func(t *testing.T) []string { return nil },
			args: []string{"a", "b"},
			want: "wisp: got 2 arguments, want [NAME] (see 'wisp stats --help')\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, tt.env(t), append([]string{"stats"}, tt.args...)...)
			if err == nil {
				t.Fatal("no error")
			}
			if stderr != tt.want {
				t.Errorf("stderr = %q, want %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestStatsDuration(t *testing.T) {
	tests := []struct {
		ms   float64
		want string
	}{
		{0.05, "0.05ms"},
		{4.5, "4.50ms"},
		{21.25, "21.2ms"},
		{350, "350ms"},
		{1500, "1.50s"},
		{59_000, "59.00s"},
		{119_000, "1m59s"},
		{900_000, "15m0s"},
	}
	for _, tt := range tests {
		if got := statsDuration(&tt.ms); got != tt.want {
			t.Errorf("statsDuration(%v) = %q, want %q", tt.ms, got, tt.want)
		}
	}
	if got := statsDuration(nil); got != "-" {
		t.Errorf("statsDuration(nil) = %q, want -", got)
	}
}
