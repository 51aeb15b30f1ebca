package auth

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SigV4 errors the gateway maps to Lambda-style errors. Errors from
// CheckSigV4, Signature.Verify and VerifySigV4 wrap one of these
// (errors.Is), with detail for the log.
var (
	ErrNoSignature  = errors.New("auth: no signature")             // no Authorization header starting AWS4-HMAC-SHA256
	ErrBadSignature = errors.New("auth: signature does not match") // also a malformed Authorization header or X-Amz-Date, and a *ScopeError or *UnsignedError
	ErrUnknownKey   = errors.New("auth: unknown access key")
	ErrExpired      = errors.New("auth: request time too skewed") // X-Amz-Date more than 15 minutes from now
	// ErrPresignExpired is a presigned URL past its X-Amz-Expires.
	ErrPresignExpired = errors.New("auth: request has expired")
	// ErrPresignQuery is a presigned URL with a missing or malformed
	// X-Amz-* query parameter; errors wrapping it wrap ErrBadSignature too.
	ErrPresignQuery = errors.New("auth: malformed presigned query")
)

// ScopeError is a signature scoped to another region or service than the
// one checking it. It wraps ErrBadSignature.
type ScopeError struct {
	Part      string // "region" or "service"
	Got, Want string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("%v: credential scoped to %s %q, want %q", ErrBadSignature, e.Part, e.Got, e.Want)
}

func (e *ScopeError) Unwrap() error { return ErrBadSignature }

// UnsignedError is a request with a part the signature must cover and does
// not: a header missing from SignedHeaders, or the payload
// (UNSIGNED-PAYLOAD). It wraps ErrBadSignature.
type UnsignedError struct {
	// What is not signed: a lower-case header name, or "the payload".
	What string
}

func (e *UnsignedError) Error() string {
	return fmt.Sprintf("%v: %s is not signed", ErrBadSignature, e.What)
}

func (e *UnsignedError) Unwrap() error { return ErrBadSignature }

// SigV4Scope is what a signature must be scoped to: the region and the
// service of its credential scope.
type SigV4Scope struct {
	Region  string // such as "us-east-1"
	Service string // such as "lambda"
}

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	// sigV4MaxSkew is how far X-Amz-Date may be from the server's clock,
	// either way, as AWS allows.
	sigV4MaxSkew     = 15 * time.Minute
	amzDateFormat    = "20060102T150405Z"
	amzShortFormat   = "20060102"
	unsignedPayload  = "UNSIGNED-PAYLOAD"
	streamingPayload = "STREAMING-" // the prefix of the chunked signing modes
	sigV4ScopeTerm   = "aws4_request"
	// presignMaxExpires is the longest X-Amz-Expires S3 accepts: 7 days.
	presignMaxExpires = 7 * 24 * time.Hour
	sigV4SignatureLen = 64 // hex of a SHA-256 HMAC
	// amzHeaderPrefix starts the headers that change what an AWS call does
	// (X-Amz-Invocation-Type, X-Amz-Log-Type, …) and those of SigV4 itself:
	// each one sent must be signed.
	amzHeaderPrefix = "x-amz-"
)

// Signature is a request's SigV4 signature that passed every check that
// does not need the body; Verify checks the body and the signature itself.
// One from CheckS3SigV4 is verified already, for its declared PayloadHash.
type Signature struct {
	accessKeyID string
	// canonicalHead is the canonical request up to its last line, the
	// payload hash.
	canonicalHead string
	// declaredHash is X-Amz-Content-Sha256, "" when not sent.
	declaredHash string
	amzDate      string
	scope        string // date/region/service/aws4_request
	signingKey   []byte
	signature    string
}

// AccessKeyID is the key the request says it is signed with.
func (s *Signature) AccessKeyID() string { return s.accessKeyID }

