package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/server"
)

// wispNode is a node under test and how the bench talks to it.
type wispNode struct {
	node    *server.Node
	api     *client.Client
	invoker *http.Client // for single timed calls; keeps its connection alive
}

// startNode starts a node in dir that discards its logs.
func startNode(ctx context.Context, dir string, insecureNoSandbox bool) (*wispNode, error) {
	return startNodeConfig(ctx, server.Config{DataDir: dir, InsecureNoSandbox: insecureNoSandbox})
}

// startNodeConfig starts a node as cfg says, listening on loopback and
// discarding its logs.
func startNodeConfig(ctx context.Context, cfg server.Config) (*wispNode, error) {
	cfg.Listen, cfg.Logger = loopback+":0", slog.New(slog.DiscardHandler)
	node, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &wispNode{node: node, api: client.New(node.URL(), node.AdminToken()), invoker: newLoopbackClient(1)}, nil
}

// stop shuts the node down.
func (n *wispNode) stop(ctx context.Context) error {
	n.invoker.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return n.node.Shutdown(sctx)
}

// runtimeUnderTest is an example function and its code archive.
type runtimeUnderTest struct {
	label, runtime, handler string
	code                    []byte
	skip                    string // why it is not measured; "" when it is
}

// moduleRoot finds the directory of Wisp's go.mod, from the working
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			line, _, rerr := bufio.NewReader(f).ReadLine()
			f.Close()
			if rerr == nil && strings.TrimSpace(string(line)) == "module github.com/wisp-dev/wisp" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run this from inside the wisp module (go run ./bench)")
		}
		dir = parent
	}
}

// buildHelloGo builds examples/hello-go as Lambda's provided runtimes take
// it, and returns the archive of its bootstrap.
func (b *bench) buildHelloGo(ctx context.Context) ([]byte, error) {
	dir := filepath.Join(b.tmp, "hello-go")
	if err := goBuild(ctx, filepath.Join(b.root, "examples", "hello-go"), filepath.Join(dir, "bootstrap"),
		[]string{"CGO_ENABLED=0", "GOOS=linux"}, "-tags", "lambda.norpc"); err != nil {
		return nil, err
	}
	return packDir(dir)
}

// buildExecHello builds the fork/exec baseline: a Go program that prints
// a line and exits.
func (b *bench) buildExecHello(ctx context.Context) (string, error) {
	src := filepath.Join(b.tmp, "exec-hello-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod":  "module hello\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(b.tmp, "exec-hello")
	return bin, goBuild(ctx, src, bin, []string{"CGO_ENABLED=0"})
}

// goBuild runs go build in dir with env added to this process's.
func goBuild(ctx context.Context, dir, out string, env []string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
	}
	return nil
}

func packDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	if err := client.Pack(dir, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bareServer is the baseline: net/http answering what the examples answer.
type bareServer struct {
	srv *http.Server
	url string
}

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, "+r.URL.Query().Get("name")+"\n") //nolint:errcheck // the client left
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	return &bareServer{srv: srv, url: "http://" + ln.Addr().String() + "/hello?name=x"}, nil
}

// deploy creates a fresh function with a public URL on node n and returns
// the URL.
func (b *bench) deploy(ctx context.Context, n *wispNode, prefix string, rt *runtimeUnderTest) (name, url string, err error) {
	b.seq++
	name = fmt.Sprintf("%s-%d", prefix, b.seq)
	_, err = n.api.CreateFunction(ctx, apitype.Config{Name: name, Runtime: &rt.runtime, Handler: &rt.handler,
		URLAuth: ptr("none")}, bytes.NewReader(rt.code), int64(len(rt.code)), nil)
	if err != nil {
		return "", "", fmt.Errorf("deploy %s: %w", name, err)
	}
	return name, n.node.URL() + "/fn/" + name + "?name=x", nil
}

func ptr[T any](v T) *T { return &v }

// call makes one timed call to node n and checks it was answered as the
// examples answer.
func (n *wispNode) call(ctx context.Context, url string) (time.Duration, error) {
	return n.callWant(ctx, url, "hello, x")
}

// callWant makes one timed call to node n and checks it was answered 200
// with a body that begins with want.
func (n *wispNode) callWant(ctx context.Context, url, want string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := n.invoker.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(want)) {
		return 0, fmt.Errorf("%s: %d %q", url, resp.StatusCode, body)
	}
	return took, nil
}
