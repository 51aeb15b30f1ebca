package s3

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Operation names what a request asks for, in the words of S3's API reference.
type Operation string

// The operations Wisp's S3 API routes.
const (
	OpListBuckets             Operation = "ListBuckets"
	OpCreateBucket            Operation = "CreateBucket"
	OpHeadBucket              Operation = "HeadBucket"
	OpDeleteBucket            Operation = "DeleteBucket"
	OpGetBucketLocation       Operation = "GetBucketLocation"
	OpGetBucketCors           Operation = "GetBucketCors"
	OpPutBucketCors           Operation = "PutBucketCors"
	OpDeleteBucketCors        Operation = "DeleteBucketCors"
	OpListObjects             Operation = "ListObjects"
	OpListObjectsV2           Operation = "ListObjectsV2"
	OpDeleteObjects           Operation = "DeleteObjects"
	OpPostObject              Operation = "PostObject"
	OpPutObject               Operation = "PutObject"
	OpCopyObject              Operation = "CopyObject"
	OpGetObject               Operation = "GetObject"
	OpHeadObject              Operation = "HeadObject"
	OpDeleteObject            Operation = "DeleteObject"
	OpCreateMultipartUpload   Operation = "CreateMultipartUpload"
	OpUploadPart              Operation = "UploadPart"
	OpUploadPartCopy          Operation = "UploadPartCopy"
	OpCompleteMultipartUpload Operation = "CompleteMultipartUpload"
	OpAbortMultipartUpload    Operation = "AbortMultipartUpload"
	OpListParts               Operation = "ListParts"
	OpListMultipartUploads    Operation = "ListMultipartUploads"
	// OpPreflight is a CORS preflight (OPTIONS) on a bucket or an object.
	OpPreflight Operation = "Preflight"
	// OpNotImplemented is a subresource S3 has and Wisp does not; the
	// request's Subresource names it.
	OpNotImplemented Operation = "NotImplemented"
)

// Request is where a request goes: its operation and the bucket and key it
// names. Bucket is empty for the service, Key for a bucket.
type Request struct {
	Op     Operation
	Bucket string
	Key    string
	// Subresource is the query parameter that chose the operation, such as
	// "uploads" or, for OpNotImplemented, "acl".
	Subresource string
	// VirtualHost tells that the bucket came from the Host header.
	VirtualHost bool
}

// Resource is the path S3 names in an error's Resource element.
func (q Request) Resource() string {
	switch {
	case q.Bucket == "":
		return "/"
	case q.Key == "":
		return "/" + q.Bucket
	}
	return "/" + q.Bucket + "/" + q.Key
}

type target int

const (
	onService target = iota
	onBucket
	onObject
)

// Conditions a route puts on the request besides method, target and query.
const (
	needCopySource = 1 << iota // an x-amz-copy-source header
	needForm                   // a multipart/form-data body
	needListV2                 // list-type=2
)

type route struct {
	method string
	target target
	// sub is the query parameter the request must carry; with none, the
	// request must carry none of the routedSubresources.
	sub  string
	need int
	op   Operation
}

// routes is S3's REST API as Wisp serves it. The first row that matches
// wins, so rows with a subresource or a header come before the plain one.
var routes = []route{
	{http.MethodGet, onService, "", 0, OpListBuckets},

	{http.MethodGet, onBucket, "location", 0, OpGetBucketLocation},
	{http.MethodGet, onBucket, "cors", 0, OpGetBucketCors},
	{http.MethodPut, onBucket, "cors", 0, OpPutBucketCors},
	{http.MethodDelete, onBucket, "cors", 0, OpDeleteBucketCors},
	{http.MethodGet, onBucket, "uploads", 0, OpListMultipartUploads},
	{http.MethodPost, onBucket, "delete", 0, OpDeleteObjects},
	{http.MethodGet, onBucket, "", needListV2, OpListObjectsV2},
	{http.MethodGet, onBucket, "", 0, OpListObjects},
	{http.MethodPut, onBucket, "", 0, OpCreateBucket},
	{http.MethodHead, onBucket, "", 0, OpHeadBucket},
	{http.MethodDelete, onBucket, "", 0, OpDeleteBucket},
	{http.MethodPost, onBucket, "", needForm, OpPostObject},
	{http.MethodOptions, onBucket, "", 0, OpPreflight},

	{http.MethodPost, onObject, "uploads", 0, OpCreateMultipartUpload},
	{http.MethodPut, onObject, "uploadId", needCopySource, OpUploadPartCopy},
	{http.MethodPut, onObject, "uploadId", 0, OpUploadPart},
	{http.MethodPost, onObject, "uploadId", 0, OpCompleteMultipartUpload},
	{http.MethodDelete, onObject, "uploadId", 0, OpAbortMultipartUpload},
	{http.MethodGet, onObject, "uploadId", 0, OpListParts},
	{http.MethodPut, onObject, "", needCopySource, OpCopyObject},
	{http.MethodPut, onObject, "", 0, OpPutObject},
	{http.MethodGet, onObject, "", 0, OpGetObject},
	{http.MethodHead, onObject, "", 0, OpHeadObject},
	{http.MethodDelete, onObject, "", 0, OpDeleteObject},
	{http.MethodOptions, onObject, "", 0, OpPreflight},
}

