package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/server"
)

// funcNode is a node started for a test, with an admin client of its API.
// A node in a process of its own has only the client.
type funcNode struct {
	*server.Node
	c *client.Client
}

// startNode is the one way these tests boot a node in-process, as
// nats-server's test.RunServer: on cfg, with a temp data dir and
// 127.0.0.1:0 unless cfg says otherwise, shut down when the test ends. A
// test that restarts a node stops it first (stop); Shutdown then returns
// at once at the end.
func startNode(t *testing.T, cfg server.Config) funcNode {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	n, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, n) })
	return funcNode{n, client.New(n.URL(), n.AdminToken())}
}

func stop(t *testing.T, n *server.Node) {
	t.Helper()
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// stop shuts the node down before the test ends.
func (n funcNode) stop(t *testing.T) {
	t.Helper()
	stop(t, n.Node)
}

// fastRetry is the retry base of nodes whose tests wait for events to be
// retried; the default would make them wait seconds.
const fastRetry = 100 * time.Millisecond

// jetStream connects to the NATS of a node started with NATSListen, to
// look at its streams.
func jetStream(t *testing.T, n funcNode) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// announce writes where a node in a process of its own listens, to
// dir/node.json, for the test that started the process (see announced).
func announce(dir string, n *server.Node) error {
	b, err := json.Marshal(map[string]string{"url": n.URL(), "token": n.AdminToken()})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "node.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "node.json"))
}

// announced waits for the node process on dir to announce itself and
// returns its URL and admin token.
func announced(t *testing.T, dir string) (url, token string) {
	t.Helper()
	var where struct{ URL, Token string }
	waitUntil(t, 60*time.Second, "the node process listens", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "node.json"))
		return err == nil && json.Unmarshal(b, &where) == nil
	})
	return where.URL, where.Token
}
