package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/server"
)

// signAs signs req with aws-sdk-go-v2's signer, as the SDKs sign.
func signAs(t *testing.T, req *http.Request, key apitype.AccessKey, payloadHash, service, region string, at time.Time) {
	t.Helper()
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, service, region, at); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// stalledBody is a request body whose first n bytes come at once and whose
// rest never does, until release is closed: a node that read it before
// answering would never answer.
type stalledBody struct {
	n       int
	release <-chan struct{}
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		<-b.release
		return 0, errors.New("the test is done with this body")
	}
	k := min(len(p), b.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	b.n -= k
	return k, nil
}

// sendStalled writes req with a body that stalls after its first 64 KB
// on a connection of its own, and returns the node's answer: its status,
// X-Amzn-ErrorType and body. length is the Content-Length to declare, or
// -1 for a chunked body.
func sendStalled(t *testing.T, addr string, req *http.Request, length int64) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	release := make(chan struct{})
	req.Body = io.NopCloser(&stalledBody{n: 64 << 10, release: release})
	req.ContentLength = length
	wrote := make(chan error, 1)
	go func() { wrote <- req.Write(conn) }()
	defer func() {
		close(release)
		conn.Close()
		<-wrote // ends once released or the connection is gone
	}()
	// A bound so that a node waiting for the body fails the test instead of
	// hanging it.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("no answer while the body was still coming: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("X-Amzn-ErrorType"), string(b)
}

// TestAuthBeforeBody checks that a caller who fails every check that does
// not need the body is refused before the node reads a byte of it: the
// answer is 401 or 403 (not 413 for a 7 MB body) and comes while the body
// has not been sent, whether its length is declared or it is chunked.
func TestAuthBeforeBody(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": "exports.handler = async (e) => e;"}),
		apitype.Config{Name: "echo", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	key, err := n.c.CreateKey(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(n.URL(), "http://")
	anyHash := sha256Hex(nil) // these requests fail before their payload counts
	now := time.Now()

	callers := []struct {
		name string
		// prepare adds the credentials to a request.
		prepare func(t *testing.T, req *http.Request)
		status  int
		errType string
		msg     string // in the Invoke API's message
	}{
		{"none", func(*testing.T, *http.Request) {}, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"wrong bearer token", func(t *testing.T, req *http.Request) {
			req.Header.Set("Authorization", "Bearer not-the-token")
		}, 401, "UnauthorizedException", "wrong bearer token"},
		{"malformed signature", func(t *testing.T, req *http.Request) {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=nonsense")
			req.Header.Set("X-Amz-Date", now.UTC().Format("20060102T150405Z"))
		}, 403, "InvalidSignatureException", "does not match"},
		{"unknown access key", func(t *testing.T, req *http.Request) {
			signAs(t, req, apitype.AccessKey{ID: "WISPNOSUCHKEY0000000", Secret: "secret"}, anyHash, "lambda", "us-east-1", now)
		}, 403, "UnrecognizedClientException", "security token included in the request is invalid"},
		{"expired", func(t *testing.T, req *http.Request) {
			signAs(t, req, key, anyHash, "lambda", "us-east-1", now.Add(-20*time.Minute))
		}, 403, "InvalidSignatureException", "Signature expired"},
		{"from the future", func(t *testing.T, req *http.Request) {
			signAs(t, req, key, anyHash, "lambda", "us-east-1", now.Add(20*time.Minute))
		}, 403, "InvalidSignatureException", "Signature expired"},
		{"another region", func(t *testing.T, req *http.Request) {
			signAs(t, req, key, anyHash, "lambda", "eu-west-1", now)
		}, 403, "InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-west-1': this node's region is 'us-east-1'."},
		{"another service", func(t *testing.T, req *http.Request) {
			signAs(t, req, key, anyHash, "s3", "us-east-1", now)
		}, 403, "InvalidSignatureException", "Credential should be scoped to correct service: 'lambda', not 's3'."},
		{"unsigned invocation type", func(t *testing.T, req *http.Request) {
			signAs(t, req, key, anyHash, "lambda", "us-east-1", now)
			req.Header.Set("X-Amz-Invocation-Type", "Event")
		}, 403, "InvalidSignatureException", "must cover the x-amz-invocation-type header"},
		{"unsigned payload", func(t *testing.T, req *http.Request) {
			req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			signAs(t, req, key, "UNSIGNED-PAYLOAD", "lambda", "us-east-1", now)
		}, 403, "InvalidSignatureException", "must cover the payload"},
	}
	bodies := []struct {
		name   string
		length int64
	}{
		{"7 MB declared", 7 << 20},
		{"chunked, never ending", -1},
	}
	for _, cred := range callers {
		for _, body := range bodies {
			t.Run(cred.name+"/"+body.name+"/invoke api", func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, n.URL()+"/2015-03-31/functions/echo/invocations", nil)
				if err != nil {
					t.Fatal(err)
				}
				cred.prepare(t, req)
				status, errType, msg := sendStalled(t, addr, req, body.length)
				if status != cred.status || errType != cred.errType || !strings.Contains(msg, cred.msg) {
					t.Errorf("got %d %s %s, want %d %s with %q", status, errType, msg, cred.status, cred.errType, cred.msg)
				}
			})
			t.Run(cred.name+"/"+body.name+"/function url", func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, n.URL()+"/fn/echo/upload", nil)
				if err != nil {
					t.Fatal(err)
				}
				cred.prepare(t, req)
				if status, _, msg := sendStalled(t, addr, req, body.length); status != http.StatusForbidden || msg != `{"Message":"Forbidden"}`+"\n" {
					t.Errorf("got %d %s, want 403 Forbidden", status, msg)
				}
			})
		}
	}

	// A caller who passes those checks with a 7 MB body is told it is too
	// large, still without the node reading it.
	req, err := http.NewRequest(http.MethodPost, n.URL()+"/2015-03-31/functions/echo/invocations", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 7 << 20
	signAs(t, req, key, anyHash, "lambda", "us-east-1", now)
	if status, errType, msg := sendStalled(t, addr, req, 7<<20); status != http.StatusRequestEntityTooLarge || errType != "RequestTooLargeException" {
		t.Errorf("signed 7 MB body: %d %s %s, want 413 RequestTooLargeException", status, errType, msg)
	}
}

