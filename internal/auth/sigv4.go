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
	sigV4MaxSkew      = 15 * time.Minute
	amzDateFormat     = "20060102T150405Z"
	amzShortFormat    = "20060102"
	unsignedPayload   = "UNSIGNED-PAYLOAD"
	streamingPayload  = "STREAMING-" // the prefix of the chunked signing modes
	sigV4ScopeTerm    = "aws4_request"
	sigV4SignatureLen = 64 // hex of a SHA-256 HMAC
	// amzHeaderPrefix starts the headers that change what an AWS call does
	// (X-Amz-Invocation-Type, X-Amz-Log-Type, …) and those of SigV4 itself:
	// each one sent must be signed.
	amzHeaderPrefix = "x-amz-"
)

// Signature is a request's SigV4 signature that passed every check that
// does not need the body; Verify checks the body and the signature itself.
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
// the Date header or chunked (streaming) payload signatures.
//
// secretFor returns an error wrapping ErrUnknownKey for a key it does not
// know; any other error it returns is passed back wrapped, for the caller to
// answer as an internal error. An empty secret counts as an unknown key.
func CheckSigV4(r *http.Request, now time.Time, scope SigV4Scope, secretFor func(accessKeyID string) (string, error)) (*Signature, error) {
	authz := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(authz, sigV4Algorithm+" ")
	if !ok {
		return nil, ErrNoSignature
	}
	a, err := parseSigV4Authorization(rest)
	if err != nil {
		return nil, err
	}

	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return nil, fmt.Errorf("%w: missing or malformed X-Amz-Date %q", ErrBadSignature, amzDate)
	}
	if a.date != signedAt.Format(amzShortFormat) {
		return nil, fmt.Errorf("%w: credential scope date %s is not the date of X-Amz-Date %s", ErrBadSignature, a.date, amzDate)
	}
	if skew := now.Sub(signedAt); skew > sigV4MaxSkew || skew < -sigV4MaxSkew {
		return nil, fmt.Errorf("%w: X-Amz-Date %s is %s from now", ErrExpired, amzDate, skew.Round(time.Second))
	}
	if a.region != scope.Region {
		return nil, &ScopeError{Part: "region", Got: a.region, Want: scope.Region}
	}
	if a.service != scope.Service {
		return nil, &ScopeError{Part: "service", Got: a.service, Want: scope.Service}
	}
	if err := checkSignedHeaders(r, a.signedHeaders); err != nil {
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
	query, err := canonicalQuery(r.URL.RawQuery)
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
			canonicalURI(r),
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
	canonicalSum := sha256.Sum256([]byte(s.canonicalHead + "\n" + payloadHash))
	stringToSign := sigV4Algorithm + "\n" + s.amzDate + "\n" + s.scope + "\n" + hex.EncodeToString(canonicalSum[:])
	want := hex.EncodeToString(hmacSHA256(s.signingKey, stringToSign))
	if !hmac.Equal([]byte(want), []byte(s.signature)) {
		return "", ErrBadSignature
	}
	return s.accessKeyID, nil
}

// VerifySigV4 is CheckSigV4 and then Verify, for a body read already.
func VerifySigV4(r *http.Request, body []byte, now time.Time, scope SigV4Scope, secretFor func(accessKeyID string) (string, error)) (string, error) {
	s, err := CheckSigV4(r, now, scope, secretFor)
	if err != nil {
		return "", err
	}
	return s.Verify(body)
}

// checkSignedHeaders wants host, x-amz-date and every X-Amz-* header r
// carries among the signed headers: an unsigned X-Amz-Invocation-Type
// could turn a replayed call into another kind of call.
func checkSignedHeaders(r *http.Request, signed []string) error {
	for _, h := range []string{"host", "x-amz-date"} {
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
	var a sigV4Authorization
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
// then sorts by name and value, after encoding as the spec says.
func canonicalQuery(raw string) (string, error) {
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
