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
	"sync/atomic"
	"time"

	"github.com/wisp-dev/wisp/internal/api"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/gateway"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/runtime/process"
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
}

// TokenFile is the admin token file's name in the data dir.
const TokenFile = auth.AdminTokenFile

// Node is one running wisp server.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	reg   *registry.Registry
	logs  *telemetry.Logs
	keys  *auth.Keys
	inv   *invoke.Invoker
	ev    *events.Events
	// capTopic is ev once it is open, for the meter, which opens before
	// it and is called from events' workers as soon as they start.
	capTopic atomic.Pointer[events.Events]
	meter    *meter.Meter
	wasm     *wasm.Driver
	// sandbox starts process instances' sandboxes; nil without.
	sandbox *sandbox.Manager
	// fnTokens are the function instances' own API tokens.
	fnTokens *auth.FunctionTokens
	// metrics reads the invoker's pools at scrape time.
	metrics *telemetry.Metrics
	srv     *http.Server
	ln      *connlimit.Listener
	token   string
	done    chan error // the HTTP server's end

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

	n.store, err = store.Open(ctx, store.Config{
		URL: cfg.NATSURL, Dir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, Logger: n.log,
	})
	if err != nil {
		return nil, err
	}
	if cfg.NATSURL == "" && cfg.NATSListen != "" {
		n.log.Info("embedded nats accepts other nodes", "url", n.store.ClientURL())
	} else if cfg.NATSURL != "" {
		n.log.Info("using external nats", "url", n.store.ClientURL())
	}
	// Listen first: instances are told the node's URL.
	if err := n.listen(connLim); err != nil {
		return nil, errors.Join(err, n.store.Close())
	}
	mux := http.NewServeMux()
	if err := n.openParts(ctx, mux); err != nil {
		// What opened closes, in reverse; what that says goes with err.
		return nil, errors.Join(err, n.closeParts(ctx), n.ln.Close())
	}

	mux.Handle("/v1/", api.New(api.Config{Registry: n.reg, Logs: n.logs, Keys: n.keys, FunctionTokens: n.fnTokens,
		AdminToken: n.token, StageDir: stageDir, Logger: n.log, InsecureNoSandbox: cfg.InsecureNoSandbox,
		CheckCode: wasm.CheckCode, Events: n.ev, Usage: n.meter, Now: cfg.Now, Writable: n.store.Writable}))
	gw := gateway.New(gateway.Config{Invoker: n.inv, Queue: n.ev, Writable: n.store.Writable, AdminToken: n.token, Keys: n.keys, Region: cfg.Region, Logger: n.log, Now: cfg.Now})
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

