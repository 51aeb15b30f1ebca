package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/internal/connlimit"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/objects"
	"github.com/wisp-dev/wisp/internal/s3/s3auth"
)

// DefaultMaxObjectSize is S3's largest single PUT, Config.MaxObjectSize's
// default.
const DefaultMaxObjectSize = 5 << 30

// Config is what the S3 API needs.
type Config struct {
	Objects *objects.Store
	// SecretFor returns an access key's secret (auth.Keys.Secret); errors wrapping auth.ErrUnknownKey are InvalidAccessKeyId.
	SecretFor   func(ctx context.Context, accessKeyID string) (string, error)
	Region      string   // the SigV4 scope's region; default arn.DefaultRegion
	BaseDomains []string // virtual-host style under these; IPs and localhost are path style
	Logger      *slog.Logger
	Now         func() time.Time
	// MaxObjectSize bounds a single PUT (S3: 5 GiB); past it EntityTooLarge.
	MaxObjectSize int64
}

// handler serves S3's REST API over an object store.
type handler struct {
	cfg Config
	log *slog.Logger
}

// NewHandler returns the S3 API: every request is routed, authenticated,
// authorized and served, and every error answered as S3's XML with the
// request id of the x-amz-request-id header.
func NewHandler(cfg Config) http.Handler {
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = DefaultMaxObjectSize
	}
	return &handler{cfg: cfg, log: cfg.Logger}
}

// principal is who signed a request; the zero value is anonymous.
type principal struct {
	accessKeyID string
}

func (id principal) anonymous() bool { return id.accessKeyID == "" }

// call is one request on its way through the handler.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	q   Request
	sig *auth.Signature // nil for an anonymous request
	who principal
	id  string // the request id
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, id: newRequestID()}
	w.Header().Set("X-Amz-Request-Id", c.id)
	q, rerr := Route(r, h.cfg.BaseDomains)
	c.q = q
	var err error
	if rerr != nil {
		err = rerr
	} else {
		err = h.serve(c)
	}
	if err != nil {
		h.writeError(c, err)
	}
}

// serve authenticates, authorizes and runs one routed request. An error
// it returns is answered; one that comes after the answer began is
// logged where it happens instead.
func (h *handler) serve(c *call) error {
	sig, err := s3auth.Check(c.r, h.cfg.Now(), h.cfg.Region, func(id string) (string, error) {
		return h.cfg.SecretFor(c.r.Context(), id)
	})
	switch {
	case err == nil:
		c.sig, c.who = sig, principal{accessKeyID: sig.AccessKeyID()}
		// A signed caller's connection no longer counts against the caps
		// on unauthenticated ones, nor is it closed to make room for them.
		connlimit.MarkAuthenticated(c.r.Context())
	case errors.Is(err, auth.ErrNoSignature) && !c.r.URL.Query().Has("X-Amz-Algorithm"):
		// Anonymous: authorize decides.
	default:
		return authError(err)
	}
	if err := authorize(c.q, c.who); err != nil {
		return err
	}
	if c.q.Op == OpNotImplemented {
		return NewError(NotImplemented, "The "+c.q.Subresource+" subresource is not implemented.")
	}
	if op, ok := operations[c.q.Op]; ok {
		return op(h, c)
	}
	return NewError(NotImplemented, string(c.q.Op)+" is not implemented.")
}

// operations are the routed operations served; the others answer
// NotImplemented.
var operations = map[Operation]func(*handler, *call) error{
	OpListBuckets:       (*handler).listBuckets,
	OpCreateBucket:      (*handler).createBucket,
	OpHeadBucket:        (*handler).headBucket,
	OpDeleteBucket:      (*handler).deleteBucket,
	OpGetBucketLocation: (*handler).getBucketLocation,
	OpListObjects:       (*handler).listObjects,
	OpListObjectsV2:     (*handler).listObjects,
	OpPutObject:         (*handler).putObject,
	OpGetObject:         (*handler).getObject,
	OpHeadObject:        (*handler).getObject,
	OpDeleteObject:      (*handler).deleteObject,
	OpDeleteObjects:     (*handler).deleteObjects,
	OpCopyObject:        (*handler).copyObject,

	OpCreateMultipartUpload:   (*handler).createMultipartUpload,
	OpUploadPart:              (*handler).uploadPart,
	OpUploadPartCopy:          (*handler).uploadPartCopy,
	OpCompleteMultipartUpload: (*handler).completeMultipartUpload,
	OpAbortMultipartUpload:    (*handler).abortMultipartUpload,
	OpListParts:               (*handler).listParts,
	OpListMultipartUploads:    (*handler).listMultipartUploads,
}

// authorize decides whether who may do what q asks. Every signed request
// may do everything for now; anonymous requests may do nothing. Public-read
// buckets and per-key policies of buckets and prefixes decide here.
func authorize(q Request, who principal) error {
	if who.anonymous() {
		return NewError(AccessDenied, "")
	}
	return nil
}

