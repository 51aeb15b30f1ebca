package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// loopback is the only host the load generator talks to.
const loopback = "127.0.0.1"

// requestTimeout bounds one request of the load generator.
const requestTimeout = 30 * time.Second

// loadConfig is one closed-loop run.
type loadConfig struct {
	URL         string        // http://127.0.0.1:PORT/…
	Conns       int           // workers, each with its own keep-alive connection
	Warmup      time.Duration // requests sent but not recorded
	Duration    time.Duration // the measured window after the warm-up
	MaxRequests int           // recorded requests, over all workers; the run ends early at this bound
}

// loadResult is what a run measured.
type loadResult struct {
	Latencies []time.Duration // of every recorded 200 answer, sorted
	Errors    int             // recorded requests that failed or were not 200
	Elapsed   time.Duration   // from the start of the window to the last recorded answer
}

// RPS is the rate of recorded answers, errors included.
func (r loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)+r.Errors) / r.Elapsed.Seconds()
}

// runLoad runs a closed loop: cfg.Conns workers, each sending its next
// request when the answer to its last one has arrived, for cfg.Warmup and
// then cfg.Duration, and records every latency of the measured window.
func runLoad(ctx context.Context, cfg loadConfig) (loadResult, error) {
	if err := checkTarget(cfg.URL); err != nil {
		return loadResult{}, err
	}
	if cfg.Conns < 1 || cfg.Duration <= 0 || cfg.MaxRequests < cfg.Conns {
		return loadResult{}, fmt.Errorf("load: bad run %+v", cfg)
	}
	perWorker := cfg.MaxRequests / cfg.Conns
	measureFrom := time.Now().Add(cfg.Warmup)
	measureTo := measureFrom.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, measureTo.Add(requestTimeout))
	defer cancel()

	type workerResult struct {
		lat     []time.Duration
		errors  int
		lastEnd time.Time
		err     error
	}
	results := make([]workerResult, cfg.Conns)
	var wg sync.WaitGroup
	for w := range cfg.Conns {
		wg.Go(func() {
			hc := newLoopbackClient(1)
			defer hc.CloseIdleConnections()
			res := &results[w]
			res.lat = make([]time.Duration, 0, min(perWorker, 1<<16))
			for recorded := 0; recorded < perWorker; {
				start := time.Now()
				if !start.Before(measureTo) || ctx.Err() != nil {
					return
				}
				ok, err := get(ctx, hc, cfg.URL)
				end := time.Now()
				if err != nil && ctx.Err() != nil {
					res.err = err
					return
				}
				if start.Before(measureFrom) {
					continue // warm-up
				}
				recorded++
				res.lastEnd = end
				if ok {
					res.lat = append(res.lat, end.Sub(start))
				} else {
					res.errors++
				}
			}
		})
	}
	wg.Wait()

	var out loadResult
	var last time.Time
	for _, r := range results {
		if r.err != nil {
			return loadResult{}, fmt.Errorf("load: %s: %w", cfg.URL, r.err)
		}
		out.Latencies = append(out.Latencies, r.lat...)
		out.Errors += r.errors
		if r.lastEnd.After(last) {
			last = r.lastEnd
		}
	}
	slices.Sort(out.Latencies)
	if !last.IsZero() {
		out.Elapsed = last.Sub(measureFrom)
	}
	return out, nil
}

// burstResult is what a burst measured.
type burstResult struct {
	Latencies []time.Duration // of every 200 answer, sorted
	Statuses  map[int]int     // how many answers had each status other than 200; 0: no answer
}

// runBurst starts n requests at once, each on its own connection, and
// waits for all of them.
func runBurst(ctx context.Context, target string, n int) (burstResult, error) {
	if err := checkTarget(target); err != nil {
		return burstResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	lat := make([]time.Duration, n)
	status := make([]int, n)
	gate := make(chan struct{})
	var ready, wg sync.WaitGroup
	for i := range n {
		ready.Add(1)
		wg.Go(func() {
			hc := newLoopbackClient(1)
			defer hc.CloseIdleConnections()
			ready.Done()
			<-gate
			start := time.Now()
			code, err := getStatus(ctx, hc, target)
			lat[i] = time.Since(start)
			if err != nil {
				code = 0
			}
			status[i] = code
		})
	}
	ready.Wait()
	close(gate)
	wg.Wait()

	out := burstResult{Statuses: map[int]int{}}
	for i := range n {
		if status[i] == http.StatusOK {
			out.Latencies = append(out.Latencies, lat[i])
		} else {
			out.Statuses[status[i]]++
		}
	}
	slices.Sort(out.Latencies)
	return out, nil
}

// checkTarget refuses any URL but plain HTTP to 127.0.0.1.
func checkTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if u.Scheme != "http" || u.Hostname() != loopback {
		return fmt.Errorf("load: %q: only http://%s is a target", target, loopback)
	}
	return nil
}

// newLoopbackClient returns a client whose transport keeps up to conns
// connections alive, dials only 127.0.0.1 and follows no redirect.
func newLoopbackClient(conns int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host != loopback {
				return nil, fmt.Errorf("load: refusing to dial %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends one GET and reads the whole answer, so the connection is
// reused. ok says the status was 200; err is a failure to get an answer.
func get(ctx context.Context, hc *http.Client, target string) (ok bool, err error) {
	code, err := getStatus(ctx, hc, target)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return false, nil // counted as an error answer, not an end of the run
	}
	return code == http.StatusOK, nil
}

func getStatus(ctx context.Context, hc *http.Client, target string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, cerr := io.Copy(io.Discard, resp.Body)
	err = errors.Join(cerr, resp.Body.Close())
	return resp.StatusCode, err
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted:
// the smallest value with at least p% of the values at or below it. It is
// 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// median is the median of xs (the mean of the middle two for an even
// count); 0 for none. xs is not changed.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
