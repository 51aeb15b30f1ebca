package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
	"github.com/wisp-dev/wisp/internal/sandbox"
	"github.com/wisp-dev/wisp/internal/server"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not on PATH, so this runtime cannot be tested here", name)
	}
}

// deploy creates a function from a directory.
func (n funcNode) deploy(t *testing.T, dir string, cfg apitype.Config) apitype.Function {
	t.Helper()
	f, err := deployErr(t, n, dir, cfg)
	if err != nil {
		t.Fatalf("deploy %s: %v", cfg.Name, err)
	}
	return f
}

// deployErr creates a function from a directory and returns the API's
// answer, error included.
func deployErr(t *testing.T, n funcNode, dir string, cfg apitype.Config) (apitype.Function, error) {
	t.Helper()
	var buf bytes.Buffer
	if err := client.Pack(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return n.c.CreateFunction(context.Background(), cfg, &buf, int64(buf.Len()), nil)
}

// writeFiles makes a temp dir holding files.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if name == "bootstrap" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	buildOnce sync.Once
	goBinDir  string
	goBinErr  error
)

// helloGo builds examples/hello-go (aws-lambda-go, unmodified) once.
func helloGo(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wisp-hello-go-")
		if err != nil {
			goBinErr = err
			return
		}
		goBinDir = dir
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "lambda.norpc", "-o", filepath.Join(dir, "bootstrap"), ".")
		cmd.Dir = filepath.Join("..", "..", "examples", "hello-go")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			goBinErr = fmt.Errorf("building examples/hello-go: %v\n%s", err, out)
		}
	})
	if goBinErr != nil {
		t.Fatal(goBinErr)
	}
	return goBinDir
}

func TestMain(m *testing.M) {
	// Nodes in this test binary re-execute it as their sandboxes' init.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	// TestAsyncDurability runs nodes in processes of their own, to kill.
	if dir := os.Getenv(testNodeEnv); dir != "" {
		os.Exit(runTestNode(dir))
	}
	code := m.Run()
	if goBinDir != "" {
		os.RemoveAll(goBinDir)
	}
	os.Exit(code)
}

func ptr2[T any](v T) *T { return &v }

// sdkClient is aws-sdk-go-v2's Lambda client, pointed at the node and
// signing with a new Wisp access key.
func (n funcNode) sdkClient(t *testing.T) *lambda.Client {
	t.Helper()
	key, err := n.c.CreateKey(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(n.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""),
	})
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestRuntimes runs unmodified Lambda handlers of every runtime through
// the Invoke API (Wisp's client and aws-sdk-go-v2 signed with SigV4) and
// through their function URLs.
func TestRuntimes(t *testing.T) {
	n := startNode(t, server.Config{})
	sdk := n.sdkClient(t)
	for _, tc := range []struct {
		name, runtime, handler, tool string
		dir                          func(t *testing.T) string
		want                         string // in the answer to {"name":"wisp"}
	}{
		{"go", "go", "bootstrap", "go", helloGo, `"greeting":"hello, wisp"`},
		{"node-async-cjs", "nodejs", "index.handler", "node", func(t *testing.T) string {
			return filepath.Join("..", "..", "examples", "hello-node")
		}, `hello, wisp`},
		{"node-callback", "nodejs", "app.handler", "node", func(t *testing.T) string {
			return writeFiles(t, map[string]string{"app.js": `exports.handler = function (event, context, callback) {
  if (event.requestContext) return callback(null, {statusCode: 200, body: "hello, " + (event.queryStringParameters || {}).name});
  setTimeout(() => callback(null, {greeting: "hello, " + event.name, fn: context.functionName}), 1);
};`})
		}, `hello, wisp`},
		{"node-esm", "nodejs", "lib/main.handler", "node", func(t *testing.T) string {
			return writeFiles(t, map[string]string{"lib/main.mjs": `export const handler = async (event) => {
  const name = event.requestContext ? event.queryStringParameters.name : event.name;
  return event.requestContext ? {statusCode: 200, body: "hello, " + name} : {greeting: "hello, " + name};
};`})
		}, `hello, wisp`},
		{"python", "python", "app.handler", "python3", func(t *testing.T) string {
			return filepath.Join("..", "..", "examples", "hello-python")
		}, `hello, wisp`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needTool(t, tc.tool)
			n.deploy(t, tc.dir(t), apitype.Config{Name: tc.name, Runtime: ptr2(tc.runtime), Handler: ptr2(tc.handler), URLAuth: ptr2("none")})
			ctx := context.Background()

			res, err := n.c.Invoke(ctx, tc.name, []byte(`{"name":"wisp"}`), client.InvokeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.FunctionError != "" || !strings.Contains(string(res.Payload), tc.want) {
				t.Fatalf("invoke: %s %s", res.FunctionError, res.Payload)
			}
			if res.ExecutedVersion != "$LATEST" {
				t.Errorf("executed version %q", res.ExecutedVersion)
			}

			out, err := sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(tc.name), Payload: []byte(`{"name":"wisp"}`), LogType: types.LogTypeTail})
			if err != nil {
				t.Fatalf("aws sdk invoke: %v", err)
			}
			if out.FunctionError != nil || !strings.Contains(string(out.Payload), tc.want) {
				t.Fatalf("aws sdk invoke: %v %s", out.FunctionError, out.Payload)
			}
			if out.StatusCode != 200 || aws.ToString(out.LogResult) == "" {
				t.Errorf("aws sdk invoke: status %d, log result %q", out.StatusCode, aws.ToString(out.LogResult))
			}

			status, body := httpGet(t, n.URL()+"/fn/"+tc.name+"/greet?name=wisp")
			if status != 200 || !strings.Contains(body, "hello, wisp") {
				t.Fatalf("function URL: %d %q", status, body)
			}
		})
	}
}

