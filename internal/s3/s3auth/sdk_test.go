package s3auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wisp-dev/wisp/internal/auth"
)

const (
	testKeyID  = "WISPAKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRegion = "us-east-1"
)

func testSecrets(id string) (string, error) {
	if id == testKeyID {
		return testSecret, nil
	}
	return "", fmt.Errorf("%w: %s", auth.ErrUnknownKey, id)
}

// seen is what the test server made of one request.
type seen struct {
	header  http.Header
	body    []byte
	digests Digests
	err     error // from Check, NewBody or reading the body
}

// s3Server is an httptest server whose handler authenticates each request
// with Check, reads its body through NewBody and records the outcome: 403
// for a refused signature, 400 for a refused body, else 200 with an ETag
// (PUT) or a small body (GET).
type s3Server struct {
	*httptest.Server
	now func() time.Time

	mu   sync.Mutex
	seen []seen // guarded by mu
}

func newS3Server(t *testing.T, tls bool) *s3Server {
	t.Helper()
	s := &s3Server{now: time.Now}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := seen{header: r.Header.Clone()}
		defer func() {
			s.mu.Lock()
			s.seen = append(s.seen, rec)
			s.mu.Unlock()
		}()
		sig, err := Check(r, s.now(), testRegion, testSecrets)
		if err != nil {
			rec.err = err
			w.Header().Set("Connection", "close")
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		body, err := NewBody(r, sig)
		if err == nil {
			rec.body, err = io.ReadAll(body)
		}
		if err != nil {
			rec.err = err
			w.Header().Set("Connection", "close")
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.digests, _ = body.Digests()
		if r.Method == http.MethodGet {
			io.WriteString(w, "object data")
			return
		}
		w.Header().Set("ETag", `"`+hex.EncodeToString(rec.digests.MD5[:])+`"`)
	})
	if tls {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// last is the record of the latest request.
func (s *s3Server) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatal("the server saw no request")
	}
	return s.seen[len(s.seen)-1]
}

// client is an S3 client of s, path style, signing with secret; rt, when
// set, wraps the transport (to change requests in flight).
func (s *s3Server) client(t *testing.T, secret string, rt func(http.RoundTripper) http.RoundTripper) *s3.Client {
	t.Helper()
	os.Unsetenv("AWS_CA_BUNDLE")
	hc := s.Client()
	if rt != nil {
		hc.Transport = rt(hc.Transport)
	}
	return s3.New(s3.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, secret, ""),
		HTTPClient:   hc,
		Retryer:      aws.NopRetryer{},
		// config.LoadDefaultConfig's defaults, with which the SDK adds a
		// CRC32 to every PutObject; s3.New alone leaves them unset.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	})
}

// roundTripFunc changes a request before rt sends it.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// rewriteBody returns a transport wrapper that replaces each request's
// body by change(body), with its Content-Length.
func rewriteBody(t *testing.T, change func([]byte) []byte) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Body != nil {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					return nil, err
				}
				b = change(b)
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.ContentLength = int64(len(b))
				r.GetBody = nil
			}
			return next.RoundTrip(r)
		})
	}
}

// cutBody returns a transport wrapper that sends each request as the
// SDK signed it, Content-Length and all, but without its last n bytes,
// then ends the connection's write side: a body cut short in flight.
func cutBody(t *testing.T, n int) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		tlsConfig := next.(*http.Transport).TLSClientConfig
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			var wire bytes.Buffer
			if err := r.Write(&wire); err != nil {
				return nil, err
			}
			var conn net.Conn
			var err error
			if r.URL.Scheme == "https" {
				conn, err = tls.Dial("tcp", r.URL.Host, tlsConfig)
			} else {
				conn, err = net.Dial("tcp", r.URL.Host)
			}
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.Write(wire.Bytes()[:wire.Len()-n]); err != nil {
				return nil, err
			}
			if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				return nil, err
			}
			return http.ReadResponse(bufio.NewReader(conn), r)
		})
	}
}

