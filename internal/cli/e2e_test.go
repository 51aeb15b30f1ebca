package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisp-dev/wisp/internal/server"
)

// TestQuickstart walks the README's quickstart against a real node: deploy a
// directory, list it, publish a version, set an alias, restart the node and
// find all of it there. The CLI finds the node's token the way a new user's
// does: from the admin.token file in the default data dir.
func TestQuickstart(t *testing.T) {
	xdg := t.TempDir()
	dataDir := filepath.Join(xdg, "wisp")
	startNode := func(listen string) *server.Node {
		n, err := server.Start(context.Background(), server.Config{DataDir: dataDir, Listen: listen})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := startNode("127.0.0.1:0")
	env := []string{"XDG_DATA_HOME=" + xdg, "WISP_URL=" + n.URL()}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, env, args...)
		if err != nil {
			t.Fatalf("wisp %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}

	dir := filepath.Join("..", "..", "examples", "hello-node")
	out := run("deploy", dir, "--name", "hello", "--runtime", "nodejs", "--handler", "index.handler", "--env", "GREETING=hi", "--url-auth", "none")
	if !strings.Contains(out, "created hello") {
		t.Errorf("deploy said %q", out)
	}
	// Deploying the same directory again updates it, keeping its sha.
	out = run("deploy", dir, "--name", "hello", "--memory", "256")
	if !strings.Contains(out, "updated hello") {
		t.Errorf("second deploy said %q", out)
	}
	if out := run("ls"); !strings.Contains(out, "hello") || !strings.Contains(out, "nodejs") {
		t.Errorf("ls: %q", out)
	}
	if out := run("publish", "hello"); !strings.Contains(out, "version 1") {
		t.Errorf("publish: %q", out)
	}
	run("alias", "set", "hello", "live", "1")
	if _, err := exec.LookPath("node"); err == nil {
		if out := run("invoke", "hello", "--data", `{"name":"quickstart"}`, "--qualifier", "live"); !strings.Contains(out, "hello, quickstart") {
			t.Errorf("invoke: %q", out)
		}
		// The README's curl of the function URL.
		res, err := http.Get(n.URL() + "/fn/hello?name=curl")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || string(body) != "hello, curl\n" {
			t.Errorf("function URL: %d %q %v", res.StatusCode, body, err)
		}
		// wisp logs shows the output with its request id and REPORT line.
		deadline := time.Now().Add(5 * time.Second)
		for out := ""; !strings.Contains(out, "REPORT RequestId: ") || !strings.Contains(out, "Billed Duration"); out = run("logs", "hello") {
			if time.Now().After(deadline) {
				t.Fatalf("wisp logs: %q", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	} else {
		t.Logf("node is not on PATH: the invoke steps of the quickstart are not tested here")
	}

	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	n = startNode("127.0.0.1:0")
	defer func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	env[1] = "WISP_URL=" + n.URL()

	var f struct {
		Name     string
		MemoryMB int `json:"memory_mb"`
		Env      map[string]string
	}
	if err := json.Unmarshal([]byte(run("get", "hello", "-o", "json")), &f); err != nil {
		t.Fatal(err)
	}
	if f.MemoryMB != 256 || f.Env["GREETING"] != "hi" {
		t.Errorf("after restart: %+v", f)
	}
	if out := run("versions", "hello"); !strings.Contains(out, "1") {
		t.Errorf("versions after restart: %q", out)
	}
	if out := run("alias", "get", "hello", "live"); !strings.Contains(out, "1") {
		t.Errorf("alias after restart: %q", out)
	}
	run("rm", "hello")
	_, errOut, err := runCLI(t, env, "get", "hello")
	if err == nil || !strings.Contains(errOut, "ResourceNotFoundException") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("get after rm: err %v, stderr %q", err, errOut)
	}
}

// TestInvokeEveryRuntime deploys each example with wisp deploy (the Go one
// from source, built by the CLI) and calls it with wisp invoke.
func TestInvokeEveryRuntime(t *testing.T) {
	n, err := server.Start(context.Background(), server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	env := []string{"WISP_URL=" + n.URL(), "WISP_TOKEN=" + n.AdminToken()}
	// The Go build uses the machine's module and build caches, not the
	// empty ones of the test's own HOME.
	for _, v := range []string{"GOPATH", "GOMODCACHE", "GOCACHE"} {
		out, err := exec.Command("go", "env", v).Output()
		if err == nil {
			env = append(env, v+"="+strings.TrimSpace(string(out)))
		}
	}
	for _, tc := range []struct {
		name, tool string
		args       []string
	}{
		{"hello-go", "go", []string{"--runtime", "go"}},
		{"hello-node", "node", []string{"--runtime", "nodejs", "--handler", "index.handler"}},
		{"hello-python", "python3", []string{"--runtime", "python", "--handler", "app.handler"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s is not on PATH: this runtime cannot be tested here", tc.tool)
			}
			args := append([]string{"deploy", filepath.Join("..", "..", "examples", tc.name)}, tc.args...)
			if _, errOut, err := runCLI(t, env, args...); err != nil {
				t.Fatalf("deploy: %v\n%s", err, errOut)
			}
			out, errOut, err := runCLI(t, env, "invoke", tc.name, "--data", `{"name":"cli"}`, "--log")
			if err != nil {
				t.Fatalf("invoke: %v\n%s", err, errOut)
			}
			if !strings.Contains(out, "hello, cli") || !strings.Contains(errOut, "REPORT RequestId:") {
				t.Errorf("invoke printed %q, log %q", out, errOut)
			}
		})
	}
	// A function error is one line on stderr and a non-zero exit.
	_, errOut, err := runCLI(t, env, "invoke", "nope")
	if err == nil || !strings.Contains(errOut, "ResourceNotFoundException") {
		t.Errorf("invoke of a missing function: %v %q", err, errOut)
	}
}
