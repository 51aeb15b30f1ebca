// Package s3 owns the S3 wire format: error bodies and their statuses, bucket
// and key name rules, request routing to an operation, the XML documents S3
// sends and accepts, list paging, ETags, conditional headers and byte ranges.
// It stores nothing and checks no signature: the S3 server builds on it.
package s3

import (
	"encoding/xml"
	"errors"
	"net/http"
)

// ErrorCode is S3's stable name of an error, the Code element of its body.
type ErrorCode string

// The error codes Wisp's S3 API answers, as AWS names them.
const (
	AccessDenied                      ErrorCode = "AccessDenied"
	AuthorizationHeaderMalformed      ErrorCode = "AuthorizationHeaderMalformed"
	AuthorizationQueryParametersError ErrorCode = "AuthorizationQueryParametersError"
	BadDigest                         ErrorCode = "BadDigest"
	BucketAlreadyExists               ErrorCode = "BucketAlreadyExists"
	BucketAlreadyOwnedByYou           ErrorCode = "BucketAlreadyOwnedByYou"
	BucketNotEmpty                    ErrorCode = "BucketNotEmpty"
	EntityTooLarge                    ErrorCode = "EntityTooLarge"
	EntityTooSmall                    ErrorCode = "EntityTooSmall"
	ExpiredToken                      ErrorCode = "ExpiredToken"
	IncompleteBody                    ErrorCode = "IncompleteBody"
	InternalError                     ErrorCode = "InternalError"
	InvalidAccessKeyID                ErrorCode = "InvalidAccessKeyId"
	InvalidArgument                   ErrorCode = "InvalidArgument"
	InvalidBucketName                 ErrorCode = "InvalidBucketName"
	InvalidDigest                     ErrorCode = "InvalidDigest"
	InvalidLocationConstraint         ErrorCode = "InvalidLocationConstraint"
	InvalidPart                       ErrorCode = "InvalidPart"
	InvalidPartOrder                  ErrorCode = "InvalidPartOrder"
	InvalidRange                      ErrorCode = "InvalidRange"
	InvalidRequest                    ErrorCode = "InvalidRequest"
	KeyTooLongError                   ErrorCode = "KeyTooLongError"
	MalformedXML                      ErrorCode = "MalformedXML"
	MetadataTooLarge                  ErrorCode = "MetadataTooLarge"
	MethodNotAllowed                  ErrorCode = "MethodNotAllowed"
	MissingContentLength              ErrorCode = "MissingContentLength"
	NoSuchBucket                      ErrorCode = "NoSuchBucket"
	NoSuchKey                         ErrorCode = "NoSuchKey"
	NoSuchUpload                      ErrorCode = "NoSuchUpload"
	NotImplemented                    ErrorCode = "NotImplemented"
	NotModified                       ErrorCode = "NotModified"
	PreconditionFailed                ErrorCode = "PreconditionFailed"
	RequestTimeTooSkewed              ErrorCode = "RequestTimeTooSkewed"
	ServiceUnavailable                ErrorCode = "ServiceUnavailable"
	SignatureDoesNotMatch             ErrorCode = "SignatureDoesNotMatch"
	SlowDown                          ErrorCode = "SlowDown"
	TooManyBuckets                    ErrorCode = "TooManyBuckets"
	XAmzContentSHA256Mismatch         ErrorCode = "XAmzContentSHA256Mismatch"
)

type codeInfo struct {
	status  int
	message string
}

