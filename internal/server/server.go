// Package server assembles a Wisp node from its parts and owns their start
// and stop order. A node is a value: a test can start several in one process.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/api"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/gateway"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/nodestats"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/runtime/wasm"
	"github.com/wisp-dev/wisp/internal/sandbox"
	"github.com/wisp-dev/wisp/internal/store"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// Config is a node's configuration. Only DataDir is required; every other
// zero value means the documented default.
type Config struct {
	// DataDir holds the node's state: JetStream data, the admin token file,
	// staged uploads.
	DataDir string
	// Listen is the HTTP address; default 127.0.0.1:8080. Port 0 picks one.
	Listen string
	// NATSURL uses an existing NATS server instead of the embedded one.
	NATSURL string
	// NATSListen lets other nodes connect to the embedded NATS; default off.
	NATSListen string
	// AdminToken is the control API's bearer token; default: read from (or,
	// on first start, created in) DataDir/admin.token.
	AdminToken string
	// ShutdownTimeout bounds how long in-flight requests may finish; default 10s.
	ShutdownTimeout time.Duration
	// NodePath and PythonPath are the interpreters of the nodejs and python
	// runtimes; default "node" and "python3" from PATH.
	NodePath, PythonPath string
	// Region is the node's AWS region: functions are told they run in it,
	// and SigV4 signatures must be scoped to it; default us-east-1.
	Region string
	// MemoryMB is the memory all instances together may take; default
	// half of the machine's.
	MemoryMB int
	// KeepWarm is how long an idle instance stays before it stops, unless
	// its function says otherwise; default 10 minutes.
	KeepWarm time.Duration
	// MaxLifetime recycles instances this old; default 2 hours.
	MaxLifetime time.Duration
	// InsecureNoSandbox runs process instances without a sandbox, as the
	// node's user. Without it, a node that cannot sandbox refuses them.
	InsecureNoSandbox bool
	// WasmConcurrency bounds the wasm calls running at once, in the
	// node's own process; calls past it wait, fairly between functions.
	// Default one fewer than GOMAXPROCS (the CPUs the node uses), at
	// least 1, so that looping wasm calls leave the node a CPU.
	WasmConcurrency int
	// RetryBase is the wait before a failed event's first retry, doubled
	// for each next one up to 5 minutes; default 1 minute, as Lambda.
	RetryBase time.Duration
	// EventAckWait is how long a node may go silent on an event before
	// another node (or this one, restarted) runs it; default 30s.
	EventAckWait time.Duration
	// Logs bounds the functions' logs: their default size and age, their
	// rate, what the node buffers. The node sets its Registry, Metrics,
	// Logger and Now.
	Logs telemetry.LogsConfig
	// EventLimits bound the functions' queues and the topics; zero
	// fields take events' defaults.
	EventLimits events.Limits
	// Prices turn usage into cost; default Lambda's x86 prices.
	Prices *meter.Prices
	// Quota caps all functions together per period; nil: none.
	Quota  *registry.Quota
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxConns caps the HTTP connections open at once; default half the
	// descriptor limit (which the node raises to its hard limit at start),
	// at most 65536. MaxUnauthenticatedConns caps those that have not yet
	// made an authenticated request; default half of MaxConns.
	// MaxConnsPerSource caps those of one source address (an IPv4 address
	// or an IPv6 /64); default a quarter of MaxUnauthenticatedConns. When a
	// cap is full a new connection closes an unauthenticated one, idle
	// ones first, rather than being turned away.
	MaxConns, MaxUnauthenticatedConns, MaxConnsPerSource int
	// S3Listen is the address of the S3 API; "" serves none (the CLI's
	// default is 127.0.0.1:9000). S3Domains are the base domains under
	// which it takes virtual-host style requests (BUCKET.DOMAIN); an IP
	// address or localhost is always path style.
	S3Listen  string
	S3Domains []string
}