// CheckSigV4 checks the AWS Signature Version 4 in r's Authorization header
//
//	AWS4-HMAC-SHA256 Credential=AKID/20250102/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=…
//
// as far as it can without reading r's body, so that a caller without a
// valid key and a recent signature cannot make the node read one: the
// header is well formed; X-Amz-Date is within 15 minutes of now and its
// date is the credential scope's; the scope's region and service are
// scope's (else a *ScopeError); host, x-amz-date and every X-Amz-* header
// sent are signed (else an *UnsignedError); X-Amz-Content-Sha256, when
// sent, is a hex SHA-256 and not UNSIGNED-PAYLOAD or a STREAMING-* mode
// (an *UnsignedError), so a captured request cannot be replayed with
// another body; and secretFor knows the access key. The returned
// Signature's Verify then checks the body and the signature.
//
// The canonical request is built as aws-sdk-go-v2 builds it for non-S3
// services: the escaped request path encoded once more, the query decoded
// and re-encoded, sorted; header values trimmed with runs of spaces
// collapsed. Only header-based signing is supported, not presigned URLs,
// the Date header or chunked (streaming) payload signatures; CheckS3SigV4
// reads S3's presigned URLs and streaming modes.
//
// secretFor returns an error wrapping ErrUnknownKey for a key it does not
// know; any other error it returns is passed back wrapped, for the caller to
// answer as an internal error. An empty secret counts as an unknown key.
func CheckSigV4(r *http.Request, now time.Time, scope SigV4Scope, secretFor func(accessKeyID string) (string, error)) (*Signature, error) {
	a, amzDate, err := headerAuthorization(r, now)
	if err != nil {
		return nil, err
	}
	if err := checkScope(a, scope); err != nil {
		return nil, err
	}
	if err := checkSignedHeaders(r, a.signedHeaders, "host", "x-amz-date"); err != nil {
		return nil, err
	}
	declared := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case declared == "":
	case declared == unsignedPayload || strings.HasPrefix(declared, streamingPayload):
		return nil, &UnsignedError{What: "the payload"}
	case !isSHA256Hex(declared):
		return nil, fmt.Errorf("%w: X-Amz-Content-Sha256 %q is not a hex SHA-256", ErrBadSignature, declared)
	}
	return newSignature(r, a, amzDate, canonicalURI(r), r.URL.RawQuery, "", declared, secretFor)
}

// headerAuthorization parses r's Authorization and X-Amz-Date headers and
// checks that the date is the credential's and within sigV4MaxSkew of now.
func headerAuthorization(r *http.Request, now time.Time) (sigV4Authorization, string, error) {
	authz := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(authz, sigV4Algorithm+" ")
	if !ok {
		return sigV4Authorization{}, "", ErrNoSignature
	}
	a, err := parseSigV4Authorization(rest)
	if err != nil {
		return a, "", err
	}
	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := signingTime(a, amzDate)
	if err != nil {
		return a, "", err
	}
	if skew := now.Sub(signedAt); skew > sigV4MaxSkew || skew < -sigV4MaxSkew {
		return a, "", fmt.Errorf("%w: X-Amz-Date %s is %s from now", ErrExpired, amzDate, skew.Round(time.Second))
	}
	return a, amzDate, nil
}

// signingTime parses X-Amz-Date, which must fall on the credential's date.
func signingTime(a sigV4Authorization, amzDate string) (time.Time, error) {
	signedAt, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return signedAt, fmt.Errorf("%w: missing or malformed X-Amz-Date %q", ErrBadSignature, amzDate)
	}
	if a.date != signedAt.Format(amzShortFormat) {
		return signedAt, fmt.Errorf("%w: credential scope date %s is not the date of X-Amz-Date %s", ErrBadSignature, a.date, amzDate)
	}
	return signedAt, nil
}

func checkScope(a sigV4Authorization, scope SigV4Scope) error {
	if a.region != scope.Region {
		return &ScopeError{Part: "region", Got: a.region, Want: scope.Region}
	}
	if a.service != scope.Service {
		return &ScopeError{Part: "service", Got: a.service, Want: scope.Service}
	}
	return nil
}

// newSignature looks up the key's secret and builds the Signature of r
// with the canonical request's path and query (raw, without the query
// parameter skip, which a presigned URL's signature is).
func newSignature(r *http.Request, a sigV4Authorization, amzDate, uri, rawQuery, skip, declared string, secretFor func(string) (string, error)) (*Signature, error) {
	query, err := canonicalQuery(rawQuery, skip)
	if err != nil {
		return nil, err
	}
	secret, err := secretFor(a.accessKeyID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: look up access key %s: %w", a.accessKeyID, err)
	}
	if secret == "" {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, a.accessKeyID)
	}

	key := hmacSHA256([]byte("AWS4"+secret), a.date)
	key = hmacSHA256(key, a.region)
	key = hmacSHA256(key, a.service)
	key = hmacSHA256(key, sigV4ScopeTerm)
	return &Signature{
		accessKeyID: a.accessKeyID,
		canonicalHead: strings.Join([]string{
			r.Method,
			uri,
			query,
			canonicalHeaders(r, a.signedHeaders),
			strings.Join(a.signedHeaders, ";"),
		}, "\n"),
		declaredHash: declared,
		amzDate:      amzDate,
		scope:        a.date + "/" + a.region + "/" + a.service + "/" + sigV4ScopeTerm,
		signingKey:   key,
		signature:    a.signature,
	}, nil
}