// codes holds each code's HTTP status and default message as AWS's
// "List of error codes" gives them; SDKs and conformance suites read both.
var codes = map[ErrorCode]codeInfo{
	TooManyBuckets:                    {http.StatusBadRequest, "You have attempted to create more buckets than allowed."},
	AccessDenied:                      {http.StatusForbidden, "Access Denied"},
	AuthorizationHeaderMalformed:      {http.StatusBadRequest, "The authorization header is malformed."},
	AuthorizationQueryParametersError: {http.StatusBadRequest, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."},
	BadDigest:                         {http.StatusBadRequest, "The Content-MD5 you specified did not match what we received."},
	BucketAlreadyExists:               {http.StatusConflict, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."},
	BucketAlreadyOwnedByYou:           {http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it."},
	BucketNotEmpty:                    {http.StatusConflict, "The bucket you tried to delete is not empty"},
	EntityTooLarge:                    {http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size."},
	EntityTooSmall:                    {http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size."},
	ExpiredToken:                      {http.StatusBadRequest, "The provided token has expired."},
	IncompleteBody:                    {http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header."},
	InternalError:                     {http.StatusInternalServerError, "We encountered an internal error. Please try again."},
	InvalidAccessKeyID:                {http.StatusForbidden, "The AWS Access Key Id you provided does not exist in our records."},
	InvalidArgument:                   {http.StatusBadRequest, "Invalid Argument"},
	InvalidBucketName:                 {http.StatusBadRequest, "The specified bucket is not valid."},
	InvalidDigest:                     {http.StatusBadRequest, "The Content-MD5 you specified is not valid."},
	InvalidLocationConstraint:         {http.StatusBadRequest, "The specified location-constraint is not valid"},
	InvalidPart:                       {http.StatusBadRequest, "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."},
	InvalidPartOrder:                  {http.StatusBadRequest, "The list of parts was not in ascending order. Parts must be ordered by part number."},
	InvalidRange:                      {http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable"},
	InvalidRequest:                    {http.StatusBadRequest, "Invalid Request"},
	KeyTooLongError:                   {http.StatusBadRequest, "Your key is too long"},
	MalformedXML:                      {http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema"},
	MetadataTooLarge:                  {http.StatusBadRequest, "Your metadata headers exceed the maximum allowed metadata size."},
	MethodNotAllowed:                  {http.StatusMethodNotAllowed, "The specified method is not allowed against this resource."},
	MissingContentLength:              {http.StatusLengthRequired, "You must provide the Content-Length HTTP header."},
	NoSuchBucket:                      {http.StatusNotFound, "The specified bucket does not exist"},
	NoSuchKey:                         {http.StatusNotFound, "The specified key does not exist."},
	NoSuchUpload:                      {http.StatusNotFound, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."},
	NotImplemented:                    {http.StatusNotImplemented, "A header you provided implies functionality that is not implemented"},
	NotModified:                       {http.StatusNotModified, "Not Modified"},
	PreconditionFailed:                {http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold"},
	RequestTimeTooSkewed:              {http.StatusForbidden, "The difference between the request time and the current time is too large."},
	ServiceUnavailable:                {http.StatusServiceUnavailable, "Please reduce your request rate."},
	SignatureDoesNotMatch:             {http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
	SlowDown:                          {http.StatusServiceUnavailable, "Please reduce your request rate."},
	XAmzContentSHA256Mismatch:         {http.StatusBadRequest, "The provided 'x-amz-content-sha256' header does not match what was computed."},
}

// Status is the HTTP status S3 answers with this code; 500 for a code not in
// the table, since an unknown code is a bug on our side.
func (c ErrorCode) Status() int {
	if info, ok := codes[c]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// Error is one S3 error response. Handlers return it; WriteError renders it.
type Error struct {
	Code    ErrorCode
	Message string
	// Status is the HTTP status; Code's status when zero.
	Status int
	// Resource is the bucket or object the request named, e.g. /bucket/key.
	Resource  string
	RequestID string
	// cause is what an InternalError hides from the client, for the log.
	cause error
}

// NewError returns an error with code's status, and message, or code's
// default message when message is empty.
func NewError(code ErrorCode, message string) *Error {
	if message == "" {
		message = codes[code].message
	}
	return &Error{Code: code, Message: message, Status: code.Status()}
}

func (e *Error) Error() string {
	return "s3: " + string(e.Code) + ": " + e.Message
}

// HTTPStatus is the status the response carries.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status()
}

// AsError finds the S3 error in err's chain; any other error is an
// InternalError, so no storage detail reaches the client.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return NewError(InternalError, "")
}

// errorBody is the XML document of an error; S3's carries no namespace.
type errorBody struct {
	XMLName   xml.Name  `xml:"Error"`
	Code      ErrorCode `xml:"Code"`
	Message   string    `xml:"Message"`
	Resource  string    `xml:"Resource,omitempty"`
	RequestID string    `xml:"RequestId,omitempty"`
}

// Body is the XML document S3 sends for e, with the XML declaration.
func (e *Error) Body() []byte {
	b, err := xml.Marshal(errorBody{Code: e.Code, Message: e.Message, Resource: e.Resource, RequestID: e.RequestID})
	if err != nil {
		// Only strings are marshalled; this cannot fail.
		panic("s3: marshal error body: " + err.Error())
	}
	return append([]byte(xml.Header[:len(xml.Header)-1]), b...)
}

// WriteError sends e as S3 does: its status, an XML body, and no body for a
// HEAD request or a 304, which HTTP forbids to carry one. The error is the
// body's write error: the client went away.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error) error {
	status := e.HTTPStatus()
	h := w.Header()
	if e.RequestID != "" {
		h.Set("X-Amz-Request-Id", e.RequestID)
	}
	if r.Method == http.MethodHead || status == http.StatusNotModified {
		w.WriteHeader(status)
		return nil
	}
	body := e.Body()
	h.Set("Content-Type", "application/xml")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}