// authError is S3's answer to a signature s3auth.Check refused.
func authError(err error) *Error {
	var scope *auth.ScopeError
	var unsigned *auth.UnsignedError
	switch {
	case errors.Is(err, auth.ErrUnknownKey):
		return NewError(InvalidAccessKeyID, "")
	case errors.Is(err, auth.ErrPresignExpired):
		return NewError(AccessDenied, "Request has expired")
	case errors.Is(err, auth.ErrExpired):
		return NewError(RequestTimeTooSkewed, "")
	case errors.Is(err, auth.ErrPresignQuery):
		return NewError(AuthorizationQueryParametersError, "")
	case errors.As(err, &scope):
		return NewError(AuthorizationHeaderMalformed, "The authorization header is malformed; the "+scope.Part+" '"+scope.Got+"' is wrong; expecting '"+scope.Want+"'")
	case errors.As(err, &unsigned):
		return NewError(AccessDenied, "There were headers present in the request which were not signed: "+unsigned.What)
	case errors.Is(err, auth.ErrNoSignature):
		return NewError(AccessDenied, "")
	case errors.Is(err, auth.ErrBadSignature):
		return NewError(SignatureDoesNotMatch, "")
	}
	return &Error{Code: InternalError, Message: codes[InternalError].message, cause: err}
}

// storeErrors are the object store's errors as S3 names them.
var storeErrors = []struct {
	err  error
	code ErrorCode
	msg  string
}{
	{objects.ErrNoSuchBucket, NoSuchBucket, ""},
	{objects.ErrNoSuchKey, NoSuchKey, ""},
	{objects.ErrBucketExists, BucketAlreadyOwnedByYou, ""},
	{objects.ErrTooManyBuckets, TooManyBuckets, ""},
	{objects.ErrBucketNotEmpty, BucketNotEmpty, ""},
	{objects.ErrTooLarge, EntityTooLarge, ""},
	{objects.ErrBucketFull, EntityTooLarge, "The bucket's storage quota is reached."},
	{objects.ErrInvalidRange, InvalidRange, ""},
	{objects.ErrChanged, InternalError, "The object changed while it was read; retry."},
	{objects.ErrNoSuchUpload, NoSuchUpload, ""},
	{objects.ErrInvalidPartOrder, InvalidPartOrder, ""},
	{objects.ErrInvalidPart, InvalidPart, ""},
	{objects.ErrEntityTooSmall, EntityTooSmall, ""},
	{objects.ErrInvalidPartNumber, InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"},
	{s3auth.ErrUnsupportedPayload, NotImplemented, "The x-amz-content-sha256 payload mode is not implemented."},
	{s3auth.ErrBadDecodedLength, InvalidArgument, "x-amz-decoded-content-length is not a length."},
	{s3auth.ErrBadTrailer, InvalidRequest, "The value of x-amz-trailer is not supported."},
	{s3auth.ErrIncompleteBody, IncompleteBody, ""},
	{s3auth.ErrMalformedChunk, InvalidRequest, "The aws-chunked body is malformed."},
	{s3auth.ErrChunkSignature, SignatureDoesNotMatch, ""},
}

// toError is S3's answer to a handler's error: an *Error as it is, the
// store's and the body reader's errors as S3 names them, anything else
// an InternalError that keeps its cause for the log.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var digest *s3auth.DigestError
	if errors.As(err, &digest) {
		return digestError(digest)
	}
	for _, m := range storeErrors {
		if errors.Is(err, m.err) {
			return NewError(m.code, m.msg)
		}
	}
	return &Error{Code: InternalError, Message: codes[InternalError].message, cause: err}
}

func digestError(d *s3auth.DigestError) *Error {
	alg := strings.ToUpper(strings.TrimPrefix(d.Header, "x-amz-checksum-"))
	switch {
	case errors.Is(d.Err, s3auth.ErrContentSHA256Mismatch):
		return NewError(XAmzContentSHA256Mismatch, "")
	case d.Header == "content-md5" && errors.Is(d.Err, s3auth.ErrInvalidDigest):
		return NewError(InvalidDigest, "")
	case d.Header == "content-md5":
		return NewError(BadDigest, "")
	case errors.Is(d.Err, s3auth.ErrInvalidDigest):
		return NewError(InvalidRequest, "Value for "+d.Header+" header is invalid.")
	}
	return NewError(BadDigest, "The "+alg+" you specified did not match the calculated checksum.")
}

func (h *handler) writeError(c *call, err error) {
	e := *toError(err)
	e.Resource, e.RequestID = c.q.Resource(), c.id
	if e.Code == InternalError {
		h.log.Error("s3: internal error", "op", c.q.Op, "resource", e.Resource, "request_id", c.id, "err", e.cause)
	}
	if werr := WriteError(c.w, c.r, &e); werr != nil {
		h.log.Debug("s3: error not sent", "request_id", c.id, "err", werr)
	}
}

// writeXML answers v; a failed write is the client gone, only logged.
func (h *handler) writeXML(c *call, status int, v any) error {
	if err := WriteXML(c.w, status, v); err != nil {
		h.log.Debug("s3: answer not sent", "op", c.q.Op, "request_id", c.id, "err", err)
	}
	return nil
}

// newRequestID returns a request id as S3's: 16 upper-case hex digits.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand.Read never fails
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