// Verify checks the signature against the request's full body (read by
// the caller, bounded): X-Amz-Content-Sha256, when sent, must be body's
// hash, and the canonical request ends with that hash, so a changed body
// fails either way. It returns the access key id.
func (s *Signature) Verify(body []byte) (string, error) {
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if s.declaredHash != "" {
		if !strings.EqualFold(s.declaredHash, payloadHash) {
			return "", fmt.Errorf("%w: X-Amz-Content-Sha256 is not the hash of the body", ErrBadSignature)
		}
		payloadHash = s.declaredHash // signed as sent
	}
	if err := s.verifyPayloadHash(payloadHash); err != nil {
		return "", err
	}
	return s.accessKeyID, nil
}

// verifyPayloadHash checks the signature of the canonical request ending
// with payloadHash.
func (s *Signature) verifyPayloadHash(payloadHash string) error {
	canonicalSum := sha256.Sum256([]byte(s.canonicalHead + "\n" + payloadHash))
	want := s.Sign(sigV4Algorithm, hex.EncodeToString(canonicalSum[:]))
	if !hmac.Equal([]byte(want), []byte(s.signature)) {
		return ErrBadSignature
	}
	return nil
}

// Sign is the hex signature, by the request's signing key, of the string
// to sign algorithm, X-Amz-Date, the credential scope and lines, one a
// line. The request's own signature is Sign("AWS4-HMAC-SHA256", hash of
// the canonical request); a chunked payload chains further signatures
// from it with other algorithm names (AWS4-HMAC-SHA256-PAYLOAD, …-TRAILER).
func (s *Signature) Sign(algorithm string, lines ...string) string {
	var b strings.Builder
	b.WriteString(algorithm + "\n" + s.amzDate + "\n" + s.scope)
	for _, l := range lines {
		b.WriteString("\n" + l)
	}
	return hex.EncodeToString(hmacSHA256(s.signingKey, b.String()))
}

// Seed is the request's own signature (lower-case hex), which a signed
// chunked payload's first chunk signature chains from.
func (s *Signature) Seed() string { return s.signature }

// PayloadHash is X-Amz-Content-Sha256 as the request signed it: a hex
// SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode; "" when not sent.
// For a presigned URL without it, UNSIGNED-PAYLOAD.
func (s *Signature) PayloadHash() string { return s.declaredHash }

// VerifySigV4 is CheckSigV4 and then Verify, for a body read already.
func VerifySigV4(r *http.Request, body []byte, now time.Time, scope SigV4Scope, secretFor func(accessKeyID string) (string, error)) (string, error) {
	s, err := CheckSigV4(r, now, scope, secretFor)
	if err != nil {
		return "", err
	}
	return s.Verify(body)
}

// CheckS3SigV4 checks a request signed as S3 signs, in the Authorization
// header as CheckSigV4 does or as a presigned URL (X-Amz-Algorithm,
// X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and
// X-Amz-Signature in the query), and verifies the signature itself: S3's
// canonical request ends with X-Amz-Content-Sha256 as declared, so no body
// is needed. It differs from CheckSigV4 where S3 does:
//
//   - the canonical URI is the escaped path as sent, not escaped again;
//   - X-Amz-Content-Sha256 is required in a header-signed request and
//     signed; it may be a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-*
//     mode, which the caller then holds the body to (PayloadHash);
//   - a presigned URL is signed for UNSIGNED-PAYLOAD unless its query
//     says otherwise, must have an X-Amz-Expires of at most 7 days and is
//     refused with ErrPresignExpired once past it; only host must be
//     among its signed headers (and every X-Amz-* header sent).
//
// Errors are CheckSigV4's, and ErrPresignExpired and ErrPresignQuery.
func CheckS3SigV4(r *http.Request, now time.Time, scope SigV4Scope, secretFor func(accessKeyID string) (string, error)) (*Signature, error) {
	var (
		a        sigV4Authorization
		amzDate  string
		declared string
		skip     string
		required = []string{"host", "x-amz-date", "x-amz-content-sha256"}
		err      error
	)
	if q := r.URL.Query(); r.Header.Get("Authorization") == "" && q.Has("X-Amz-Algorithm") {
		a, amzDate, err = presignedAuthorization(q, now)
		if err != nil {
			return nil, err
		}
		declared = cmp.Or(q.Get("X-Amz-Content-Sha256"), unsignedPayload)
		skip, required = "X-Amz-Signature", []string{"host"}
	} else {
		a, amzDate, err = headerAuthorization(r, now)
		if err != nil {
			return nil, err
		}
		declared = r.Header.Get("X-Amz-Content-Sha256")
		if declared != unsignedPayload && !strings.HasPrefix(declared, streamingPayload) && !isSHA256Hex(declared) {
			return nil, fmt.Errorf("%w: X-Amz-Content-Sha256 %q is not a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING mode", ErrBadSignature, declared)
		}
	}
	if err := checkScope(a, scope); err != nil {
		return nil, err
	}
	if err := checkSignedHeaders(r, a.signedHeaders, required...); err != nil {
		return nil, err
	}
	s, err := newSignature(r, a, amzDate, cmp.Or(r.URL.EscapedPath(), "/"), r.URL.RawQuery, skip, declared, secretFor)
	if err != nil {
		return nil, err
	}
	if err := s.verifyPayloadHash(declared); err != nil {
		return nil, err
	}
	return s, nil
}