// TestSigV4Replay replays a captured signed request changed in ways its
// signature does not cover, and checks each is refused.
func TestSigV4Replay(t *testing.T) {
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": "exports.handler = async (e) => e;"}),
		apitype.Config{Name: "echo", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	key, err := n.c.CreateKey(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	url := n.URL() + "/2015-03-31/functions/echo/invocations"
	good := []byte(`{"amount":1}`)
	evil := []byte(`{"amount":9}`) // as long as good: Content-Length is signed
	// captured is a request as a client signed it, body and all.
	captured := func(t *testing.T, header http.Header, payloadHash string) *http.Request {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		signAs(t, req, key, payloadHash, "lambda", "us-east-1", time.Now())
		return req
	}
	send := func(t *testing.T, req *http.Request) (int, string, string) {
		t.Helper()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("X-Amzn-ErrorType"), string(b)
	}
	withBody := func(req *http.Request, body []byte) *http.Request {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		return req
	}

	// The request as signed works.
	if status, _, body := send(t, captured(t, nil, sha256Hex(good))); status != http.StatusOK || body != string(good) {
		t.Fatalf("signed request: %d %s, want 200 %s", status, body, good)
	}

	tests := []struct {
		name    string
		request func(t *testing.T) *http.Request
		msg     string
	}{
		{"another body", func(t *testing.T) *http.Request {
			return withBody(captured(t, nil, sha256Hex(good)), evil)
		}, "does not match"},
		{"another body and its hash", func(t *testing.T) *http.Request {
			req := withBody(captured(t, http.Header{"X-Amz-Content-Sha256": {sha256Hex(good)}}, sha256Hex(good)), evil)
			req.Header.Set("X-Amz-Content-Sha256", sha256Hex(evil))
			return req
		}, "does not match"},
		{"signed as UNSIGNED-PAYLOAD", func(t *testing.T) *http.Request {
			return withBody(captured(t, http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}, "UNSIGNED-PAYLOAD"), evil)
		}, "must cover the payload"},
		{"made async", func(t *testing.T) *http.Request {
			req := captured(t, nil, sha256Hex(good))
			req.Header.Set("X-Amz-Invocation-Type", "Event")
			return req
		}, "must cover the x-amz-invocation-type header"},
		{"log tail asked for", func(t *testing.T) *http.Request {
			req := captured(t, nil, sha256Hex(good))
			req.Header.Set("X-Amz-Log-Type", "Tail")
			return req
		}, "must cover the x-amz-log-type header"},
		{"client context added", func(t *testing.T) *http.Request {
			req := captured(t, nil, sha256Hex(good))
			req.Header.Set("X-Amz-Client-Context", base64.StdEncoding.EncodeToString([]byte(`{"custom":{}}`)))
			return req
		}, "must cover the x-amz-client-context header"},
		{"signed invocation type changed", func(t *testing.T) *http.Request {
			req := captured(t, http.Header{"X-Amz-Invocation-Type": {"RequestResponse"}}, sha256Hex(good))
			req.Header.Set("X-Amz-Invocation-Type", "Event")
			return req
		}, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, errType, body := send(t, tt.request(t))
			if status != http.StatusForbidden || errType != "InvalidSignatureException" || !strings.Contains(body, tt.msg) {
				t.Errorf("got %d %s %s, want 403 InvalidSignatureException with %q", status, errType, body, tt.msg)
			}
		})
	}
}

