package server

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"time"

	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/runtime/process"
	"github.com/wisp-dev/wisp/internal/runtime/wasm"
	"github.com/wisp-dev/wisp/internal/store"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// A part is one thing a node is made of. The node opens its parts in the
// order of Node.parts, each after those it uses, and closes them in
// reverse; when one fails to open, those opened before it close.
type part struct {
	name string
	open func(ctx context.Context) error
	// close undoes open; nil when there is nothing to undo.
	close func(ctx context.Context) error
	// early parts run functions of their own accord (the events): at
	// shutdown they stop before the HTTP server, which those functions
	// call back, and the others after it.
	early bool
}

// parts are what the node is made of, in the order they open. handler is
// the node's HTTP API, which process instances call back.
func (n *Node) parts(connLim connLimit, handler http.Handler) []part {
	cfg := n.cfg
	lim := &n.lim // set once the store is open: it follows the store's space
	return []part{
		{name: "store", open: n.openStore, close: func(context.Context) error { return n.store.Close() }},
		// Before the runtimes: instances are told the node's URL.
		{name: "listener", open: func(context.Context) error { return n.listen(connLim) }, close: n.closeListener},
		{name: "registry", open: func(ctx context.Context) (err error) {
			n.reg, err = registry.Open(ctx, n.store.JS, cfg.Now, n.log, lim.registry)
			return err
		}, close: func(context.Context) error { n.reg.Close(); return nil }},
		{name: "metrics", open: func(context.Context) error {
			// The pools are read at scrape time, once the invoker is open.
			n.metrics = telemetry.NewMetrics(func() []telemetry.PoolStat { return n.inv.PoolStats() })
			return nil
		}},
		{name: "logs", open: func(ctx context.Context) (err error) {
			c := lim.logs
			c.Registry, c.Metrics, c.Logger, c.Now, c.CanWrite = n.reg, n.metrics, n.log, cfg.Now, n.store.CanWrite
			n.logs, err = telemetry.OpenLogs(ctx, n.store.JS, c)
			return err
		}, close: func(ctx context.Context) error { return n.logs.Close(ctx) }},
		{name: "keys", open: func(ctx context.Context) (err error) {
			n.keys, err = auth.OpenKeys(ctx, n.store.JS, auth.KeysConfig{
				KeyFile: filepath.Join(cfg.DataDir, "keys.key"), Logger: n.log, Now: cfg.Now})
			return err
		}, close: func(context.Context) error { return n.keys.Close() }},
		{name: "objects", open: n.openObjects, close: n.closeObjects},
		{name: "s3", open: func(ctx context.Context) error { return n.openS3(ctx, connLim.Limits) }, close: n.closeS3},
		// Its instances stop with the invoker, before it closes: their
		// ids go back.
		{name: "sandbox", open: n.openSandbox, close: n.closeSandbox},
		{name: "runtimes", open: func(context.Context) error { return n.openRuntimes(handler) },
			close: func(ctx context.Context) error { return n.wasm.Close(ctx) }},
		{name: "catalog", open: func(ctx context.Context) (err error) {
			n.catalog, err = events.OpenCatalog(ctx, events.CatalogConfig{JS: n.store.JS, Now: cfg.Now, Logger: n.log})
			return err
		}, close: func(ctx context.Context) error { return n.catalog.Close(ctx) }},
		{name: "bus", open: func(context.Context) (err error) {
			n.bus, err = events.OpenBus(events.BusConfig{JS: n.store.JS, Catalog: n.catalog, Registry: n.reg,
				Metrics: n.metrics, Logger: n.log, Now: cfg.Now, Limits: lim.events, NodeTopics: []string{meter.CapTopic}})
			return err
		}},
		{name: "meter", open: func(ctx context.Context) (err error) {
			n.meter, err = meter.Open(ctx, meter.Config{JS: n.store.JS, Now: cfg.Now, Logger: n.log,
				Prices: cfg.Prices, Quota: cfg.Quota, Bus: n.bus, MaxBytes: lim.usageBytes})
			return err
		}, close: func(ctx context.Context) error {
			// Its own time: the calls before may have used up ctx's.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return n.meter.Close(mctx)
		}},
		{name: "invoker", open: n.openInvoker, close: func(ctx context.Context) error { return n.inv.Close(ctx) }},
		{name: "queue", early: true, open: func(ctx context.Context) (err error) {
			n.queue, err = events.OpenQueue(ctx, events.QueueConfig{JS: n.store.JS, Invoker: n.inv, Registry: n.reg,
				Bus: n.bus, Logs: n.logs, Metrics: n.metrics, Logger: n.log, Now: cfg.Now, Region: cfg.Region,
				RetryBase: cfg.RetryBase, ThrottleBase: min(cfg.RetryBase, time.Second), AckWait: cfg.EventAckWait,
				Requests: n.inv.Requests, Limits: lim.events})
			if err == nil {
				n.metrics.CollectQueued(n.queue.Queued)
			}
			return err
		}, close: func(ctx context.Context) error { return n.queue.Close(ctx) }},
		{name: "router", early: true, open: func(ctx context.Context) (err error) {
			n.router, err = events.OpenRouter(ctx, events.RouterConfig{JS: n.store.JS, Invoker: n.inv,
				Catalog: n.catalog, Bus: n.bus, Queue: n.queue, Logger: n.log, Now: cfg.Now})
			return err
		}, close: func(ctx context.Context) error { return n.router.Close(ctx) }},
		{name: "scheduler", early: true, open: func(ctx context.Context) (err error) {
			n.scheduler, err = events.OpenScheduler(ctx, events.SchedulerConfig{JS: n.store.JS, Registry: n.reg,
				Queue: n.queue, Logger: n.log, Now: cfg.Now, Region: cfg.Region})
			return err
		}, close: func(ctx context.Context) error { return n.scheduler.Close(ctx) }},
	}
}