// presignedAuthorization reads a presigned URL's query parameters and
// checks that it is valid at now: signed at most 15 minutes ahead, and
// not past X-Amz-Expires.
func presignedAuthorization(q url.Values, now time.Time) (sigV4Authorization, string, error) {
	var a sigV4Authorization
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: "+format, append([]any{ErrBadSignature, ErrPresignQuery}, args...)...)
	}
	if alg := q.Get("X-Amz-Algorithm"); alg != sigV4Algorithm {
		return a, "", bad("X-Amz-Algorithm %q is not %s", alg, sigV4Algorithm)
	}
	for _, name := range []string{"X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if len(q[name]) != 1 {
			return a, "", bad("%s must be given once", name)
		}
	}
	a, err := parseSigV4Components(q.Get("X-Amz-Credential"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature"))
	if err != nil {
		return a, "", fmt.Errorf("%w: %w", ErrPresignQuery, err)
	}
	amzDate := q.Get("X-Amz-Date")
	signedAt, err := signingTime(a, amzDate)
	if err != nil {
		return a, "", fmt.Errorf("%w: %w", ErrPresignQuery, err)
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > presignMaxExpires {
		return a, "", bad("X-Amz-Expires %q must be a number of seconds from 1 to %d", q.Get("X-Amz-Expires"), int(presignMaxExpires.Seconds()))
	}
	if signedAt.Sub(now) > sigV4MaxSkew {
		return a, "", fmt.Errorf("%w: X-Amz-Date %s is ahead of now", ErrExpired, amzDate)
	}
	if expiry := signedAt.Add(time.Duration(secs) * time.Second); now.After(expiry) {
		return a, "", fmt.Errorf("%w: at %s", ErrPresignExpired, expiry.Format(time.RFC3339))
	}
	return a, amzDate, nil
}

// checkSignedHeaders wants the required headers and every X-Amz-* header
// r carries among the signed headers: an unsigned X-Amz-Invocation-Type
// could turn a replayed call into another kind of call.
func checkSignedHeaders(r *http.Request, signed []string, required ...string) error {
	for _, h := range required {
		if !slices.Contains(signed, h) {
			return &UnsignedError{What: h}
		}
	}
	var unsigned []string
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, amzHeaderPrefix) && !slices.Contains(signed, lower) {
			unsigned = append(unsigned, lower)
		}
	}
	if len(unsigned) > 0 {
		slices.Sort(unsigned) // the same error for the same request
		return &UnsignedError{What: unsigned[0]}
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// sigV4Authorization is the parsed part of an Authorization header after the
// algorithm name.
type sigV4Authorization struct {
	accessKeyID   string
	date          string // YYYYMMDD
	region        string
	service       string
	signedHeaders []string // lower-case, sorted, unique
	signature     string   // lower-case hex
}

// parseSigV4Authorization parses
// "Credential=AKID/date/region/service/aws4_request, SignedHeaders=a;b, Signature=hex".
// Components may come in any order, each once; spaces after commas are optional.
func parseSigV4Authorization(s string) (sigV4Authorization, error) {
	var a sigV4Authorization // only for the error returns
	var credential, signedHeaders, signature string
	var seen int
	for part := range strings.SplitSeq(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("%w: malformed Authorization component %q", ErrBadSignature, part)
		}
		var dst *string
		var bit int
		switch name {
		case "Credential":
			dst, bit = &credential, 1
		case "SignedHeaders":
			dst, bit = &signedHeaders, 2
		case "Signature":
			dst, bit = &signature, 4
		default:
			return a, fmt.Errorf("%w: unknown Authorization component %q", ErrBadSignature, name)
		}
		if seen&bit != 0 {
			return a, fmt.Errorf("%w: Authorization component %s given twice", ErrBadSignature, name)
		}
		seen |= bit
		*dst = value
	}
	if seen != 7 {
		return a, fmt.Errorf("%w: Authorization needs Credential, SignedHeaders and Signature", ErrBadSignature)
	}
	return parseSigV4Components(credential, signedHeaders, signature)
}

// parseSigV4Components parses the credential
// "AKID/date/region/service/aws4_request", the signed headers "a;b" and
// the hex signature, from a header or a presigned URL.
func parseSigV4Components(credential, signedHeaders, signature string) (sigV4Authorization, error) {
	var a sigV4Authorization

	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != sigV4ScopeTerm {
		return a, fmt.Errorf("%w: malformed credential %q", ErrBadSignature, credential)
	}
	for _, p := range scope {
		if p == "" {
			return a, fmt.Errorf("%w: malformed credential %q", ErrBadSignature, credential)
		}
	}
	if _, err := time.Parse(amzShortFormat, scope[1]); err != nil {
		return a, fmt.Errorf("%w: malformed credential date %q", ErrBadSignature, scope[1])
	}
	a.accessKeyID, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]

	a.signedHeaders = strings.Split(signedHeaders, ";")
	for i, h := range a.signedHeaders {
		if h == "" || h != strings.ToLower(h) || (i > 0 && h <= a.signedHeaders[i-1]) {
			return a, fmt.Errorf("%w: SignedHeaders %q must be lower-case, sorted and unique", ErrBadSignature, signedHeaders)
		}
	}

	if len(signature) != sigV4SignatureLen {
		return a, fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	a.signature = signature
	return a, nil
}

// canonicalURI is the path as sent, escaped once more: every byte but the
// RFC 3986 unreserved characters and '/' becomes %XX. That is how the AWS
// SDKs sign for every service but S3, so /functions/hello%3Alive signs as
// /functions/hello%253Alive. The path is not normalized (no dot-segment
// removal), as aws-sdk-go-v2 does not normalize it either.
func canonicalURI(r *http.Request) string {
	p := r.URL.EscapedPath()
	if p == "" {
		return "/"
	}
	var b strings.Builder
	b.Grow(len(p) + len(p)/2)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' || isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// canonicalQuery decodes the raw query and encodes each name and value the
// SigV4 way (unreserved characters kept, everything else %XX, space as %20),
// then sorts by name and value, after encoding as the spec says. The
// parameter named skip (a presigned URL's X-Amz-Signature) is left out.
func canonicalQuery(raw, skip string) (string, error) {
	if raw == "" {
		return "", nil
	}
	type pair struct{ name, value string }
	var pairs []pair
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			return "", fmt.Errorf("%w: malformed query string: %w", ErrBadSignature, err)
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return "", fmt.Errorf("%w: malformed query string: %w", ErrBadSignature, err)
		}
		if skip != "" && n == skip {
			continue
		}
		pairs = append(pairs, pair{sigV4QueryEscape(n), sigV4QueryEscape(v)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.value, b.value))
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String(), nil
}

func sigV4QueryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// canonicalHeaders renders "name:value\n" for each signed header, in the
// (sorted) order given. Repeated headers are joined with ','; each value is
// trimmed and its runs of spaces collapsed to one, as aws-sdk-go-v2 does.
func canonicalHeaders(r *http.Request, signed []string) string {
	byName := make(map[string][]string, len(r.Header))
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		byName[lk] = append(byName[lk], vs...)
	}
	var b strings.Builder
	for _, name := range signed {
		var values []string
		switch name {
		case "host":
			// net/http moves Host out of the header map.
			host := r.Host
			if host == "" {
				host = r.URL.Host
			}
			values = []string{host}
		case "content-length":
			values = byName[name]
			if len(values) == 0 && r.ContentLength >= 0 {
				values = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		default:
			values = byName[name]
		}
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.TrimSpace(collapseSpaces(v)))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// collapseSpaces replaces each run of spaces with one space.
func collapseSpaces(s string) string {
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' && i > 0 && s[i-1] == ' ' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