// Node is one running wisp server.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	reg   *registry.Registry
	logs  *telemetry.Logs
	keys  *auth.Keys
	// sandbox starts process instances' sandboxes; nil without, and then
	// noSandbox says why, unless the node runs without on purpose.
	sandbox   *sandbox.Manager
	noSandbox error
	wasm      *wasm.Driver
	driver    runtime.ByRuntime
	catalog   *events.Catalog
	bus       *events.Bus
	meter     *meter.Meter
	inv       *invoke.Invoker
	queue     *events.Queue
	router    *events.Router
	scheduler *events.Scheduler
	// fnTokens are the function instances' own API tokens.
	fnTokens *auth.FunctionTokens
	// metrics reads the invoker's pools at scrape time.
	metrics *telemetry.Metrics
	srv     *http.Server
	ln      *connlimit.Listener
	token   string
	done    chan error // the HTTP server's end
	// s3 is the S3 API: the object store and its listener.
	s3 s3Node
	// lim are the bounds that follow the store's space.
	lim storeLimits
	// opened are the parts opened, in order (see parts).
	opened []part

	// shutdownOnce runs the shutdown once; stopped is closed when it has
	// ended, with shutdownErr its result.
	shutdownOnce sync.Once
	stopped      chan struct{}
	shutdownErr  error
}

// Start starts a node and returns once it serves.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: a data dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WasmConcurrency < 0 {
		return nil, fmt.Errorf("server: the wasm concurrency must be 0 (the default) or more, not %d", cfg.WasmConcurrency)
	}
	if cfg.Quota != nil {
		if err := registry.CheckQuota(*cfg.Quota); err != nil {
			return nil, fmt.Errorf("server: the node's quota: %w", err)
		}
	}
	n := &Node{cfg: cfg, log: cfg.Logger, done: make(chan error, 1), stopped: make(chan struct{}), fnTokens: auth.NewFunctionTokens()}
	connLim, err := connLimits(cfg, raiseFileLimit(n.log))
	if err != nil {
		return nil, err
	}
	stageDir := filepath.Join(cfg.DataDir, "tmp")
	if err := os.MkdirAll(stageDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	if err := clearDir(stageDir); err != nil {
		return nil, err
	}
	if n.token = cfg.AdminToken; n.token == "" {
		if n.token, err = auth.AdminToken(cfg.DataDir, n.log); err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	if err := n.openParts(ctx, n.parts(connLim, mux)); err != nil {
		return nil, err
	}

	mux.Handle("/v1/", api.New(api.Config{Registry: n.reg, Logs: n.logs, Keys: n.keys, FunctionTokens: n.fnTokens,
		AdminToken: n.token, StageDir: stageDir, Logger: n.log, InsecureNoSandbox: cfg.InsecureNoSandbox,
		CheckCode: wasm.CheckCode, Events: n.Events(), Usage: n.meter, Now: cfg.Now, Writable: n.store.Writable,
		Stats: func() ([]apitype.FunctionStats, error) { return nodestats.Gather(n.metrics) }}))
	gw := gateway.New(gateway.Config{Invoker: n.inv, Queue: n.queue, Writable: n.store.Writable, AdminToken: n.token, Keys: n.keys, Region: cfg.Region, Logger: n.log, Now: cfg.Now})
	mux.Handle("/2015-03-31/", gw)
	mux.Handle("/fn/", gw)
	mux.Handle("GET /metrics", api.AdminOnly(n.token, n.fnTokens, n.log, n.metrics.Handler()))
	mux.HandleFunc("GET /healthz", n.healthz)

	n.srv = n.httpServer(mux)
	// Followed log streams never end by themselves; shutdown ends them.
	n.srv.RegisterOnShutdown(n.logs.StopFollowing)
	go func() { n.done <- n.srv.Serve(n.ln) }()
	n.log.Info("wisp node listening", "url", n.URL(), "data_dir", cfg.DataDir)
	return n, nil
}

// openSandbox prepares the sandboxes of process instances. Where they
// cannot be made, the node still starts but refuses process instances,
// saying why (fail closed).
func (n *Node) openSandbox(context.Context) error {
	if n.cfg.InsecureNoSandbox {
		n.log.Warn("INSECURE: --insecure-no-sandbox: function instances run WITHOUT a sandbox, as the node's user, " +
			"able to read the data dir (admin token included), other functions' code and the network")
		return nil
	}
	self, err := os.Executable()
	if err == nil {
		var m *sandbox.Manager
		m, err = sandbox.NewManager(sandbox.ManagerConfig{Self: self, SelfArgs: []string{sandbox.InitArg},
			StateDir: filepath.Join(n.cfg.DataDir, "sandbox"), Logger: n.log})
		if err == nil {
			n.log.Info("function instances are sandboxed", "cgroup_version", m.CgroupVersion())
			n.sandbox = m
			return nil
		}
	}
	n.log.Error("function instances cannot be sandboxed here, so none will start; "+
		"start the node with --insecure-no-sandbox to run them without one", "err", err)
	n.noSandbox = err
	return nil
}

// defaultMemoryMB is half the machine's memory, or 4 GiB where the
// machine does not say.
func defaultMemoryMB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 4096
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil && kb > 0 {
				return kb / 1024 / 2
			}
		}
	}
	return 4096
}

