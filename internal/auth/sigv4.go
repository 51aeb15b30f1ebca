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
// VerifySigV4 wrap one of these (errors.Is), with detail for the log.
var (
	ErrNoSignature  = errors.New("auth: no signature")             // no Authorization header starting AWS4-HMAC-SHA256
	ErrBadSignature = errors.New("auth: signature does not match") // also a malformed Authorization header or X-Amz-Date
	ErrUnknownKey   = errors.New("auth: unknown access key")
	ErrExpired      = errors.New("auth: request time too skewed") // X-Amz-Date more than 15 minutes from now
)

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	// sigV4MaxSkew is how far X-Amz-Date may be from the server's clock,
	// either way, as AWS allows.
	sigV4MaxSkew      = 15 * time.Minute
	amzDateFormat     = "20060102T150405Z"
	amzShortFormat    = "20060102"
	unsignedPayload   = "UNSIGNED-PAYLOAD"
	sigV4ScopeTerm    = "aws4_request"
	sigV4SignatureLen = 64 // hex of a SHA-256 HMAC
)

// VerifySigV4 checks the AWS Signature Version 4 in r's Authorization header
//
//	AWS4-HMAC-SHA256 Credential=AKID/20250102/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=…
//
// against the secret that secretFor returns for the access key id, and
// returns that access key id.
//
// body is the full request body (read by the caller, bounded). When the
// X-Amz-Content-Sha256 header is present and not "UNSIGNED-PAYLOAD" it must be
// the hex SHA-256 of body; otherwise the canonical request hashes body itself,
// so a changed body fails the signature either way.
//
// Any region and any service in the credential scope are accepted (one key
// pair signs for every Wisp API); the scope's date must be X-Amz-Date's date,
// and X-Amz-Date must be within 15 minutes of now. The canonical request is
// built as aws-sdk-go-v2 builds it for non-S3 services: the escaped request
// path encoded once more, the query decoded and re-encoded, sorted; header
// values trimmed with runs of spaces collapsed. Only header-based signing is
// supported, not presigned URLs, the Date header or chunked (streaming)
// payload signatures.
//
// secretFor returns an error wrapping ErrUnknownKey for a key it does not
// know; any other error it returns is passed back wrapped, for the caller to
// answer as an internal error. An empty secret counts as an unknown key.
func VerifySigV4(r *http.Request, body []byte, now time.Time, secretFor func(accessKeyID string) (string, error)) (string, error) {
	authz := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(authz, sigV4Algorithm+" ")
	if !ok {
		return "", ErrNoSignature
	}
	a, err := parseSigV4Authorization(rest)
	if err != nil {
		return "", err
	}

	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return "", fmt.Errorf("%w: missing or malformed X-Amz-Date %q", ErrBadSignature, amzDate)
	}
	if a.date != signedAt.Format(amzShortFormat) {
		return "", fmt.Errorf("%w: credential scope date %s is not the date of X-Amz-Date %s", ErrBadSignature, a.date, amzDate)
	}
	if skew := now.Sub(signedAt); skew > sigV4MaxSkew || skew < -sigV4MaxSkew {
		return "", fmt.Errorf("%w: X-Amz-Date %s is %s from now", ErrExpired, amzDate, skew.Round(time.Second))
	}
	// AWS requires host and the date header to be signed.
	if !slices.Contains(a.signedHeaders, "host") || !slices.Contains(a.signedHeaders, "x-amz-date") {
		return "", fmt.Errorf("%w: host and x-amz-date must be signed headers", ErrBadSignature)
	}

	payloadHash, err := sigV4PayloadHash(r, body)
	if err != nil {
		return "", err
	}
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}

	secret, err := secretFor(a.accessKeyID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return "", err
		}
		return "", fmt.Errorf("auth: look up access key %s: %w", a.accessKeyID, err)
	}
	if secret == "" {
		return "", fmt.Errorf("%w: %s", ErrUnknownKey, a.accessKeyID)
	}

	canonical := strings.Join([]string{
		r.Method,
		canonicalURI(r),
		query,
		canonicalHeaders(r, a.signedHeaders),
		strings.Join(a.signedHeaders, ";"),
		payloadHash,
	}, "\n")
	scope := a.date + "/" + a.region + "/" + a.service + "/" + sigV4ScopeTerm
	canonicalSum := sha256.Sum256([]byte(canonical))
	stringToSign := sigV4Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(canonicalSum[:])

	key := hmacSHA256([]byte("AWS4"+secret), a.date)
	key = hmacSHA256(key, a.region)
	key = hmacSHA256(key, a.service)
	key = hmacSHA256(key, sigV4ScopeTerm)
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))

	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		return "", ErrBadSignature
	}
	return a.accessKeyID, nil
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

// sigV4PayloadHash is the last line of the canonical request.
func sigV4PayloadHash(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	declared := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case declared == "":
		return bodyHash, nil
	case declared == unsignedPayload:
		return declared, nil
	case !strings.EqualFold(declared, bodyHash):
		return "", fmt.Errorf("%w: X-Amz-Content-Sha256 is not the hash of the body", ErrBadSignature)
	}
	return declared, nil
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
