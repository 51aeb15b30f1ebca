package s3

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var testDomains = []string{"s3.example:9000", "s3.local"}

func TestRoute(t *testing.T) {
	tests := []struct {
		name   string
		method string
		target string // path and query, path style
		header map[string]string
		want   Operation
		sub    string
	}{
		{"ListBuckets", "GET", "/", nil, OpListBuckets, ""},
		{"CreateBucket", "PUT", "/b", nil, OpCreateBucket, ""},
		{"HeadBucket", "HEAD", "/b", nil, OpHeadBucket, ""},
		{"DeleteBucket", "DELETE", "/b", nil, OpDeleteBucket, ""},
		{"GetBucketLocation", "GET", "/b?location", nil, OpGetBucketLocation, "location"},
		{"GetBucketCors", "GET", "/b?cors", nil, OpGetBucketCors, "cors"},
		{"PutBucketCors", "PUT", "/b?cors", nil, OpPutBucketCors, "cors"},
		{"DeleteBucketCors", "DELETE", "/b?cors", nil, OpDeleteBucketCors, "cors"},
		{"ListObjects", "GET", "/b?prefix=a&marker=m", nil, OpListObjects, ""},
		{"ListObjectsV2", "GET", "/b?list-type=2&prefix=a", nil, OpListObjectsV2, ""},
		{"DeleteObjects", "POST", "/b?delete", nil, OpDeleteObjects, "delete"},
		{"ListMultipartUploads", "GET", "/b?uploads", nil, OpListMultipartUploads, "uploads"},
		{"PostObject", "POST", "/b", map[string]string{"Content-Type": "multipart/form-data; boundary=xyz"}, OpPostObject, ""},
		{"POST on a bucket without a form", "POST", "/b", map[string]string{"Content-Type": "text/plain"}, "", ""},
		{"PutObject", "PUT", "/b/k", nil, OpPutObject, ""},
		{"CopyObject", "PUT", "/b/k", map[string]string{"X-Amz-Copy-Source": "/src/key"}, OpCopyObject, ""},
		{"GetObject", "GET", "/b/dir/k.txt", nil, OpGetObject, ""},
		{"GetObject with response overrides", "GET", "/b/k?response-content-type=text/plain&X-Amz-Signature=x", nil, OpGetObject, ""},
		{"HeadObject", "HEAD", "/b/k", nil, OpHeadObject, ""},
		{"DeleteObject", "DELETE", "/b/k", nil, OpDeleteObject, ""},
		{"CreateMultipartUpload", "POST", "/b/k?uploads", nil, OpCreateMultipartUpload, "uploads"},
		{"UploadPart", "PUT", "/b/k?partNumber=1&uploadId=u", nil, OpUploadPart, "uploadId"},
		{"UploadPartCopy", "PUT", "/b/k?partNumber=1&uploadId=u", map[string]string{"X-Amz-Copy-Source": "src/key"}, OpUploadPartCopy, "uploadId"},
		{"CompleteMultipartUpload", "POST", "/b/k?uploadId=u", nil, OpCompleteMultipartUpload, "uploadId"},
		{"AbortMultipartUpload", "DELETE", "/b/k?uploadId=u", nil, OpAbortMultipartUpload, "uploadId"},
		{"ListParts", "GET", "/b/k?uploadId=u", nil, OpListParts, "uploadId"},
		{"preflight on an object", "OPTIONS", "/b/k", nil, OpPreflight, ""},
		{"preflight on a bucket", "OPTIONS", "/b", nil, OpPreflight, ""},
		{"bucket acl", "GET", "/b?acl", nil, OpNotImplemented, "acl"},
		{"object tagging", "PUT", "/b/k?tagging", nil, OpNotImplemented, "tagging"},
		{"versioning", "PUT", "/b?versioning", nil, OpNotImplemented, "versioning"},
		{"policy", "GET", "/b?policy", nil, OpNotImplemented, "policy"},
		{"lifecycle", "PUT", "/b?lifecycle", nil, OpNotImplemented, "lifecycle"},
		{"ListObjectVersions", "GET", "/b?versions", nil, OpNotImplemented, "versions"},
		{"PUT on the service", "PUT", "/", nil, "", ""},
		{"POST on an object", "POST", "/b/k", nil, "", ""},
		{"PATCH", "PATCH", "/b/k", nil, "", ""},
	}
	for _, tt := range tests {
		bucket, key := "", ""
		path, _, _ := strings.Cut(tt.target, "?")
		if rest := strings.TrimPrefix(path, "/"); rest != "" {
			bucket, key, _ = strings.Cut(rest, "/")
		}
		styles := []struct {
			name, host, target string
			virtual            bool
		}{
			{"path style", "s3.example:9000", tt.target, false},
			{"IP host", "127.0.0.1:9000", tt.target, false},
			{"IPv6 host", "[::1]:9000", tt.target, false},
			{"localhost", "localhost:9000", tt.target, false},
			{"unconfigured host", "node7:9000", tt.target, false},
		}
		if bucket != "" {
			vpath := "/" + strings.TrimPrefix(strings.TrimPrefix(tt.target, "/"+bucket), "/")
			styles = append(styles, struct {
				name, host, target string
				virtual            bool
			}{"virtual host", bucket + ".s3.example:9000", vpath, true},
				struct {
					name, host, target string
					virtual            bool
				}{"virtual host without port", bucket + ".S3.Local", vpath, true})
		}
		for _, st := range styles {
			t.Run(tt.name+"/"+st.name, func(t *testing.T) {
				r := httptest.NewRequest(tt.method, "http://"+st.host+st.target, nil)
				for k, v := range tt.header {
					r.Header.Set(k, v)
				}
				got, e := Route(r, testDomains)
				if tt.want == "" {
					if e == nil || e.Code != MethodNotAllowed {
						t.Fatalf("got %+v, %v; want MethodNotAllowed", got, e)
					}
					return
				}
				if e != nil {
					t.Fatalf("error %v", e)
				}
				want := Request{Op: tt.want, Bucket: bucket, Key: key, Subresource: tt.sub, VirtualHost: st.virtual}
				if got != want {
					t.Errorf("got %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

func TestRouteKeys(t *testing.T) {
	tests := []struct {
		name, url   string
		bucket, key string
	}{
		{"escaped key", "http://127.0.0.1/b/a%20b%2Fc", "b", "a b/c"},
		{"double slash", "http://127.0.0.1/b//k", "b", "/k"},
		{"trailing slash is part of the key", "http://127.0.0.1/b/dir/", "b", "dir/"},
		{"bucket with trailing slash", "http://127.0.0.1/b/", "b", ""},
		{"dotted virtual bucket", "http://my.dotted.bucket.s3.local/k", "my.dotted.bucket", "k"},
		{"base domain itself is path style", "http://s3.local/b/k", "b", "k"},
		{"bucket.localhost is path style", "http://b.localhost/x/k", "x", "k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, e := Route(httptest.NewRequest(http.MethodGet, tt.url, nil), testDomains)
			if e != nil {
				t.Fatal(e)
			}
			if got.Bucket != tt.bucket || got.Key != tt.key {
				t.Errorf("bucket %q key %q, want %q %q", got.Bucket, got.Key, tt.bucket, tt.key)
			}
		})
	}
}

func TestRequestResource(t *testing.T) {
	for _, tt := range []struct {
		q    Request
		want string
	}{
		{Request{}, "/"},
		{Request{Bucket: "b"}, "/b"},
		{Request{Bucket: "b", Key: "k/x"}, "/b/k/x"},
	} {
		if got := tt.q.Resource(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.q, got, tt.want)
		}
	}
}

func FuzzRoute(f *testing.F) {
	f.Add("GET", "b.s3.example:9000", "/k?uploadId=1", "")
	f.Add("PUT", "127.0.0.1", "/b/k?partNumber=1&uploadId=u", "/src/k")
	f.Add("POST", "[::1]:9000", "/b?delete", "")
	f.Fuzz(func(t *testing.T, method, host, target, copySource string) {
		r, err := http.NewRequest(method, "http://example"+target, nil)
		if err != nil {
			return
		}
		r.Host = host
		r.Header.Set("X-Amz-Copy-Source", copySource)
		q, e := Route(r, testDomains)
		if e != nil {
			if e.Code != MethodNotAllowed {
				t.Fatalf("unexpected error %v", e)
			}
			return
		}
		if q.Op == "" {
			t.Fatal("no operation and no error")
		}
		if q.Bucket == "" && q.Key != "" {
			t.Fatalf("key %q without bucket", q.Key)
		}
	})
}