// onlyReader hides a reader's Seek, so the SDK cannot hash the body
// before sending it.
type onlyReader struct{ io.Reader }

var testData = bytes.Repeat([]byte("wisp object data, "), 5000) // 90,000 bytes: two SDK chunks

func put(t *testing.T, c *s3.Client, body io.Reader, mutate ...func(*s3.PutObjectInput)) error {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("dir/a key+x.txt"), Body: body}
	for _, m := range mutate {
		m(in)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.PutObject(ctx, in)
	return err
}

// TestSDKPutObject runs the SDK's PutObject with its default checksums
// and checks what the server decoded: the data, CRC32 as the SDK computed
// it and in the payload mode it picked for the transport.
func TestSDKPutObject(t *testing.T) {
	tests := []struct {
		name     string
		tls      bool
		body     func() io.Reader
		wantMode string
		// wantCRC32 is where the SDK's CRC32 comes: "header" or "trailer".
		wantCRC32 string
	}{
		{"http, seekable", false, func() io.Reader { return bytes.NewReader(testData) }, "hex", "header"},
		{"https, seekable", true, func() io.Reader { return bytes.NewReader(testData) }, StreamingUnsignedTrailer, "trailer"},
		{"https, a stream", true, func() io.Reader { return onlyReader{bytes.NewReader(testData)} }, StreamingUnsignedTrailer, "trailer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newS3Server(t, tt.tls)
			if err := put(t, s.client(t, testSecret, nil), tt.body()); err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			got := s.last(t)
			if got.err != nil {
				t.Fatalf("server: %v", got.err)
			}
			mode := got.header.Get("X-Amz-Content-Sha256")
			if tt.wantMode == "hex" {
				if _, err := hex.DecodeString(mode); err != nil || len(mode) != 64 {
					t.Errorf("X-Amz-Content-Sha256 = %q, want a hex SHA-256", mode)
				}
			} else if mode != tt.wantMode {
				t.Errorf("X-Amz-Content-Sha256 = %q, want %q", mode, tt.wantMode)
			}
			switch tt.wantCRC32 {
			case "header":
				if got.header.Get("X-Amz-Checksum-Crc32") == "" {
					t.Errorf("no x-amz-checksum-crc32 header; headers %v", got.header)
				}
			case "trailer":
				if tr := got.header.Get("X-Amz-Trailer"); tr != "x-amz-checksum-crc32" {
					t.Errorf("X-Amz-Trailer = %q, want x-amz-checksum-crc32", tr)
				}
			}
			if !bytes.Equal(got.body, testData) {
				t.Fatalf("decoded %d bytes, want the %d sent", len(got.body), len(testData))
			}
			if c := got.digests.Checksums[CRC32]; c != sumBase64(CRC32, testData) {
				t.Errorf("CRC32 = %q, want %q", c, sumBase64(CRC32, testData))
			}
		})
	}
}

// TestSDKPutObjectRefused changes requests of the real SDK and wants the
// server to refuse each with the error S3 maps to its code.
func TestSDKPutObjectRefused(t *testing.T) {
	flipLast := func(b []byte) []byte { // a data byte near the end, before the trailer
		i := bytes.LastIndex(b, []byte("data, "))
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name   string
		tls    bool
		secret string
		rt     func(http.RoundTripper) http.RoundTripper
		mutate func(*s3.PutObjectInput)
		want   error
	}{
		{name: "wrong secret", secret: "not the secret", want: auth.ErrBadSignature},
		{name: "a changed byte, hashed payload", rt: rewriteBody(t, flipLast), want: ErrContentSHA256Mismatch},
		{name: "a changed byte, trailing checksum", tls: true, rt: rewriteBody(t, flipLast), want: ErrBadDigest},
		{name: "wrong CRC32 header", mutate: func(in *s3.PutObjectInput) { in.ChecksumCRC32 = aws.String("AAAAAA==") }, want: ErrBadDigest},
		{name: "wrong SHA256 header", mutate: func(in *s3.PutObjectInput) {
			in.ChecksumSHA256 = aws.String(sumBase64(SHA256, []byte("other")))
		}, want: ErrBadDigest},
		{name: "malformed CRC32C header", mutate: func(in *s3.PutObjectInput) { in.ChecksumCRC32C = aws.String("not base64!") }, want: ErrInvalidDigest},
		{name: "truncated body", rt: cutBody(t, 1000), want: ErrIncompleteBody},
		{name: "truncated chunked body", tls: true, rt: cutBody(t, 1000), want: ErrIncompleteBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newS3Server(t, tt.tls)
			var mutate []func(*s3.PutObjectInput)
			if tt.mutate != nil {
				mutate = append(mutate, tt.mutate)
			}
			secret := testSecret
			if tt.secret != "" {
				secret = tt.secret
			}
			if err := put(t, s.client(t, secret, tt.rt), bytes.NewReader(testData), mutate...); err == nil {
				t.Fatal("PutObject succeeded, want it refused")
			}
			if got := s.last(t); !errors.Is(got.err, tt.want) {
				t.Fatalf("server error = %v, want %v", got.err, tt.want)
			}
		})
	}
}