// openParts opens what the node is made of, in order; closeParts closes
// whatever of it was opened, in reverse.
func (n *Node) openParts(ctx context.Context, handler http.Handler) error {
	var err error
	cfg := n.cfg
	lim := n.sizeLimits(cfg)
	if n.reg, err = registry.Open(ctx, n.store.JS, cfg.Now, n.log, lim.registry); err != nil {
		return err
	}
	n.metrics = telemetry.NewMetrics(func() []telemetry.PoolStat { return n.inv.PoolStats() })
	logsCfg := lim.logs
	logsCfg.Registry, logsCfg.Metrics, logsCfg.Logger, logsCfg.Now = n.reg, n.metrics, n.log, cfg.Now
	logsCfg.CanWrite = n.store.CanWrite
	if n.logs, err = telemetry.OpenLogs(ctx, n.store.JS, logsCfg); err != nil {
		return err
	}
	if n.keys, err = auth.OpenKeys(ctx, n.store.JS, auth.KeysConfig{
		KeyFile: filepath.Join(cfg.DataDir, "keys.key"), Logger: n.log, Now: cfg.Now}); err != nil {
		return err
	}
	pcfg := process.Config{BootstrapDir: filepath.Join(cfg.DataDir, "runtime"),
		NodePath: cfg.NodePath, PythonPath: cfg.PythonPath, Region: cfg.Region, Logger: n.log,
		API: handler, APIURL: n.URL(), Tokens: n.fnTokens}
	if cfg.InsecureNoSandbox {
		n.log.Warn("INSECURE: --insecure-no-sandbox: function instances run WITHOUT a sandbox, as the node's user, " +
			"able to read the data dir (admin token included), other functions' code and the network")
	} else {
		pcfg.Sandbox, pcfg.Unavailable = n.openSandbox()
		n.sandbox = pcfg.Sandbox
	}
	procs, err := process.New(pcfg)
	if err != nil {
		return err
	}
	if n.wasm, err = wasm.New(wasm.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), Region: cfg.Region,
		MaxRunning: cfg.WasmConcurrency, Logger: n.log}); err != nil {
		return err
	}
	driver := runtime.ByRuntime{"provided": procs, "go": procs, "nodejs": procs, "python": procs, "wasm": n.wasm}
	code := runtime.NewCodeCache(filepath.Join(cfg.DataDir, "code"), n.reg.Code)
	memMB := cfg.MemoryMB
	if memMB == 0 {
		memMB = defaultMemoryMB()
	}
	n.log.Info("instance memory budget", "mb", memMB)
	if n.meter, err = meter.Open(ctx, meter.Config{JS: n.store.JS, Now: cfg.Now, Logger: n.log,
		Prices: cfg.Prices, Quota: cfg.Quota, Bus: capBus{n}, MaxBytes: lim.usageBytes}); err != nil {
		return err
	}
	n.inv, err = invoke.New(invoke.Config{Usage: n.meter, Registry: n.reg, Driver: driver, Code: code, Logs: n.logs,
		Logger: n.log, Region: cfg.Region, Now: cfg.Now, Budget: pool.NewBudget(memMB),
		KeepWarm: cfg.KeepWarm, MaxLifetime: cfg.MaxLifetime, Metrics: n.metrics})
	if err != nil {
		return err
	}
	n.ev, err = events.Open(ctx, events.Config{JS: n.store.JS, Invoker: n.inv, Registry: n.reg, Logs: n.logs,
		Metrics: n.metrics, Logger: n.log, Now: cfg.Now, Region: cfg.Region,
		RetryBase: cfg.RetryBase, ThrottleBase: min(cfg.RetryBase, time.Second), AckWait: cfg.EventAckWait,
		Requests: n.inv.Requests,
		Limits:   lim.events, NodeTopics: []string{meter.CapTopic}})
	if err != nil {
		return err
	}
	n.capTopic.Store(n.ev)
	n.metrics.CollectQueued(n.ev.Queued)
	return nil
}

func (n *Node) closeParts(ctx context.Context) error {
	var errs []error
	if n.ev != nil {
		errs = append(errs, n.ev.Close(ctx))
	}
	if n.inv != nil {
		errs = append(errs, n.inv.Close(ctx))
	}
	if n.wasm != nil {
		errs = append(errs, n.wasm.Close(ctx))
	}
	if n.sandbox != nil {
		// Its instances stopped with the invoker: their ids go back.
		errs = append(errs, n.sandbox.Close())
	}
	if n.meter != nil {
		// Its own time: the calls before may have used up ctx's.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		errs = append(errs, n.meter.Close(mctx))
		cancel()
	}
	if n.keys != nil {
		errs = append(errs, n.keys.Close())
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close(ctx))
	}
	if n.reg != nil {
		n.reg.Close()
	}
	errs = append(errs, n.store.Close())
	return errors.Join(errs...)
}

// openSandbox prepares the sandboxes of process instances. Where they
// cannot be made, the node still starts but refuses process instances,
// saying why (fail closed).
func (n *Node) openSandbox() (*sandbox.Manager, error) {
	self, err := os.Executable()
	if err == nil {
		var m *sandbox.Manager
		m, err = sandbox.NewManager(sandbox.ManagerConfig{Self: self, SelfArgs: []string{sandbox.InitArg},
			StateDir: filepath.Join(n.cfg.DataDir, "sandbox"), Logger: n.log})
		if err == nil {
			n.log.Info("function instances are sandboxed", "cgroup_version", m.CgroupVersion())
			return m, nil
		}
	}
	n.log.Error("function instances cannot be sandboxed here, so none will start; "+
		"start the node with --insecure-no-sandbox to run them without one", "err", err)
	return nil, err
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

// capBus is the bus of the node's events once they are open, for the
// meter, which opens before them.
type capBus struct{ n *Node }

func (b capBus) PublishNode(ctx context.Context, topic string, e cloudevent.Event) error {
	ev := b.n.capTopic.Load()
	if ev == nil {
		return errors.New("server: events are not open yet")
	}
	return ev.PublishNode(ctx, topic, e)
}

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

// Events is the node's part of the async queue, the bus and the
// scheduler.
func (n *Node) Events() *events.Events { return n.ev }

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
	// Events stop first, while the API they may call back is still up;
	// the queue keeps what they did not finish for another node.
	var err error
	if n.ev != nil {
		err = n.ev.Close(ctx)
	}
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
	if cerr := n.closeParts(pctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	n.log.Info("wisp node stopped")
	return err
}