// TestSigV4Refused checks the Invoke API refuses bad credentials.
func TestSigV4Refused(t *testing.T) {
	n := startNode(t, server.Config{})
	sdk := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(n.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("WISPNOSUCHKEY0000000", "secret", "")})
	_, err := sdk.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("x")})
	if err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestAliasWeights checks an alias sends each version its share of calls.
func TestAliasWeights(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	ctx := context.Background()
	code := func(v string) string {
		return writeFiles(t, map[string]string{"index.js": `exports.handler = async () => "` + v + `";`})
	}
	n.deploy(t, code("one"), apitype.Config{Name: "w", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	if _, _, err := n.c.PublishVersion(ctx, "w", "", 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := client.Pack(code("two"), &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.UpdateCode(ctx, "w", &buf, int64(buf.Len()), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.c.PublishVersion(ctx, "w", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.PutAlias(ctx, "w", "live", apitype.Alias{Version: 1, AdditionalVersion: 2, AdditionalWeight: 0.3}, 0); err != nil {
		t.Fatal(err)
	}
	const calls = 400
	counts := map[string]int{}
	for range calls {
		res, err := n.c.Invoke(ctx, "w", nil, client.InvokeOptions{Qualifier: "live"})
		if err != nil {
			t.Fatal(err)
		}
		counts[res.ExecutedVersion+"="+string(res.Payload)]++
	}
	// 30 % of 400 is 120, with a standard deviation of about 9: ±40 is
	// over four of them.
	if got := counts[`2="two"`]; got < 80 || got > 160 || counts[`1="one"`]+got != calls {
		t.Errorf("alias split %v, want about 120 of %d on version 2", counts, calls)
	}
}

// errorCase is a function that fails in one way, and what the caller must see.
type errorCase struct {
	name, runtime, handler, tool string
	files                        map[string]string
	timeout                      int
	payload                      string
	wantType                     string // errorType in the payload
	urlFails                     bool   // the function URL call fails too (502)
}

func TestInvokeErrors(t *testing.T) {
	n := startNode(t, server.Config{})
	ctx := context.Background()
	node := func(name, body string) errorCase {
		return errorCase{name: name, runtime: "nodejs", handler: "index.handler", tool: "node",
			files: map[string]string{"index.js": body}}
	}
	cases := []errorCase{
		func() errorCase {
			c := node("handler-error", `exports.handler = async (e) => { if (e.fail || e.rawQueryString === "fail=1") throw new TypeError("bad input"); return "ok"; };`)
			c.payload, c.wantType, c.urlFails = `{"fail":true}`, "TypeError", true
			return c
		}(),
		func() errorCase {
			c := node("timeout", `exports.handler = async (e) => { if (e.fail) await new Promise(r => setTimeout(r, 5000)); return "ok"; };`)
			c.timeout, c.payload, c.wantType = 1, `{"fail":true}`, "Sandbox.Timedout"
			return c
		}(),
		func() errorCase {
			c := node("crash", `exports.handler = async (e) => { if (e.fail) process.exit(3); return "ok"; };`)
			c.payload, c.wantType = `{"fail":true}`, "Runtime.ExitError"
			return c
		}(),
		func() errorCase {
			c := node("big-response", `exports.handler = async (e) => e.fail ? "x".repeat(7 * 1024 * 1024) : "ok";`)
			c.payload, c.wantType = `{"fail":true}`, "Function.ResponseSizeTooLarge"
			return c
		}(),
		{name: "init-import", runtime: "nodejs", handler: "missing.handler", tool: "node",
			files: map[string]string{"index.js": "exports.handler = async () => 'ok';"}, payload: `{}`, wantType: "Runtime.ImportModuleError", urlFails: true},
		{name: "init-exit", runtime: "provided", handler: "bootstrap", tool: "sh",
			files: map[string]string{"bootstrap": "#!/bin/sh\necho starting >&2\nexit 3\n"}, payload: `{}`, wantType: "Runtime.InitError", urlFails: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			needTool(t, tc.tool)
			cfg := apitype.Config{Name: tc.name, Runtime: ptr2(tc.runtime), Handler: ptr2(tc.handler), URLAuth: ptr2("none")}
			if tc.timeout != 0 {
				cfg.Timeout = ptr2(tc.timeout)
			}
			n.deploy(t, writeFiles(t, tc.files), cfg)
			res, err := n.c.Invoke(ctx, tc.name, []byte(tc.payload), client.InvokeOptions{Tail: true})
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Type    string `json:"errorType"`
				Message string `json:"errorMessage"`
			}
			if err := json.Unmarshal(res.Payload, &doc); err != nil {
				t.Fatalf("error payload %q: %v", res.Payload, err)
			}
			if res.FunctionError != "Unhandled" || doc.Type != tc.wantType {
				t.Fatalf("got %q %s, want Unhandled %s", res.FunctionError, res.Payload, tc.wantType)
			}
			if tc.wantType == "Sandbox.Timedout" && !strings.Contains(doc.Message, "Task timed out after 1.00 seconds") {
				t.Errorf("timeout message %q", doc.Message)
			}
			if !strings.Contains(string(res.LogTail), "REPORT RequestId: "+res.RequestID) {
				t.Errorf("log tail has no REPORT line: %q", res.LogTail)
			}
			// The function URL answers 502 for the same failure.
			if tc.urlFails {
				if status, body := httpGet(t, n.URL()+"/fn/"+tc.name+"?fail=1"); status != http.StatusBadGateway {
					t.Errorf("function URL: %d %s, want 502", status, body)
				}
			}
			// A following invocation works (for the init failures, it fails
			// the same way, from a fresh instance).
			res, err = n.c.Invoke(ctx, tc.name, []byte(`{}`), client.InvokeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.name, "init-") {
				if res.FunctionError == "" {
					t.Errorf("init failure then success: %s", res.Payload)
				}
				return
			}
			if res.FunctionError != "" || string(res.Payload) != `"ok"` {
				t.Errorf("invocation after %s: %q %s", tc.name, res.FunctionError, res.Payload)
			}
		})
	}
}

func TestInvokeRefusals(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": "exports.handler = async (e) => e;"}),
		apitype.Config{Name: "echo", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	for _, tc := range []struct {
		name, fn, qualifier string
		payload             []byte
		status              int
		errType             string
	}{
		{"unknown function", "nope", "", []byte(`{}`), 404, "ResourceNotFoundException"},
		{"unknown version", "echo", "7", []byte(`{}`), 404, "ResourceNotFoundException"},
		{"unknown alias", "echo", "live", []byte(`{}`), 404, "ResourceNotFoundException"},
		{"not json", "echo", "", []byte(`{nope`), 400, "InvalidRequestContentException"},
		{"too large", "echo", "", bytes.Repeat([]byte(" "), 6<<20+1), 413, "RequestTooLargeException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.c.Invoke(context.Background(), tc.fn, tc.payload, client.InvokeOptions{Qualifier: tc.qualifier})
			e, ok := err.(*client.Error)
			if !ok || e.Status != tc.status || e.Type != tc.errType {
				t.Fatalf("got %v, want %d %s", err, tc.status, tc.errType)
			}
			// And the function still works.
			res, err := n.c.Invoke(context.Background(), "echo", []byte(`{"a":1}`), client.InvokeOptions{})
			if err != nil || string(res.Payload) != `{"a":1}` {
				t.Fatalf("echo after refusal: %v %s", err, res.Payload)
			}
		})
	}
	// A function URL with url_auth token refuses a caller without one.
	status, _ := httpGet(t, n.URL()+"/fn/echo")
	if status != http.StatusForbidden {
		t.Errorf("token-protected URL without a token: %d", status)
	}
	// DryRun checks without running.
	req, _ := http.NewRequest("POST", n.URL()+"/2015-03-31/functions/echo/invocations", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+n.AdminToken())
	req.Header.Set("X-Amz-Invocation-Type", "DryRun")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Errorf("DryRun: %d", res.StatusCode)
	}
}

// TestLogs checks a function's output lands in its log stream with the
// request id, beside Lambda's START, END and REPORT lines.
func TestLogs(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	ctx := context.Background()
	n.deploy(t, writeFiles(t, map[string]string{"index.js": `exports.handler = async (e) => { console.log("hello from", e.who); return "ok"; };`}),
		apitype.Config{Name: "talker", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	res, err := n.c.Invoke(ctx, "talker", []byte(`{"who":"test"}`), client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var msgs []string
		err := n.c.Logs(ctx, "talker", client.LogsOptions{RequestID: res.RequestID}, func(r apitype.LogRecord) error {
			msgs = append(msgs, r.Message)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(msgs, "\n")
		if strings.Contains(all, "hello from test") && strings.Contains(all, "REPORT RequestId: "+res.RequestID) &&
			strings.Contains(all, "START RequestId: "+res.RequestID) && strings.Contains(all, "Init Duration") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs of %s: %q", res.RequestID, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