// TestSigV4Region checks that signatures must be scoped to the node's
// region, and that the SDK signing for it gets in.
func TestSigV4Region(t *testing.T) {
	n := startNode(t, server.Config{Region: "eu-central-1"})
	key, err := n.c.CreateKey(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(region string) error {
		sdk := lambda.New(lambda.Options{Region: region, BaseEndpoint: aws.String(n.URL()),
			Credentials: credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""), RetryMaxAttempts: 1})
		_, err := sdk.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("nope"), InvocationType: types.InvocationTypeDryRun})
		return err
	}
	// Past the signature, the function is looked up.
	if err := invoke("eu-central-1"); err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Errorf("signed for the node's region: %v, want ResourceNotFoundException", err)
	}
	err = invoke("us-east-1")
	if err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") || !strings.Contains(err.Error(), "this node's region is 'eu-central-1'") {
		t.Errorf("signed for another region: %v, want InvalidSignatureException naming eu-central-1", err)
	}
}

// TestAWSCLI runs the AWS CLI against the node, signing with an access
// key: its requests must pass every check the gateway makes.
func TestAWSCLI(t *testing.T) {
	needTool(t, "aws")
	needTool(t, "node")
	n := startNode(t, server.Config{})
	n.deploy(t, writeFiles(t, map[string]string{"index.js": `exports.handler = async (e, ctx) => {
  console.log("called");
  return {echo: e, custom: ctx.clientContext && ctx.clientContext.custom};
};`}), apitype.Config{Name: "echo", Runtime: ptr2("nodejs"), Handler: ptr2("index.handler")})
	key, err := n.c.CreateKey(context.Background(), "cli")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AWS_ACCESS_KEY_ID=" + key.ID, "AWS_SECRET_ACCESS_KEY=" + key.Secret, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=",
	}
	for _, k := range []string{"PYENV_VERSION", "PYENV_ROOT"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	aws := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command("aws", append([]string{"--endpoint-url", n.URL(), "--output", "json", "lambda"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	outFile := filepath.Join(dir, "out.json")

	out, err := aws(t, "invoke", "--function-name", "echo", "--payload", `{"from":"cli"}`, "--log-type", "Tail",
		"--client-context", base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"}}`)), outFile)
	if err != nil {
		t.Fatalf("aws lambda invoke: %v\n%s", err, out)
	}
	var meta struct {
		StatusCode int
		LogResult  string
	}
	if err := json.Unmarshal([]byte(out), &meta); err != nil {
		t.Fatalf("aws lambda invoke printed %q: %v", out, err)
	}
	logs, err := base64.StdEncoding.DecodeString(meta.LogResult)
	if err != nil || meta.StatusCode != 200 || !strings.Contains(string(logs), "called") {
		t.Errorf("aws lambda invoke: %s (log %q, %v)", out, logs, err)
	}
	if b, err := os.ReadFile(outFile); err != nil || string(b) != `{"echo":{"from":"cli"},"custom":{"k":"v"}}` {
		t.Errorf("payload %s (%v)", b, err)
	}

	out, err = aws(t, "invoke", "--function-name", "echo", "--invocation-type", "DryRun", outFile)
	if err != nil || !strings.Contains(out, `"StatusCode": 204`) {
		t.Errorf("aws lambda invoke --invocation-type DryRun: %v\n%s", err, out)
	}

	env = append(env, "AWS_DEFAULT_REGION=eu-west-1")
	out, err = aws(t, "invoke", "--function-name", "echo", outFile)
	if err == nil || !strings.Contains(out, "InvalidSignatureException") || !strings.Contains(out, "this node's region is 'us-east-1'") {
		t.Errorf("aws lambda invoke in another region: %v\n%s", err, out)
	}
}
