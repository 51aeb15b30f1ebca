package server_test

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/server"
)

// TestWasmFunctions deploys a WebAssembly function (the text-format
// example, assembled with wabt's wat2wasm) and calls it through the Invoke
// API and its function URL; modules a node could never run are refused at
// deploy.
func TestWasmFunctions(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm (Debian's wabt) is not installed, so the .wat example cannot be built; .ci/run installs it")
	}
	dir := t.TempDir()
	if out, err := exec.Command(wat2wasm, filepath.Join("..", "..", "examples", "hello-wasm-wat", "hello.wat"),
		"-o", filepath.Join(dir, "main.wasm")).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	n := startNode(t, server.Config{})
	ctx := context.Background()
	n.deploy(t, dir, apitype.Config{Name: "wat", Runtime: ptr2("wasm"), Handler: ptr2("main.wasm"), URLAuth: ptr2("none")})
	for range 3 { // each call a fresh instance of the compiled module
		res, err := n.c.Invoke(ctx, "wat", []byte(`{"name":"wisp"}`), client.InvokeOptions{Tail: true})
		if err != nil || res.FunctionError != "" || string(res.Payload) != `{"greeting":"hello from wat"}` {
			t.Fatalf("invoke: %v %q %s", err, res.FunctionError, res.Payload)
		}
		if !strings.Contains(string(res.LogTail), "REPORT RequestId: "+res.RequestID) {
			t.Errorf("no REPORT line: %q", res.LogTail)
		}
	}
	status, body := httpGet(t, n.URL()+"/fn/wat/hi")
	if status != http.StatusOK || !strings.Contains(body, "hello from wat") {
		t.Errorf("function URL: %d %q", status, body)
	}

	// reuse is a wasm setting: other runtimes refuse it.
	_, err = deployErr(t, n, dir, apitype.Config{Name: "reuse-node", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler"), Reuse: ptr2(true)})
	var ve *client.Error
	if !errors.As(err, &ve) || ve.Type != "InvalidParameterValueException" {
		t.Errorf("reuse on nodejs: %v", err)
	}

	for _, tc := range []struct {
		name    string
		files   map[string]string
		handler string
	}{
		{"not wasm", map[string]string{"main.wasm": "this is not a module"}, "main.wasm"},
		{"not wasi", map[string]string{"main.wasm": "\x00asm\x01\x00\x00\x00" +
			"\x01\x04\x01\x60\x00\x00" + // type: () -> ()
			"\x02\x0b\x01\x03env\x03foo\x00\x00"}, "main.wasm"}, // import env.foo
		{"no such module", map[string]string{"other.wasm": "x"}, "main.wasm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := writeFiles(t, tc.files)
			_, err := deployErr(t, n, d, apitype.Config{Name: "bad-wasm", Runtime: ptr2("wasm"), Handler: ptr2(tc.handler)})
			var e *client.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Type != "InvalidCodeException" {
				t.Fatalf("deploy: %v", err)
			}
			if _, err := n.c.GetFunction(ctx, "bad-wasm"); !client.IsNotFound(err) {
				t.Errorf("a refused deploy left a function: %v", err)
			}
		})
	}
}
