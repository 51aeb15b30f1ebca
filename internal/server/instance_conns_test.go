package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/server"
)

// hogJS opens sockets to its own Runtime API and keeps them: 100 at init,
// before its runtime asks for its first invocation, and 100 more in each
// invocation.
const hogJS = `import net from 'node:net';
const api = process.env.AWS_LAMBDA_RUNTIME_API;
const i = api.lastIndexOf(':');
const held = [];
function open(n) {
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = net.connect(Number(api.slice(i + 1)), api.slice(0, i));
    s.on('connect', () => resolve(1));
    s.on('error', () => resolve(0));
    held.push(s);
  }))).then((ok) => ok.reduce((a, b) => a + b, 0));
}
const atInit = await open(100);
export const handler = async () => {
  const now = await open(100);
  return { atInit, now };
};
`

// socketFiles counts this process's open sockets.
func socketFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestFunctionSocketsCapped: a function that opens hundreds of
// connections to its Runtime API and leaves them open holds only a few of
// the node's descriptors; its runtime still gets its invocations (the
// first one included, though its sockets came before the runtime's), and
// the node still serves other calls.
func TestFunctionSocketsCapped(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	ctx := context.Background()
	dir := writeFiles(t, map[string]string{"index.mjs": hogJS})
	n.deploy(t, filepath.Join("..", "..", "examples", "hello-node"), apitype.Config{Name: "hello", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	for _, network := range []string{"none", "host"} {
		t.Run("network "+network, func(t *testing.T) {
			name := "hog-" + network
			n.deploy(t, dir, apitype.Config{Name: name, Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Network: ptr2(network), Timeout: ptr2(10)})
			before := socketFiles(t)
			for i := range 2 {
				res, err := n.c.Invoke(ctx, name, []byte(`{}`), client.InvokeOptions{})
				if err != nil || res.FunctionError != "" {
					t.Fatalf("invocation %d of the function that hogs sockets: %s %v", i+1, res.Payload, err)
				}
				var got struct{ AtInit, Now int }
				if err := json.Unmarshal(res.Payload, &got); err != nil || got.AtInit != 100 || got.Now != 100 {
					t.Fatalf("invocation %d: %s %v, want 100 sockets connected at init and 100 now", i+1, res.Payload, err)
				}
				// Its sockets that are still open hold at most the
				// instance's caps of the node's descriptors.
				if grew := socketFiles(t) - before; grew > 2*16 {
					t.Errorf("after invocation %d the node holds %d more sockets", i+1, grew)
				}
				res, err = n.c.Invoke(ctx, "hello", []byte(`{"name":"neighbour"}`), client.InvokeOptions{})
				if err != nil || !strings.Contains(string(res.Payload), "hello, neighbour") {
					t.Fatalf("another function beside it: %s %v", res.Payload, err)
				}
				if code, body := httpGet(t, n.URL()+"/healthz"); code != http.StatusOK {
					t.Fatalf("healthz beside it: %d %q", code, body)
				}
			}
		})
	}
}