// routedSubresources are the query parameters that select a routed operation.
var routedSubresources = []string{"location", "cors", "uploads", "delete", "uploadId"}

// unimplementedSubresources are S3's other subresources (the query
// parameters that name a sub-API, from its API reference). Any of them makes
// a request OpNotImplemented; other unknown parameters are ignored, as S3
// ignores them.
var unimplementedSubresources = []string{
	"accelerate", "acl", "analytics", "attributes", "encryption", "intelligent-tiering",
	"inventory", "legal-hold", "lifecycle", "logging", "metadataConfiguration",
	"metadataTable", "metrics", "notification", "object-lock", "ownershipControls",
	"policy", "policyStatus", "publicAccessBlock", "rename", "replication",
	"requestPayment", "restore", "retention", "select", "session", "tagging",
	"torrent", "versioning", "versions", "website",
}

// Route finds the operation, bucket and key of r. baseDomains are the host
// names the listener answers as, such as "s3.example": a Host that is a
// subdomain of one names its bucket (virtual-host style); any other Host,
// and always an IP address or localhost, is path style. It fails with
// MethodNotAllowed when no operation has r's method on that resource.
func Route(r *http.Request, baseDomains []string) (Request, *Error) {
	var q Request
	path := r.URL.Path
	if bucket, ok := virtualHostBucket(r.Host, baseDomains); ok {
		q.Bucket, q.VirtualHost = bucket, true
		q.Key = strings.TrimPrefix(path, "/")
	} else {
		rest := strings.TrimPrefix(path, "/")
		q.Bucket, q.Key, _ = strings.Cut(rest, "/")
	}
	t := onObject
	switch {
	case q.Bucket == "":
		t, q.Key = onService, ""
	case q.Key == "":
		t = onBucket
	}

	query := r.URL.Query()
	for _, sub := range unimplementedSubresources {
		if query.Has(sub) && t != onService {
			q.Op, q.Subresource = OpNotImplemented, sub
			return q, nil
		}
	}
	for _, rt := range routes {
		if rt.method == r.Method && rt.target == t && rt.matches(r, query) {
			q.Op, q.Subresource = rt.op, rt.sub
			return q, nil
		}
	}
	e := NewError(MethodNotAllowed, "")
	e.Resource = q.Resource()
	return q, e
}

func (rt route) matches(r *http.Request, query url.Values) bool {
	if rt.sub != "" {
		if !query.Has(rt.sub) {
			return false
		}
	} else {
		for _, sub := range routedSubresources {
			if query.Has(sub) {
				return false
			}
		}
	}
	if rt.need&needCopySource != 0 && r.Header.Get("X-Amz-Copy-Source") == "" {
		return false
	}
	if rt.need&needListV2 != 0 && query.Get("list-type") != "2" {
		return false
	}
	if rt.need&needForm != 0 {
		mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mediaType != "multipart/form-data" {
			return false
		}
	}
	return true
}

// virtualHostBucket returns the bucket a Host header names when it is a
// subdomain of one of baseDomains.
func virtualHostBucket(host string, baseDomains []string) (string, bool) {
	host = strings.ToLower(stripPort(host))
	if host == "" || host == "localhost" {
		return "", false
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return "", false
	}
	for _, d := range baseDomains {
		d = strings.ToLower(stripPort(d))
		if d == "" {
			continue
		}
		if bucket, ok := strings.CutSuffix(host, "."+d); ok && bucket != "" {
			return bucket, true
		}
	}
	return "", false
}

func stripPort(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}
