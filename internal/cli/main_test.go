package cli

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/internal/sandbox"
	"github.com/wisp-dev/wisp/internal/server"
)

// TestMain lets the nodes of these tests re-execute the test binary as
// their sandboxes' init.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	os.Exit(m.Run())
}

// startNode starts a node for a test and returns the environment that
// points the CLI at it, and a run that fails the test when a command fails.
func startNode(t *testing.T, cfg server.Config) (env []string, run func(args ...string) string) {
	t.Helper()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	n, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	env = []string{"WISP_URL=" + n.URL(), "WISP_TOKEN=" + n.AdminToken()}
	return env, func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, env, args...)
		if err != nil {
			t.Fatalf("wisp %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
}
