package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/server"
)

func newServerCmd(g *globals) *cobra.Command {
	cfg := server.Config{}
	var (
		logJSON  bool
		metering meterFlags
		s3Listen string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Wisp node",
		Long: `Run a Wisp node: the control API, the function gateway and the embedded
state store, with no configuration needed. Stop it with Ctrl-C (SIGINT) or
SIGTERM: in-flight requests finish and the state is flushed to disk.

Every invocation is metered ('wisp usage'): billed as Lambda bills, per
request and per GB-second, at --price-request and --price-gb-second (by
default AWS Lambda's x86 prices). The --quota flags cap all functions'
usage together per hour, day or month (UTC); functions may have their own
quotas too ('wisp deploy --quota-…').

Each function's log is kept in a stream of its own, bounded by the
function's 'wisp deploy --log-max-bytes' and '--log-retention', or else by
--log-max-bytes and --log-retention here. --log-rate bounds what each
function may write per second; past it its lines are dropped, the log says
how many bytes, and wisp_log_dropped_bytes_total counts them.

Each function's queue of events is bounded (--max-queued-events,
--max-queued-bytes; functions may set their own with 'wisp deploy'), and
each topic keeps its own events (--topic-max-bytes, --topic-max-age), so a
flood on one topic ages out only that topic's oldest; --max-topics bounds
the topics callers make.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if cfg.Prices, cfg.Quota, err = metering.config(cmd.Flags()); err != nil {
				return err
			}
			if cfg.AdminToken == "" {
				cfg.AdminToken = g.getenv("WISP_ADMIN_TOKEN")
			}
			if s3Listen != "off" {
				cfg.S3Listen = s3Listen
			}
			var h slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
			if logJSON {
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
			}
			cfg.Logger = slog.New(h)
			// wasm calls run in the node's process and, once running, are
			// not preempted: they get Ps of their own, beside the CPUs'
			// worth the node's requests keep. Their threads run niced
			// once a call is long (see internal/runtime/wasm), so the OS
			// still favours the node's others.
			cpus := goruntime.GOMAXPROCS(0)
			if cfg.WasmConcurrency == 0 {
				cfg.WasmConcurrency = max(1, cpus-1)
			}
			goruntime.GOMAXPROCS(cpus + cfg.WasmConcurrency)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			node, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			<-ctx.Done()
			stop()
			cfg.Logger.Info("shutting down")
			// The node bounds the wait by its ShutdownTimeout.
			if err := node.Shutdown(context.Background()); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", dataDirFrom(g.getenv), "where the node keeps its state")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP address (port 0 picks a free port)")
	f.StringVar(&s3Listen, "s3-listen", "127.0.0.1:9000", "address of the S3 API (port 0 picks a free port; \"off\" serves none)")
	f.StringSliceVar(&cfg.S3Domains, "s3-domain", nil, "base domain under which the S3 API takes virtual-host style requests (BUCKET.DOMAIN); repeatable")
	f.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS server (with JetStream) instead of the embedded one")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "let other nodes connect to the embedded NATS at this address (off by default)")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "control API token (env WISP_ADMIN_TOKEN; default: made on first start in <data-dir>/admin.token)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish at shutdown")
	f.StringVar(&cfg.NodePath, "node", "node", "the Node.js interpreter of the nodejs runtime")
	f.StringVar(&cfg.PythonPath, "python", "python3", "the Python interpreter of the python runtime")
	f.StringVar(&cfg.Region, "region", arn.DefaultRegion, "the node's AWS region: functions are told they run in it, and SigV4 signatures must be scoped to it")
	f.IntVar(&cfg.MemoryMB, "memory", 0, "MB of memory all function instances together may take (default half the machine's)")
	f.DurationVar(&cfg.KeepWarm, "keep-warm", 10*time.Minute, "how long an idle instance is kept before it stops (functions may set their own)")
	f.DurationVar(&cfg.MaxLifetime, "max-lifetime", 2*time.Hour, "instances this old are replaced at their next idle moment")
	f.IntVar(&cfg.MaxConns, "max-conns", 0, "HTTP connections open at once (default half the descriptor limit, at most 65536)")
	f.IntVar(&cfg.MaxUnauthenticatedConns, "max-unauthenticated-conns", 0, "of those, connections that have not made an authenticated request (default half of --max-conns)")
	f.IntVar(&cfg.MaxConnsPerSource, "max-conns-per-source", 0, "unauthenticated connections of one IPv4 address or IPv6 /64 (default a quarter of --max-unauthenticated-conns; raise it behind a proxy)")
	f.IntVar(&cfg.WasmConcurrency, "wasm-concurrency", 0, "wasm calls that may run at once in the node's process, fairly shared by functions (default one fewer than its CPUs, at least 1)")
	f.BoolVar(&cfg.InsecureNoSandbox, "insecure-no-sandbox", false, "run function instances WITHOUT a sandbox, as the node's user (only where namespaces and cgroups cannot be had)")
	lim := &cfg.EventLimits
	f.Int64Var(&lim.MaxQueuedEvents, "max-queued-events", events.DefaultMaxQueuedEvents, "events a function's queue holds at most, unless the function sets its own")
	f.Int64Var(&lim.MaxQueuedBytes, "max-queued-bytes", 0, "bytes of events a function's queue holds at most, unless the function sets its own (default 256MiB, less on a small disk)")
	f.Int64Var(&lim.TopicMaxBytes, "topic-max-bytes", 0, "bytes each topic keeps; past them its oldest events go (default 64MiB, less on a small disk)")
	f.DurationVar(&lim.TopicMaxAge, "topic-max-age", events.DefaultTopicMaxAge, "how long each topic keeps its events")
	f.IntVar(&lim.MaxTopics, "max-topics", events.DefaultMaxTopics, "topics callers may make (the node's own are not counted)")
	metering.add(f)
	f.Var((*byteSize)(&cfg.Logs.DefaultMaxBytes), "log-max-bytes", "how much of each function's log is kept, unless it says otherwise (default 64MiB, less on a small disk)")
	f.DurationVar(&cfg.Logs.DefaultMaxAge, "log-retention", 0, "how long each function's log lines are kept, unless it says otherwise (default 168h, 7 days)")
	f.Var((*byteSize)(&cfg.Logs.Rate), "log-rate", "bytes of log each function may write per second on this node, with 4 seconds of it at once; past it lines are dropped and counted (default 1MiB)")
	f.BoolVar(&logJSON, "log-json", false, "log as JSON lines")
	return cmd
}

// meterFlags are the node's prices and its quota over all functions.
type meterFlags struct {
	perRequest, perGBSecond priceValue
	quota                   quotaFlags
}

func (m *meterFlags) add(fl *pflag.FlagSet) {
	m.perRequest, m.perGBSecond = priceValue(meter.LambdaX86.PerRequest), priceValue(meter.LambdaX86.PerGBSecond)
	fl.Var(&m.perRequest, "price-request", "dollars per request, as AWS Lambda's x86 by default")
	fl.Var(&m.perGBSecond, "price-gb-second", "dollars per GB-second of billed memory-time, as AWS Lambda's x86 by default")
	m.quota.add(fl, "all functions'", false)
}

// config is the node's prices and quota (nil: none) as the flags give
// them.
func (m *meterFlags) config(fl *pflag.FlagSet) (*meter.Prices, *registry.Quota, error) {
	prices := &meter.Prices{PerRequest: float64(m.perRequest), PerGBSecond: float64(m.perGBSecond)}
	if !m.quota.given(fl) {
		return prices, nil, nil
	}
	if err := m.quota.check(fl); err != nil {
		return nil, nil, err
	}
	q, err := m.quota.apply(fl, nil)
	if err != nil {
		return nil, nil, err
	}
	if q.Period == "" { // an empty --quota-period is no quota, as without the flags
		return prices, nil, nil
	}
	return prices, (*registry.Quota)(q), nil
}

// priceValue is a price flag: dollars, in full (0.0000002, not 2e-07).
type priceValue float64

func (p *priceValue) String() string { return strconv.FormatFloat(float64(*p), 'f', -1, 64) }
func (p *priceValue) Type() string   { return "dollars" }

func (p *priceValue) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return errors.New("must be a number of dollars, 0 or more")
	}
	*p = priceValue(v)
	return nil
}