// openParts opens parts in order, keeping those opened for closeParts;
// on a failure it closes them, in reverse, and returns what that said too.
func (n *Node) openParts(ctx context.Context, parts []part) error {
	for _, p := range parts {
		n.log.Debug("server: opening a part", "part", p.name)
		if err := p.open(ctx); err != nil {
			return errors.Join(err, n.closeParts(ctx, all))
		}
		n.opened = append(n.opened, p)
	}
	return nil
}

// closeParts closes the opened parts that which picks, in reverse order
// of opening, and forgets them.
func (n *Node) closeParts(ctx context.Context, which func(part) bool) error {
	var errs []error
	kept := n.opened[:0:0]
	for i := len(n.opened) - 1; i >= 0; i-- {
		p := n.opened[i]
		if !which(p) {
			kept = append([]part{p}, kept...)
			continue
		}
		if p.close != nil {
			errs = append(errs, p.close(ctx))
		}
	}
	n.opened = kept
	return errors.Join(errs...)
}

func all(part) bool     { return true }
func early(p part) bool { return p.early }

func (n *Node) openStore(ctx context.Context) (err error) {
	n.store, err = store.Open(ctx, store.Config{
		URL: n.cfg.NATSURL, Dir: filepath.Join(n.cfg.DataDir, "nats"), Listen: n.cfg.NATSListen, Logger: n.log,
	})
	if err != nil {
		return err
	}
	n.lim = n.sizeLimits(n.cfg)
	if n.cfg.NATSURL == "" && n.cfg.NATSListen != "" {
		n.log.Info("embedded nats accepts other nodes", "url", n.store.ClientURL())
	} else if n.cfg.NATSURL != "" {
		n.log.Info("using external nats", "url", n.store.ClientURL())
	}
	return nil
}

// closeListener closes the listener unless the HTTP server took it, which
// closes it at shutdown.
func (n *Node) closeListener(context.Context) error {
	if n.srv != nil {
		return nil
	}
	return n.ln.Close()
}

func (n *Node) closeSandbox(context.Context) error {
	if n.sandbox == nil {
		return nil
	}
	return n.sandbox.Close()
}

// openRuntimes makes the drivers of the functions' runtimes: processes
// (in the sandbox, unless the node runs without) and wasm.
func (n *Node) openRuntimes(handler http.Handler) error {
	cfg := n.cfg
	pcfg := process.Config{BootstrapDir: filepath.Join(cfg.DataDir, "runtime"),
		NodePath: cfg.NodePath, PythonPath: cfg.PythonPath, Region: cfg.Region, Logger: n.log,
		API: handler, APIURL: n.URL(), Tokens: n.fnTokens, Sandbox: n.sandbox, Unavailable: n.noSandbox}
	procs, err := process.New(pcfg)
	if err != nil {
		return err
	}
	if n.wasm, err = wasm.New(wasm.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), Region: cfg.Region,
		MaxRunning: cfg.WasmConcurrency, Logger: n.log}); err != nil {
		return err
	}
	n.driver = runtime.ByRuntime{"provided": procs, "go": procs, "nodejs": procs, "python": procs, "wasm": n.wasm}
	return nil
}

func (n *Node) openInvoker(context.Context) (err error) {
	cfg := n.cfg
	memMB := cfg.MemoryMB
	if memMB == 0 {
		memMB = defaultMemoryMB()
	}
	n.log.Info("instance memory budget", "mb", memMB)
	n.inv, err = invoke.New(invoke.Config{Usage: n.meter, Registry: n.reg, Driver: n.driver,
		Code: runtime.NewCodeCache(filepath.Join(cfg.DataDir, "code"), n.reg.Code), Logs: n.logs,
		Logger: n.log, Region: cfg.Region, Now: cfg.Now, Budget: pool.NewBudget(memMB),
		KeepWarm: cfg.KeepWarm, MaxLifetime: cfg.MaxLifetime, Metrics: n.metrics})
	return err
}
