package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const (
	testKeyID  = "WISPAKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var (
	testSignedAt = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	testScope    = SigV4Scope{Region: "us-east-1", Service: "lambda"}
)

// testSecrets knows one key pair.
func testSecrets(id string) (string, error) {
	if id == testKeyID {
		return testSecret, nil
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownKey, id)
}

// signedWire builds a client request, signs it with aws-sdk-go-v2's signer
// for lambda in us-east-1 and returns it as the server reads it off the wire.
func signedWire(t *testing.T, method, rawURL string, header http.Header, body []byte, secret string) *http.Request {
	t.Helper()
	return signedWireFor(t, testScope, method, rawURL, header, body, secret)
}

// signedWireFor is signedWire with the credential scoped to scope.
func signedWireFor(t *testing.T, scope SigV4Scope, method, rawURL string, header http.Header, body []byte, secret string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), scope.Service, scope.Region, testSignedAt); err != nil {
		t.Fatal(err)
	}
	return wireRoundTrip(t, req)
}

// wireRoundTrip writes a client request in HTTP/1.1 form and parses it back
// as a server would.
func wireRoundTrip(t *testing.T, req *http.Request) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestVerifySigV4Accepts(t *testing.T) {
	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
		body   []byte
	}{
		{
			name:   "post json",
			method: http.MethodPost,
			url:    "http://wisp.test:8080/2015-03-31/functions/hello/invocations",
			header: http.Header{"Content-Type": {"application/json"}},
			body:   []byte(`{"name":"wisp"}`),
		},
		{
			name:   "qualifier query",
			method: http.MethodPost,
			url:    "http://wisp.test/2015-03-31/functions/hello/invocations?Qualifier=live",
			body:   []byte(`{}`),
		},
		{
			name:   "escaped colon in path",
			method: http.MethodPost,
			url:    "http://wisp.test/2015-03-31/functions/hello%3Alive/invocations",
			body:   []byte(`{}`),
		},
		{
			name:   "query needing encoding",
			method: http.MethodGet,
			url:    "http://wisp.test/2015-03-31/functions?Marker=a%2Fb&Marker=a-b&MaxItems=10&q=a+b&empty&a-=1&a=2&%C3%A9=%E2%9C%93",
		},
		{
			name:   "header with extra spaces",
			method: http.MethodPost,
			url:    "http://wisp.test/2015-03-31/functions/hello/invocations",
			header: http.Header{"X-Amz-Client-Context": {"  a   b  c "}, "X-Multi": {"one", " two  three"}},
			body:   []byte(`"x"`),
		},
		{
			name:   "empty body",
			method: http.MethodPost,
			url:    "http://wisp.test/2015-03-31/functions/hello/invocations",
			body:   []byte{},
		},
		{
			name:   "get",
			method: http.MethodGet,
			url:    "http://127.0.0.1:9000/2015-03-31/functions/hello",
		},
		{
			name:   "declared payload hash",
			method: http.MethodPost,
			url:    "http://wisp.test/2015-03-31/functions/hello/invocations",
			header: http.Header{"X-Amz-Content-Sha256": {sha256Hex([]byte(`{"a":1}`))}},
			body:   []byte(`{"a":1}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signedWire(t, tt.method, tt.url, tt.header, tt.body, testSecret)
			body := readAll(t, r)
			got, err := VerifySigV4(r, body, testSignedAt.Add(3*time.Minute), testScope, testSecrets)
			if err != nil {
				t.Fatalf("VerifySigV4: %v", err)
			}
			if got != testKeyID {
				t.Errorf("access key id = %q, want %q", got, testKeyID)
			}
		})
	}
}

// TestVerifySigV4RefusesUnsignedPayload checks that a signature must cover
// the body: with UNSIGNED-PAYLOAD (or a streaming mode) a captured request
// could be replayed with any body.
func TestVerifySigV4RefusesUnsignedPayload(t *testing.T) {
	for _, mode := range []string{"UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"} {
		t.Run(mode, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "http://wisp.test/x", strings.NewReader("anything"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Amz-Content-Sha256", mode)
			creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, mode, "lambda", "us-east-1", testSignedAt); err != nil {
				t.Fatal(err)
			}
			r := wireRoundTrip(t, req)
			readAll(t, r)
			_, err = VerifySigV4(r, []byte("something else entirely"), testSignedAt, testScope, testSecrets)
			var ue *UnsignedError
			if !errors.As(err, &ue) || ue.What != "the payload" || !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifySigV4 = %v, want an *UnsignedError for the payload wrapping %v", err, ErrBadSignature)
			}
		})
	}
}

// TestCheckSigV4Scope checks that a signature must be scoped to the
// verifier's region and service, and says which it wanted.
func TestCheckSigV4Scope(t *testing.T) {
	tests := []struct {
		name  string
		scope SigV4Scope
		want  ScopeError
	}{
		{"another region", SigV4Scope{Region: "eu-west-1", Service: "lambda"}, ScopeError{Part: "region", Got: "eu-west-1", Want: "us-east-1"}},
		{"another service", SigV4Scope{Region: "us-east-1", Service: "s3"}, ScopeError{Part: "service", Got: "s3", Want: "lambda"}},
		{"both", SigV4Scope{Region: "ap-south-1", Service: "execute-api"}, ScopeError{Part: "region", Got: "ap-south-1", Want: "us-east-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signedWireFor(t, tt.scope, http.MethodPost, "http://wisp.test/2015-03-31/functions/hello/invocations", nil, []byte(`{}`), testSecret)
			_, err := VerifySigV4(r, readAll(t, r), testSignedAt, testScope, testSecrets)
			var se *ScopeError
			if !errors.As(err, &se) || *se != tt.want || !errors.Is(err, ErrBadSignature) {
				t.Fatalf("VerifySigV4 = %v, want %+v wrapping %v", err, tt.want, ErrBadSignature)
			}
		})
	}
}

// TestCheckSigV4ReadsNoBody checks that every check CheckSigV4 makes is
// made before a byte of the body is read, and that Verify then needs it.
func TestCheckSigV4ReadsNoBody(t *testing.T) {
	body := []byte(`{"name":"wisp"}`)
	const invokeURL = "http://wisp.test/2015-03-31/functions/hello/invocations"
	tests := []struct {
		name    string
		request func(t *testing.T) *http.Request
		secrets func(string) (string, error)
		want    error // nil: CheckSigV4 passes
	}{
		{"good", func(t *testing.T) *http.Request {
			return signedWire(t, http.MethodPost, invokeURL, nil, body, testSecret)
		}, nil, nil},
		{"no signature", func(t *testing.T) *http.Request {
			r := signedWire(t, http.MethodPost, invokeURL, nil, body, testSecret)
			r.Header.Del("Authorization")
			return r
		}, nil, ErrNoSignature},
		{"unknown key", func(t *testing.T) *http.Request {
			return signedWire(t, http.MethodPost, invokeURL, nil, body, testSecret)
		},
			func(string) (string, error) { return "", ErrUnknownKey }, ErrUnknownKey},
		{"another region", func(t *testing.T) *http.Request {
			return signedWireFor(t, SigV4Scope{Region: "eu-west-1", Service: "lambda"}, http.MethodPost, invokeURL, nil, body, testSecret)
		}, nil, ErrBadSignature},
		{"unsigned invocation type", func(t *testing.T) *http.Request {
			r := signedWire(t, http.MethodPost, invokeURL, nil, body, testSecret)
			r.Header.Set("X-Amz-Invocation-Type", "Event")
			return r
		}, nil, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.request(t)
			counted := &countingReader{r: r.Body}
			r.Body = io.NopCloser(counted)
			secrets := tt.secrets
			if secrets == nil {
				secrets = testSecrets
			}
			sig, err := CheckSigV4(r, testSignedAt, testScope, secrets)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckSigV4: %v, want %v", err, tt.want)
			}
			if counted.n != 0 {
				t.Errorf("CheckSigV4 read %d bytes of the body, want none", counted.n)
			}
			if sig == nil {
				return
			}
			if sig.AccessKeyID() != testKeyID {
				t.Errorf("AccessKeyID = %q, want %q", sig.AccessKeyID(), testKeyID)
			}
			if _, err := sig.Verify([]byte(`{"name":"evil"}`)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify with another body: %v, want %v", err, ErrBadSignature)
			}
			if id, err := sig.Verify(readAll(t, r)); err != nil || id != testKeyID {
				t.Errorf("Verify = %q, %v; want %q", id, err, testKeyID)
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestVerifySigV4Rejects(t *testing.T) {
	const invokeURL = "http://wisp.test/2015-03-31/functions/hello/invocations?Qualifier=live"
	body := []byte(`{"name":"wisp"}`)
	signed := func(t *testing.T) *http.Request {
		return signedWire(t, http.MethodPost, invokeURL, http.Header{"X-Custom": {"signed"}}, body, testSecret)
	}
	tests := []struct {
		name string
		// request returns the request and body to verify.
		request func(t *testing.T) (*http.Request, []byte)
		now     time.Time
		secrets func(string) (string, error)
		want    error
	}{
		{
			name: "tampered body",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				readAll(t, r)
				return r, []byte(`{"name":"evil"}`)
			},
			want: ErrBadSignature,
		},
		{
			name: "tampered path",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.URL.Path = "/2015-03-31/functions/other/invocations"
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "tampered query",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.URL.RawQuery = "Qualifier=canary"
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "tampered signed header",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("X-Custom", "changed")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "tampered method",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Method = http.MethodPut
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "wrong payload hash header",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte("other")))
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "wrong secret",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signedWire(t, http.MethodPost, invokeURL, nil, body, "not-the-secret")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "unknown key",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				return r, readAll(t, r)
			},
			secrets: func(string) (string, error) { return "", ErrUnknownKey },
			want:    ErrUnknownKey,
		},
		{
			name: "empty secret",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				return r, readAll(t, r)
			},
			secrets: func(string) (string, error) { return "", nil },
			want:    ErrUnknownKey,
		},
		{
			name: "16 minutes late",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				return r, readAll(t, r)
			},
			now:  testSignedAt.Add(16 * time.Minute),
			want: ErrExpired,
		},
		{
			name: "16 minutes early",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				return r, readAll(t, r)
			},
			now:  testSignedAt.Add(-16 * time.Minute),
			want: ErrExpired,
		},
		{
			name: "missing authorization",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Del("Authorization")
				return r, readAll(t, r)
			},
			want: ErrNoSignature,
		},
		{
			name: "other scheme",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("Authorization", "Bearer abc")
				return r, readAll(t, r)
			},
			want: ErrNoSignature,
		},
		{
			name: "missing x-amz-date",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Del("X-Amz-Date")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "scope date not x-amz-date's",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("X-Amz-Date", testSignedAt.Add(-10*time.Minute).Format("20060102T150405Z"))
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/20250314/", "/20250313/", 1))
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "host not signed",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=content-length;host;", "SignedHeaders=content-length;", 1))
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "unsigned invocation type",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("X-Amz-Invocation-Type", "Event")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "unsigned log type",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("X-Amz-Log-Type", "Tail")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "unsigned security token",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("X-Amz-Security-Token", "token")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "signed invocation type changed",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signedWire(t, http.MethodPost, invokeURL, http.Header{"X-Amz-Invocation-Type": {"RequestResponse"}}, body, testSecret)
				r.Header.Set("X-Amz-Invocation-Type", "Event")
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "replayed with another body and its hash",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signedWire(t, http.MethodPost, invokeURL, http.Header{"X-Amz-Content-Sha256": {sha256Hex(body)}}, body, testSecret)
				readAll(t, r)
				evil := []byte(`{"name":"evil"}`)
				r.Header.Set("X-Amz-Content-Sha256", sha256Hex(evil))
				return r, evil
			},
			want: ErrBadSignature,
		},
		{
			name: "malformed payload hash header",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signedWire(t, http.MethodPost, invokeURL, http.Header{"X-Amz-Content-Sha256": {"abc"}}, body, testSecret)
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "another service",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signedWireFor(t, SigV4Scope{Region: "us-east-1", Service: "s3"}, http.MethodPost, invokeURL, nil, body, testSecret)
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
		{
			name: "malformed credential",
			request: func(t *testing.T) (*http.Request, []byte) {
				r := signed(t)
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKeyID+"/20250314/us-east-1, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0", 64))
				return r, readAll(t, r)
			},
			want: ErrBadSignature,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := tt.request(t)
			now := tt.now
			if now.IsZero() {
				now = testSignedAt
			}
			secrets := tt.secrets
			if secrets == nil {
				secrets = testSecrets
			}
			id, err := VerifySigV4(r, body, now, testScope, secrets)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifySigV4 = %q, %v; want error %v", id, err, tt.want)
			}
			if id != "" {
				t.Errorf("access key id = %q on error, want empty", id)
			}
		})
	}
}

func TestVerifySigV4LookupError(t *testing.T) {
	r := signedWire(t, http.MethodGet, "http://wisp.test/", nil, nil, testSecret)
	storeDown := errors.New("store down")
	_, err := VerifySigV4(r, readAll(t, r), testSignedAt, testScope, func(string) (string, error) { return "", storeDown })
	if !errors.Is(err, storeDown) {
		t.Fatalf("err = %v, want it to wrap %v", err, storeDown)
	}
	for _, sentinel := range []error{ErrNoSignature, ErrBadSignature, ErrUnknownKey, ErrExpired} {
		if errors.Is(err, sentinel) {
			t.Errorf("err = %v, should not match %v", err, sentinel)
		}
	}
}

// TestVerifySigV4LambdaClient points the real aws-sdk-go-v2 Lambda client at
// a server that verifies every request.
func TestVerifySigV4LambdaClient(t *testing.T) {
	type seen struct {
		keyID   string
		err     error
		path    string
		query   string
		payload string
		header  http.Header
	}
	var (
		mu    sync.Mutex
		calls []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 6<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, verr := VerifySigV4(r, body, time.Now(), testScope, testSecrets)
		mu.Lock()
		calls = append(calls, seen{keyID: id, err: verr, path: r.URL.EscapedPath(), query: r.URL.RawQuery, payload: string(body), header: r.Header.Clone()})
		mu.Unlock()
		if verr != nil {
			w.Header().Set("X-Amzn-ErrorType", "InvalidSignatureException")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			if err := json.NewEncoder(w).Encode(map[string]string{"message": verr.Error()}); err != nil {
				t.Error(err)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amz-Executed-Version", "3")
		if _, err := io.WriteString(w, `{"greeting":"hello from wisp"}`); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()

	client := func(secret string) *lambda.Client {
		return lambda.New(lambda.Options{
			Region:           "us-east-1",
			Credentials:      credentials.NewStaticCredentialsProvider(testKeyID, secret, ""),
			BaseEndpoint:     aws.String(srv.URL),
			HTTPClient:       srv.Client(),
			RetryMaxAttempts: 1,
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name      string
		function  string
		qualifier *string
		wantPath  string
		wantQuery string
	}{
		{
			name:      "qualifier parameter",
			function:  "hello",
			qualifier: aws.String("live"),
			wantPath:  "/2015-03-31/functions/hello/invocations",
			wantQuery: "Qualifier=live",
		},
		{
			name:     "qualifier in name",
			function: "hello:live",
			wantPath: "/2015-03-31/functions/hello%3Alive/invocations",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			out, err := client(testSecret).Invoke(ctx, &lambda.InvokeInput{
				FunctionName: aws.String(tt.function),
				Qualifier:    tt.qualifier,
				Payload:      []byte(`{"name":"wisp"}`),
			})
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if out.StatusCode != http.StatusOK {
				t.Errorf("StatusCode = %d, want 200", out.StatusCode)
			}
			if got, want := string(out.Payload), `{"greeting":"hello from wisp"}`; got != want {
				t.Errorf("Payload = %s, want %s", got, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(calls))
			}
			c := calls[0]
			if c.err != nil {
				t.Fatalf("VerifySigV4: %v", c.err)
			}
			if c.keyID != testKeyID {
				t.Errorf("access key id = %q, want %q", c.keyID, testKeyID)
			}
			if c.path != tt.wantPath {
				t.Errorf("path = %q, want %q", c.path, tt.wantPath)
			}
			if c.query != tt.wantQuery {
				t.Errorf("query = %q, want %q", c.query, tt.wantQuery)
			}
			if c.payload != `{"name":"wisp"}` {
				t.Errorf("payload = %q, want %q", c.payload, `{"name":"wisp"}`)
			}
		})
	}

	// The SDK signs every X-Amz-* header it sends, the session token too,
	// so none is refused as unsigned.
	t.Run("every header", func(t *testing.T) {
		mu.Lock()
		calls = nil
		mu.Unlock()
		c := lambda.New(lambda.Options{
			Region:           "us-east-1",
			Credentials:      credentials.NewStaticCredentialsProvider(testKeyID, testSecret, "session-token"),
			BaseEndpoint:     aws.String(srv.URL),
			HTTPClient:       srv.Client(),
			RetryMaxAttempts: 1,
		})
		if _, err := c.Invoke(ctx, &lambda.InvokeInput{
			FunctionName:   aws.String("hello"),
			InvocationType: types.InvocationTypeRequestResponse,
			LogType:        types.LogTypeTail,
			ClientContext:  aws.String(base64.StdEncoding.EncodeToString([]byte(`{"custom":{"a":"b"}}`))),
			Payload:        []byte(`{}`),
		}); err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 1 || calls[0].err != nil {
			t.Fatalf("server saw %+v, want one verified request", calls)
		}
		for _, h := range []string{"X-Amz-Invocation-Type", "X-Amz-Log-Type", "X-Amz-Client-Context", "X-Amz-Security-Token"} {
			if calls[0].header.Get(h) == "" {
				t.Errorf("the SDK sent no %s", h)
			}
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		mu.Lock()
		calls = nil
		mu.Unlock()
		_, err := client("not-the-secret").Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String("hello"),
			Payload:      []byte(`{}`),
		})
		if err == nil {
			t.Fatal("Invoke with a wrong secret succeeded")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 1 || !errors.Is(calls[0].err, ErrBadSignature) {
			t.Fatalf("server saw %+v, want one request failing with %v", calls, ErrBadSignature)
		}
	})
}

func FuzzVerifySigV4(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20250314/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("a", 64), "20250314T150926Z", "/a%3Ab", "b=2&a=1")
	f.Add("AWS4-HMAC-SHA256 Credential=,,,=", "", "", "%zz")
	f.Add("AWS4-HMAC-SHA256 SignedHeaders=;;", "x", "//", "&&=")
	f.Fuzz(func(t *testing.T, authz, date, path, query string) {
		r := httptest.NewRequest(http.MethodGet, "http://wisp.test/", nil)
		r.URL.RawPath = path
		r.URL.RawQuery = query
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-Date", date)
		id, err := VerifySigV4(r, nil, testSignedAt, testScope, func(string) (string, error) { return "secret", nil })
		if err == nil {
			t.Fatalf("random input verified as %q", id)
		}
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readAll(t *testing.T, r *http.Request) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