// clearDir empties a scratch dir left by an earlier run.
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	return nil
}

// URL is the node's HTTP base URL, with the port it really listens on.
func (n *Node) URL() string { return "http://" + n.ln.Addr().String() }

// NATSURL is where other nodes reach this node's NATS: the embedded server's
// listener (empty unless NATSListen is set) or the external server.
func (n *Node) NATSURL() string { return n.store.ClientURL() }

// AdminToken is the control API's bearer token.
func (n *Node) AdminToken() string { return n.token }

// Instances returns the instances this node runs, by function version.
func (n *Node) Instances() []telemetry.PoolStat { return n.inv.PoolStats() }

// healthz answers "ok" while the node can do its work, and 503 with the
// reason while it cannot write its state (a full disk, JetStream
// restarting): invocations may still run, but deploys and events cannot
// be taken.
func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := n.store.Writable(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err) //nolint:errcheck // nothing to do if the prober left
		return
	}
	io.WriteString(w, "ok\n") //nolint:errcheck // as above
}

// Meter is the node's usage meter.
func (n *Node) Meter() *meter.Meter { return n.meter }

// Events are the node's parts of the events, as one value: the control
// API serves their topics, subscriptions and schedules.
type Events struct {
	*events.Queue
	*events.Bus
	*events.Router
	*events.Scheduler
}

// Events are the node's parts of the async queue, the bus, the
// subscriptions and the scheduler.
func (n *Node) Events() Events { return Events{n.queue, n.bus, n.router, n.scheduler} }

// Registry is the node's view of the function registry.
func (n *Node) Registry() *registry.Registry { return n.reg }

// Shutdown stops taking requests, lets in-flight ones finish (within
// ShutdownTimeout and ctx), and closes the state store, flushing it. A
// second call waits for the first to end (or for its own ctx) and
// returns the same result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		n.shutdownErr = n.shutdown(ctx)
		close(n.stopped)
	})
	select {
	case <-n.stopped:
		return n.shutdownErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
	defer cancel()
	// Events stop first, while the API their functions call back is still
	// up; the queue keeps what they did not finish for another node.
	err := n.closeParts(ctx, early)
	if serr := n.srv.Shutdown(ctx); serr != nil {
		err = errors.Join(err, serr)
		n.log.Warn("in-flight requests cut off at shutdown", "err", serr)
		n.srv.Close()
	}
	if serr := <-n.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	// The parts get their own bound: a shutdown that ran out of time for
	// requests must still stop every instance and flush the logs.
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer pcancel()
	if cerr := n.closeParts(pctx, all); cerr != nil {
		err = errors.Join(err, cerr)
	}
	n.log.Info("wisp node stopped")
	return err
}
