package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/internal/server"
)

func newServerCmd(g *globals) *cobra.Command {
	cfg := server.Config{}
	var logJSON bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Wisp node",
		Long: `Run a Wisp node: the control API, the function gateway and the embedded
state store, with no configuration needed. Stop it with Ctrl-C (SIGINT) or
SIGTERM: in-flight requests finish and the state is flushed to disk.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.AdminToken == "" {
				cfg.AdminToken = g.getenv("WISP_ADMIN_TOKEN")
			}
			var h slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
			if logJSON {
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
			}
			cfg.Logger = slog.New(h)
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
	f.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS server (with JetStream) instead of the embedded one")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "let other nodes connect to the embedded NATS at this address (off by default)")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "control API token (env WISP_ADMIN_TOKEN; default: made on first start in <data-dir>/admin.token)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish at shutdown")
	f.StringVar(&cfg.NodePath, "node", "node", "the Node.js interpreter of the nodejs runtime")
	f.StringVar(&cfg.PythonPath, "python", "python3", "the Python interpreter of the python runtime")
	f.StringVar(&cfg.Region, "region", "us-east-1", "the AWS region functions are told they run in")
	f.IntVar(&cfg.MemoryMB, "memory", 0, "MB of memory all function instances together may take (default half the machine's)")
	f.DurationVar(&cfg.KeepWarm, "keep-warm", 10*time.Minute, "how long an idle instance is kept before it stops (functions may set their own)")
	f.DurationVar(&cfg.MaxLifetime, "max-lifetime", 2*time.Hour, "instances this old are replaced at their next idle moment")
	f.BoolVar(&cfg.InsecureNoSandbox, "insecure-no-sandbox", false, "run function instances WITHOUT a sandbox, as the node's user (only where namespaces and cgroups cannot be had)")
	f.BoolVar(&logJSON, "log-json", false, "log as JSON lines")
	return cmd
}