// TestSDKPresigned uses URLs from the SDK's presign client, as a browser
// or curl would: GET and PUT pass, and one past its expiry, or with its
// signature changed, is refused.
func TestSDKPresigned(t *testing.T) {
	s := newS3Server(t, false)
	presign := s3.NewPresignClient(s.client(t, testSecret, nil), s3.WithPresignExpires(time.Hour))
	ctx := context.Background()
	get, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("dir/a b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	putReq, err := presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("up/ü.bin")})
	if err != nil {
		t.Fatal(err)
	}

	do := func(t *testing.T, method, url string, header http.Header, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range header {
			if strings.EqualFold(k, "host") {
				continue
			}
			req.Header[k] = vs
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	t.Run("GET", func(t *testing.T) {
		if resp := do(t, get.Method, get.URL, get.SignedHeader, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %s: %v", resp.Status, s.last(t).err)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		if resp := do(t, putReq.Method, putReq.URL, putReq.SignedHeader, testData); resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT: %s: %v", resp.Status, s.last(t).err)
		}
		if got := s.last(t); !bytes.Equal(got.body, testData) {
			t.Fatalf("decoded %d bytes, want %d", len(got.body), len(testData))
		}
	})
	t.Run("expired", func(t *testing.T) {
		s.now = func() time.Time { return time.Now().Add(61 * time.Minute) }
		defer func() { s.now = time.Now }()
		do(t, get.Method, get.URL, get.SignedHeader, nil)
		if err := s.last(t).err; !errors.Is(err, auth.ErrPresignExpired) {
			t.Fatalf("server error = %v, want %v", err, auth.ErrPresignExpired)
		}
	})
	t.Run("signature changed", func(t *testing.T) {
		i := strings.Index(get.URL, "X-Amz-Signature=") + len("X-Amz-Signature=")
		url := get.URL[:i] + "0000" + get.URL[i+4:]
		do(t, get.Method, url, get.SignedHeader, nil)
		if err := s.last(t).err; !errors.Is(err, auth.ErrBadSignature) {
			t.Fatalf("server error = %v, want %v", err, auth.ErrBadSignature)
		}
	})
	t.Run("expiry over 7 days", func(t *testing.T) {
		do(t, get.Method, strings.Replace(get.URL, "X-Amz-Expires=3600", "X-Amz-Expires=604801", 1), get.SignedHeader, nil)
		if err := s.last(t).err; !errors.Is(err, auth.ErrPresignQuery) {
			t.Fatalf("server error = %v, want %v", err, auth.ErrPresignQuery)
		}
	})
	t.Run("another key", func(t *testing.T) {
		do(t, get.Method, strings.Replace(get.URL, "bucket/dir", "bucket/other", 1), get.SignedHeader, nil)
		if err := s.last(t).err; !errors.Is(err, auth.ErrBadSignature) {
			t.Fatalf("server error = %v, want %v", err, auth.ErrBadSignature)
		}
	})
}
