package s3

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ETag is the ETag S3 gives an object stored by one PUT: the quoted hex of
// the MD5 of its bytes, md5sum.
func ETag(md5sum []byte) string {
	return `"` + hex.EncodeToString(md5sum) + `"`
}

// MultipartETag is the ETag S3 gives an object completed from parts: the hex
// MD5 of the parts' binary MD5s in part order, a hyphen and the number of
// parts, quoted.
func MultipartETag(partMD5s [][]byte) string {
	h := md5.New()
	for _, sum := range partMD5s {
		h.Write(sum)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(partMD5s)) + `"`
}

// ParsePartETag returns the binary MD5 of a part's ETag as a client names it
// in CompleteMultipartUpload, quoted or not; ok is false if it is not one.
func ParsePartETag(etag string) (md5sum []byte, ok bool) {
	b, err := hex.DecodeString(TrimETag(etag))
	if err != nil || len(b) != md5.Size {
		return nil, false
	}
	return b, true
}

// TrimETag drops the quotes (and a weak marker) around an ETag.
func TrimETag(etag string) string {
	etag = strings.TrimSpace(etag)
	etag = strings.TrimPrefix(etag, "W/")
	return strings.Trim(etag, `"`)
}

// Conditions are a request's conditional headers. GetObject and HeadObject
// read If-*; CopyObject and UploadPartCopy read x-amz-copy-source-if-*.
type Conditions struct {
	IfMatch     string
	IfNoneMatch string
	// IfModifiedSince and IfUnmodifiedSince are zero when absent or not a
	// date; S3, as HTTP, ignores a date it cannot read.
	IfModifiedSince   time.Time
	IfUnmodifiedSince time.Time
	// Copy is set for a copy's source conditions, which fail with
	// PreconditionFailed where a GET answers NotModified.
	Copy bool
}

// ParseConditions reads the If-* headers of h.
func ParseConditions(h http.Header) Conditions {
	return parseConditions(h, "", false)
}

// ParseCopySourceConditions reads the x-amz-copy-source-if-* headers of h.
func ParseCopySourceConditions(h http.Header) Conditions {
	return parseConditions(h, "X-Amz-Copy-Source-", true)
}

func parseConditions(h http.Header, prefix string, isCopy bool) Conditions {
	return Conditions{
		IfMatch:           h.Get(prefix + "If-Match"),
		IfNoneMatch:       h.Get(prefix + "If-None-Match"),
		IfModifiedSince:   parseHTTPDate(h.Get(prefix + "If-Modified-Since")),
		IfUnmodifiedSince: parseHTTPDate(h.Get(prefix + "If-Unmodified-Since")),
		Copy:              isCopy,
	}
}

func parseHTTPDate(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := http.ParseTime(s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Check evaluates the conditions against an object's ETag and Last-Modified
// in the order of RFC 9110 section 13.2.2, which is S3's: If-Match, else
// If-Unmodified-Since, fails with PreconditionFailed; then If-None-Match,
// else If-Modified-Since, fails with NotModified (PreconditionFailed for a
// copy). S3 compares dates in whole seconds, as Last-Modified carries them.
func (c Conditions) Check(etag string, lastModified time.Time) *Error {
	lastModified = lastModified.Truncate(time.Second)
	if c.IfMatch != "" {
		if !matchETag(c.IfMatch, etag) {
			return NewError(PreconditionFailed, "")
		}
	} else if !c.IfUnmodifiedSince.IsZero() && lastModified.After(c.IfUnmodifiedSince) {
		return NewError(PreconditionFailed, "")
	}
	notModified := false
	if c.IfNoneMatch != "" {
		notModified = matchETag(c.IfNoneMatch, etag)
	} else if !c.IfModifiedSince.IsZero() {
		notModified = !lastModified.After(c.IfModifiedSince)
	}
	switch {
	case !notModified:
		return nil
	case c.Copy:
		return NewError(PreconditionFailed, "")
	}
	return NewError(NotModified, "")
}

// matchETag tells whether a list of ETags, or "*", in a condition header
// names etag.
func matchETag(list, etag string) bool {
	etag = TrimETag(etag)
	for _, candidate := range strings.Split(list, ",") {
		candidate = strings.TrimSpace(candidate)
		if candidate == "*" || TrimETag(candidate) == etag {
			return true
		}
	}
	return false
}
