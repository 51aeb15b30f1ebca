package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// The soak's loads, each run until its context ends: the log floods, the
// quiet function's numbered lines, the async flood and its recorder, and
// the /healthz probes.

// logFlood invokes a function that floods its log, one call after another.
type logFlood struct {
	name, kind string
	calls      int // answered, with or without a function error
	funcErrors int // answered with a function error (the flooders end at their timeout)
	failed     int // not answered
	firstErr   string
}

func (f *logFlood) run(ctx context.Context, api *client.Client) {
	for ctx.Err() == nil {
		res, err := api.Invoke(ctx, f.name, []byte(`{}`), client.InvokeOptions{})
		switch {
		case ctx.Err() != nil:
		case err != nil:
			f.failed++
			f.firstErr = cmp.Or(f.firstErr, err.Error())
			pause(ctx, 100*time.Millisecond)
		default:
			f.calls++
			if res.FunctionError != "" {
				f.funcErrors++
			}
		}
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// quietCaller calls a function that logs one numbered line per call
// (examples/hello-go logs "greeting NAME"), at a low rate.
type quietCaller struct {
	name     string
	every    time.Duration
	answered []int // the numbers of the calls answered as asked
	failed   int
	firstErr string
}

// quietPrefix begins the name the quiet function greets on each call, and
// so the line it logs: "greeting quiet-17".
const quietPrefix = "quiet-"

func quietName(i int) string { return quietPrefix + strconv.Itoa(i) }

func (q *quietCaller) run(ctx context.Context, api *client.Client) {
	tick := time.NewTicker(q.every)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		res, err := api.Invoke(ctx, q.name, []byte(`{"name":"`+quietName(i)+`"}`), client.InvokeOptions{})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			q.failed++
			q.firstErr = cmp.Or(q.firstErr, err.Error())
		case res.FunctionError != "" || !bytes.Contains(res.Payload, []byte("hello, "+quietName(i)+`"`)):
			q.failed++
			q.firstErr = cmp.Or(q.firstErr, fmt.Sprintf("answered %s %s", res.FunctionError, cut(string(res.Payload), 200)))
		default:
			q.answered = append(q.answered, i)
		}
	}
}

// missingLines reads the quiet function's logs and returns the numbers of
// answered calls whose line is not there. It reads again until none is
// missing or wait has passed, since lines reach the logs after the answers.
func (q *quietCaller) missingLines(ctx context.Context, api *client.Client, wait time.Duration) ([]int, error) {
	deadline := time.Now().Add(wait)
	for {
		seen := map[int]bool{}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := api.Logs(rctx, q.name, client.LogsOptions{}, func(r apitype.LogRecord) error {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(r.Message), "greeting "+quietPrefix); ok {
				if i, err := strconv.Atoi(rest); err == nil {
					seen[i] = true
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			return nil, err
		}
		var missing []int
		for _, i := range q.answered {
			if !seen[i] {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing, nil
		}
		pause(ctx, time.Second)
	}
}

// soakMaxEvents bounds the events the async flood sends, and so the
// recorder's memory.
const soakMaxEvents = 1 << 24

// asyncFlood sends events (InvocationType Event) to a function as fast as
// its workers can, each event numbered.
type asyncFlood struct {
	name string
	next atomic.Int64

	mu       sync.Mutex
	accepted []int64 // events answered 202; guarded by mu
	refused  int     // answered 429; guarded by mu
	failed   int     // answered otherwise, or not at all; guarded by mu
	firstErr string  // guarded by mu
}

func (a *asyncFlood) run(ctx context.Context, api *client.Client) {
	for ctx.Err() == nil {
		n := a.next.Add(1)
		if n > soakMaxEvents {
			return
		}
		_, err := api.InvokeAsync(ctx, a.name, []byte(`{"n":`+strconv.FormatInt(n, 10)+`}`), "")
		if ctx.Err() != nil {
			return // not known whether the node took it
		}
		var apiErr *client.Error
		a.mu.Lock()
		switch {
		case err == nil:
			a.accepted = append(a.accepted, n)
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
			a.refused++
		default:
			a.failed++
			a.firstErr = cmp.Or(a.firstErr, err.Error())
		}
		a.mu.Unlock()
		if err != nil && apiErr == nil {
			pause(ctx, 10*time.Millisecond) // no answer: do not spin on a node that is gone
		}
	}
}

// eventRecorder is an HTTP server in the bench that the subscriber posts
// each event it runs to: the bench's account of what ran.
type eventRecorder struct {
	srv *http.Server
	url string

	mu   sync.Mutex
	runs []uint8 // runs of each event number, up to 255; guarded by mu
	odd  int     // posts that were not an event of the flood; guarded by mu
}

func startRecorder() (*eventRecorder, error) {
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return nil, err
	}
	r := &eventRecorder{url: "http://" + ln.Addr().String() + "/"}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.record), ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	return r, nil
}

func (r *eventRecorder) record(w http.ResponseWriter, req *http.Request) {
	var ev struct {
		N int64 `json:"n"`
	}
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<10)).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	if ev.N < 1 || ev.N > soakMaxEvents {
		r.odd++ // the warm-up event, or not ours
	} else {
		for int64(len(r.runs)) <= ev.N {
			r.runs = append(r.runs, make([]uint8, max(len(r.runs), 1<<16))...)
		}
		if r.runs[ev.N] < 255 {
			r.runs[ev.N]++
		}
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// tally counts, of the accepted events, those that ran, and of all that
// ran, those run more than once and those not answered 202.
func (r *eventRecorder) tally(accepted []int64) (ran, twice, unanswered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	was := make([]bool, len(r.runs))
	for _, n := range accepted {
		if n < int64(len(r.runs)) {
			was[n] = true
			if r.runs[n] > 0 {
				ran++
			}
		}
	}
	for n, c := range r.runs {
		if c > 1 {
			twice++
		}
		if c > 0 && !was[n] {
			unanswered++
		}
	}
	return ran, twice, unanswered
}

func (r *eventRecorder) stop(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(sctx)
}

// queuedEvents is the node's count of function name's stored events
// (waiting or running); -1 when the node does not say.
func queuedEvents(ctx context.Context, api *client.Client, name string) float64 {
	mfs, err := nodestats.Metrics(ctx, api)
	if err != nil {
		return -1
	}
	for _, m := range mfs[telemetry.MetricAsyncQueued].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == telemetry.LabelFunction && l.GetValue() == name {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// soakHealthTimeout bounds one /healthz probe: the node is to answer every
// second.
const soakHealthTimeout = time.Second

// healthProbe is one GET /healthz on a fresh connection.
type healthProbe struct {
	took time.Duration
	err  error
}

// probeHealth polls url/healthz every second until ctx ends, each time on
// a new connection.
func probeHealth(ctx context.Context, url string) []healthProbe {
	var out []healthProbe
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return out
		}
		out = append(out, healthOnce(ctx, url))
	}
}

func healthOnce(ctx context.Context, url string) healthProbe {
	hc := &http.Client{Timeout: soakHealthTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, url+"/healthz", nil)
	if err != nil {
		return healthProbe{err: err}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return healthProbe{took: time.Since(start), err: err}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	err = errors.Join(err, resp.Body.Close())
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("answered %d", resp.StatusCode)
	}
	return healthProbe{took: time.Since(start), err: err}
}
