// Package s3auth authenticates S3 API requests and decodes their bodies:
// SigV4 as S3 signs it (in headers and presigned URLs, through
// auth.CheckS3SigV4), aws-chunked bodies with chunk signatures and
// trailers, and the checksums S3 verifies (CRC32, CRC32C, CRC64NVME,
// SHA-1, SHA-256, Content-MD5). It reads no more than a chunk line at a
// time; the S3 server maps its errors to S3's.
package s3auth

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/internal/auth"
)

// Payload modes of X-Amz-Content-Sha256 other than a hex SHA-256.
const (
	UnsignedPayload          = "UNSIGNED-PAYLOAD"
	StreamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// Service is the service name an S3 credential is scoped to.
const Service = "s3"

// Request errors, before the body is read.
var (
	// ErrUnsupportedPayload is a STREAMING-* mode not supported (the
	// ECDSA ones): S3's InvalidRequest, or NotImplemented.
	ErrUnsupportedPayload = errors.New("s3auth: unsupported X-Amz-Content-Sha256 payload mode")
	// ErrBadDecodedLength is an X-Amz-Decoded-Content-Length that is not
	// a length: S3's InvalidArgument.
	ErrBadDecodedLength = errors.New("s3auth: malformed X-Amz-Decoded-Content-Length")
	// ErrBadTrailer is an X-Amz-Trailer that names no checksum header,
	// or one sent with a payload mode without a trailer: InvalidRequest.
	ErrBadTrailer = errors.New("s3auth: X-Amz-Trailer is not a checksum of a trailer mode")
)

// Check authenticates r as S3 signs requests, with the access key secrets
// of secretFor, scoped to region and service s3: see auth.CheckS3SigV4,
// whose errors it returns. It reads nothing of r's body; NewBody does.
func Check(r *http.Request, now time.Time, region string, secretFor func(accessKeyID string) (string, error)) (*auth.Signature, error) {
	return auth.CheckS3SigV4(r, now, auth.SigV4Scope{Region: region, Service: Service}, secretFor)
}

// NewBody returns the reader of r's object data as S3 reads it for sig
// (nil: a request authenticated otherwise, whose payload is unsigned):
// aws-chunked decoded when X-Amz-Content-Sha256 is a STREAMING mode, with
// chunk and trailer signatures checked and the data held to
// X-Amz-Decoded-Content-Length when sent; hashed as it streams and held at its end
// to X-Amz-Content-Sha256, Content-MD5, the x-amz-checksum-* headers and
// the trailer's checksum. compute are algorithms to compute as well (the
// one x-amz-checksum-algorithm or x-amz-sdk-checksum-algorithm names is
// added). A body is good only once Read returned io.EOF; then Digests
// gives its checksums.
func NewBody(r *http.Request, sig *auth.Signature, compute ...Algorithm) (*ChecksumReader, error) {
	mode := UnsignedPayload
	if sig != nil {
		mode = sig.PayloadHash()
	}
	e := Expect{ContentMD5: r.Header.Get("Content-MD5"), Compute: compute, Checksums: map[Algorithm]string{}}
	for _, a := range Algorithms {
		if v := r.Header.Get(a.Header()); v != "" {
			e.Checksums[a] = v
		}
	}
	for _, h := range []string{"X-Amz-Checksum-Algorithm", "X-Amz-Sdk-Checksum-Algorithm"} {
		if v := r.Header.Get(h); v != "" {
			a, ok := ParseAlgorithm(v)
			if !ok {
				return nil, &DigestError{Header: strings.ToLower(h), Err: ErrInvalidDigest}
			}
			e.Compute = append(e.Compute, a)
		}
	}

	var (
		trailers []string
		trailer  = r.Header.Get("X-Amz-Trailer")
	)
	if trailer != "" {
		if mode != StreamingSignedTrailer && mode != StreamingUnsignedTrailer {
			return nil, fmt.Errorf("%w: X-Amz-Trailer with %s", ErrBadTrailer, mode)
		}
		name := strings.ToLower(strings.TrimSpace(trailer))
		a, ok := ParseAlgorithm(strings.TrimPrefix(name, "x-amz-checksum-"))
		if !ok || a.Header() != name {
			return nil, fmt.Errorf("%w: %q", ErrBadTrailer, trailer)
		}
		e.Trailer, trailers = a, []string{name}
	}

	switch {
	case mode == UnsignedPayload:
		return NewChecksumReader(r.Body, e, nil)
	case !strings.HasPrefix(mode, "STREAMING-"):
		e.ContentSHA256 = mode // a hex SHA-256, as auth.CheckS3SigV4 checked
		return NewChecksumReader(r.Body, e, nil)
	}
	opts := ChunkedOptions{Trailer: trailers}
	switch mode {
	case StreamingSigned:
		opts.Signer = sig
	case StreamingSignedTrailer:
		opts.Signer, opts.SignedTrailer = sig, true
	case StreamingUnsignedTrailer:
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedPayload, mode)
	}
	// S3 wants X-Amz-Decoded-Content-Length; aws-sdk-go-v2 sends none
	// for a body of unknown length (Transfer-Encoding: chunked), so its
	// absence leaves the length to the framing.
	opts.DecodedLength = -1
	if v := r.Header.Get("X-Amz-Decoded-Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: %q", ErrBadDecodedLength, v)
		}
		opts.DecodedLength = n
	}
	c := NewChunkedReader(r.Body, opts)
	return NewChecksumReader(c, e, c.Trailer)
}
