package cli

import (
	"io"
	"net/http"
	"testing"
)

// metricsText is a node's /metrics (in part).
const metricsText = `# TYPE wisp_cold_starts_total counter
wisp_cold_starts_total{function="hello",version="1"} 2
wisp_cold_starts_total{function="hello",version="2"} 1
# TYPE wisp_instances gauge
wisp_instances{function="hello",state="busy",version="1"} 1
wisp_instances{function="hello",state="busy",version="2"} 2
wisp_instances{function="hello",state="idle",version="1"} 1
wisp_instances{function="hello",state="starting",version="2"} 1
wisp_instances{function="quiet",state="idle",version="1"} 1
# TYPE wisp_invocation_duration_seconds histogram
wisp_invocation_duration_seconds_bucket{function="hello",le="0.01"} 2
wisp_invocation_duration_seconds_bucket{function="hello",le="0.025"} 6
wisp_invocation_duration_seconds_bucket{function="hello",le="0.05"} 8
wisp_invocation_duration_seconds_bucket{function="hello",le="0.1"} 10
wisp_invocation_duration_seconds_bucket{function="hello",le="+Inf"} 10
wisp_invocation_duration_seconds_sum{function="hello"} 0.3
wisp_invocation_duration_seconds_count{function="hello"} 10
wisp_invocation_duration_seconds_bucket{function="slow",le="30"} 1
wisp_invocation_duration_seconds_bucket{function="slow",le="120"} 2
wisp_invocation_duration_seconds_bucket{function="slow",le="+Inf"} 2
wisp_invocation_duration_seconds_sum{function="slow"} 100
wisp_invocation_duration_seconds_count{function="slow"} 2
# TYPE wisp_invocations_total counter
wisp_invocations_total{function="hello",outcome="error",version="1"} 1
wisp_invocations_total{function="hello",outcome="success",version="1"} 6
wisp_invocations_total{function="hello",outcome="success",version="2"} 2
wisp_invocations_total{function="hello",outcome="timeout",version="2"} 1
wisp_invocations_total{function="slow",outcome="success",version="$LATEST"} 2
# TYPE wisp_queue_depth gauge
wisp_queue_depth{function="hello",version="2"} 4
# TYPE wisp_throttles_total counter
wisp_throttles_total{function="hello",reason="ReservedFunctionConcurrentInvocationLimitExceeded"} 3
`

// metricsNode serves metricsText at /metrics, and answers GET
// /v1/functions/NAME for the functions in known.
func metricsNode(t *testing.T, known ...string) []string {
	return fakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q, want Bearer tok", got)
		}
		switch r.URL.Path {
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			io.WriteString(w, metricsText)
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
			stdout, stderr, err := runCLI(t, metricsNode(t, tt.known...), append([]string{"stats"}, tt.args...)...)
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
			env:  func(t *testing.T) []string { return metricsNode(t) },
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
