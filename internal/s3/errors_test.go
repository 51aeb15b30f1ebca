package s3

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestErrorBody(t *testing.T) {
	e := NewError(NoSuchKey, "The resource you requested does not exist")
	e.Resource = "/mybucket/myfoto.jpg"
	e.RequestID = "4442587FB7D0A2F9"
	got := string(e.Body())
	want := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The resource you requested does not exist</Message><Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>`
	if got != want {
		t.Errorf("body:\n got %s\nwant %s", got, want)
	}
}

func TestErrorBodyEscapes(t *testing.T) {
	e := NewError(InvalidArgument, `a <b> & "c"`)
	got := string(e.Body())
	want := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>a &lt;b&gt; &amp; &#34;c&#34;</Message></Error>`
	if got != want {
		t.Errorf("body:\n got %s\nwant %s", got, want)
	}
}

func TestErrorStatuses(t *testing.T) {
	want := map[ErrorCode]int{
		NoSuchKey: 404, NoSuchBucket: 404, BucketNotEmpty: 409, BucketAlreadyOwnedByYou: 409,
		BucketAlreadyExists: 409, InvalidRange: 416, SignatureDoesNotMatch: 403, AccessDenied: 403,
		EntityTooLarge: 400, EntityTooSmall: 400, InvalidPart: 400, InvalidPartOrder: 400,
		InvalidBucketName: 400, InvalidArgument: 400, InvalidRequest: 400, InvalidDigest: 400,
		BadDigest: 400, IncompleteBody: 400, MalformedXML: 400, MissingContentLength: 411,
		NotImplemented: 501, MethodNotAllowed: 405, PreconditionFailed: 412, NotModified: 304,
		RequestTimeTooSkewed: 403, ExpiredToken: 400, InvalidAccessKeyID: 403, NoSuchUpload: 404,
		KeyTooLongError: 400, InternalError: 500, ServiceUnavailable: 503, SlowDown: 503,
		AuthorizationHeaderMalformed: 400, AuthorizationQueryParametersError: 400, InvalidLocationConstraint: 400,
		MetadataTooLarge: 400, XAmzContentSHA256Mismatch: 400, TooManyBuckets: 400,
	}
	if len(want) != len(codes) {
		t.Errorf("table has %d codes, test names %d", len(codes), len(want))
	}
	for code, status := range want {
		e := NewError(code, "")
		if got := e.HTTPStatus(); got != status {
			t.Errorf("%s: status %d, want %d", code, got, status)
		}
		if e.Message == "" {
			t.Errorf("%s: no default message", code)
		}
	}
	if got := ErrorCode("Nonsense").Status(); got != 500 {
		t.Errorf("unknown code: status %d, want 500", got)
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		code     ErrorCode
		wantBody bool
	}{
		{"GET has a body", http.MethodGet, NoSuchKey, true},
		{"HEAD has none", http.MethodHead, NoSuchKey, false},
		{"304 has none", http.MethodGet, NotModified, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			e := NewError(tt.code, "")
			e.RequestID = "req-1"
			if err := WriteError(w, httptest.NewRequest(tt.method, "/b/k", nil), e); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.code.Status() {
				t.Errorf("status %d, want %d", w.Code, tt.code.Status())
			}
			if got := w.Header().Get("X-Amz-Request-Id"); got != "req-1" {
				t.Errorf("request id header %q", got)
			}
			if got := w.Body.Len() > 0; got != tt.wantBody {
				t.Errorf("body present %v, want %v: %q", got, tt.wantBody, w.Body.String())
			}
			if tt.wantBody && w.Header().Get("Content-Type") != "application/xml" {
				t.Errorf("content type %q", w.Header().Get("Content-Type"))
			}
		})
	}
}

func TestAsError(t *testing.T) {
	e := NewError(NoSuchBucket, "")
	if got := AsError(fmt.Errorf("wrapped: %w", e)); got != e {
		t.Errorf("wrapped S3 error: got %v", got)
	}
	if got := AsError(errors.New("disk on fire")); got.Code != InternalError || got.Message == "disk on fire" {
		t.Errorf("plain error: got %+v", got)
	}
	if AsError(nil) != nil {
		t.Error("nil error gave an S3 error")
	}
}
