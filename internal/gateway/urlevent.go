package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrBadURLResponse means a function's result cannot be turned into an HTTP
// response (not JSON, or a malformed response object). WriteURLResponse
// returns it before writing anything, so the caller can still answer 502.
var ErrBadURLResponse = errors.New("gateway: bad function URL response")

// urlEventTimeFormat is requestContext.time, as API Gateway writes it.
const urlEventTimeFormat = "02/Jan/2006:15:04:05 -0700"

// urlEvent is the API Gateway HTTP API payload format 2.0 event that Lambda
// function URLs send. aws-lambda-go's events.LambdaFunctionURLRequest reads
// it, but lacks routeKey, requestContext.routeKey and requestContext.stage,
// which AWS sends and some frameworks check; hence our own types.
type urlEvent struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        urlRequestContext `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

type urlRequestContext struct {
	AccountID    string         `json:"accountId"`
	APIID        string         `json:"apiId"`
	DomainName   string         `json:"domainName"`
	DomainPrefix string         `json:"domainPrefix"`
	HTTP         urlRequestHTTP `json:"http"`
	RequestID    string         `json:"requestId"`
	RouteKey     string         `json:"routeKey"`
	Stage        string         `json:"stage"`
	Time         string         `json:"time"`
	TimeEpoch    int64          `json:"timeEpoch"`
}

type urlRequestHTTP struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// URLEvent builds the API Gateway HTTP API payload format 2.0 event for a
// function URL request, as Lambda function URLs do.
//
// rawPath is the path the function sees: the part after /fn/{name}[:{qualifier}],
// starting with "/", in its escaped form as sent; it is both rawPath and
// requestContext.http.path. body is the request body (read by the caller,
// bounded). requestID and now come from the caller.
//
// The event follows AWS's, with these choices:
//   - headers have lower-case names, repeated headers joined with ","; the
//     Cookie header moves to cookies (split on ";"); host is added from r.Host.
//     No x-forwarded-* or x-amzn-* headers are added.
//   - requestContext.accountId is "anonymous" (AWS's value for auth NONE);
//     domainName is r.Host; domainPrefix and apiId are its first DNS label
//     (AWS's url-id), or the whole host when it is an IP address.
//   - requestContext.http.sourceIp is the peer address (r.RemoteAddr); no
//     forwarding header is trusted.
//   - the body is a string when the Content-Type is text/*, application/json,
//     application/javascript, application/xml or a +json/+xml type and the body
//     is valid UTF-8; otherwise it is base64 with isBase64Encoded true (AWS
//     base64-encodes form posts too). An empty body is left out.
func URLEvent(r *http.Request, rawPath string, body []byte, requestID string, now time.Time) ([]byte, error) {
	prefix := domainPrefix(r.Host)
	ev := urlEvent{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               rawPath,
		RawQueryString:        r.URL.RawQuery,
		Cookies:               requestCookies(r.Header),
		Headers:               eventHeaders(r),
		QueryStringParameters: queryParameters(r.URL.RawQuery),
		RequestContext: urlRequestContext{
			AccountID:    "anonymous",
			APIID:        prefix,
			DomainName:   r.Host,
			DomainPrefix: prefix,
			HTTP: urlRequestHTTP{
				Method:    r.Method,
				Path:      rawPath,
				Protocol:  r.Proto,
				SourceIP:  sourceIP(r.RemoteAddr),
				UserAgent: r.UserAgent(),
			},
			RequestID: requestID,
			RouteKey:  "$default",
			Stage:     "$default",
			Time:      now.UTC().Format(urlEventTimeFormat),
			TimeEpoch: now.UnixMilli(),
		},
	}
	if len(body) > 0 {
		if isTextContent(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}

	// An Encoder, to keep <, > and & as they are rather than \u003c…
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, fmt.Errorf("gateway: encode function URL event: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// eventHeaders lower-cases names and joins repeated values with ",", leaving
// out Cookie (it goes to cookies) and adding host, which net/http keeps in
// r.Host.
func eventHeaders(r *http.Request) map[string]string {
	h := make(map[string]string, len(r.Header)+1)
	for name, values := range r.Header {
		name = strings.ToLower(name)
		if name == "cookie" || len(values) == 0 {
			continue
		}
		v := strings.Join(values, ",")
		if prev, ok := h[name]; ok {
			v = prev + "," + v
		}
		h[name] = v
	}
	if r.Host != "" {
		h["host"] = r.Host
	}
	return h
}

// requestCookies splits every Cookie header into its "name=value" pairs.
func requestCookies(h http.Header) []string {
	var cookies []string
	for _, line := range h.Values("Cookie") {
		for c := range strings.SplitSeq(line, ";") {
			if c = strings.TrimSpace(c); c != "" {
				cookies = append(cookies, c)
			}
		}
	}
	return cookies
}

// queryParameters decodes the raw query, joining repeated names' values
// with ",". It is lenient, as AWS is: ';' is an ordinary character and a
// malformed escape is kept as sent. It returns nil when there are none.
func queryParameters(raw string) map[string]string {
	var params map[string]string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		name, value = queryUnescape(name), queryUnescape(value)
		if params == nil {
			params = make(map[string]string)
		}
		if prev, ok := params[name]; ok {
			value = prev + "," + value
		}
		params[name] = value
	}
	return params
}

func queryUnescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// sourceIP is the host part of a RemoteAddr.
func sourceIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// domainPrefix is the first DNS label of host (port removed), or the whole
// host for an IP address.
func domainPrefix(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if net.ParseIP(host) != nil {
		return host
	}
	first, _, _ := strings.Cut(host, ".")
	return first
}

// isTextContent reports whether a request body of this Content-Type goes to
// the function as a string rather than base64.
func isTextContent(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		first, _, _ := strings.Cut(contentType, ";")
		mediaType = strings.ToLower(strings.TrimSpace(first))
	}
	switch {
	case strings.HasPrefix(mediaType, "text/"),
		mediaType == "application/json",
		mediaType == "application/javascript",
		mediaType == "application/xml",
		strings.HasPrefix(mediaType, "application/") && (strings.HasSuffix(mediaType, "+json") || strings.HasSuffix(mediaType, "+xml")):
		return true
	}
	return false
}

// WriteURLResponse writes a function's result payload as the HTTP response,
// as Lambda function URLs do (payload format 2.0):
//
//   - a JSON object with a "statusCode" field is a response object: statusCode,
//     headers (string values; numbers and booleans are written as text),
//     multiValueHeaders (which win over headers for the same name), cookies
//     (one Set-Cookie each), body (a string, decoded from base64 when
//     isBase64Encoded is true). Content-Type defaults to application/json.
//   - any other JSON value (an object without statusCode, an array, a string,
//     a number, true, false, null) is answered 200 application/json with the
//     payload itself as the body: a function returning "Hello" sends the five
//     characters plus their quotes, as AWS documents.
//
// multiValueHeaders comes from payload format 1.0 and is accepted here too. A
// body that is not a string is written as its JSON text. Content-Length and
// Transfer-Encoding from the function are replaced by the real length, and no
// body is written for 204 and 304.
//
// An error wrapping ErrBadURLResponse (the payload is not JSON, or a
// response object is malformed: statusCode not an integer in 200–599, bad
// header values, bad base64) is returned before anything is written, for the
// caller to answer 502. Any other error is from writing to the client.
func WriteURLResponse(w http.ResponseWriter, payload []byte) error {
	if !json.Valid(payload) {
		return fmt.Errorf("%w: result is not JSON", ErrBadURLResponse)
	}
	resp, isObject, err := parseURLResponse(payload)
	if err != nil {
		return err
	}
	if !isObject {
		resp = urlResponse{status: http.StatusOK, body: payload}
	}

	h := w.Header()
	for name, values := range resp.header {
		for _, v := range values {
			h.Add(name, v)
		}
	}
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	for _, c := range resp.cookies {
		h.Add("Set-Cookie", c)
	}
	if resp.status == http.StatusNoContent || resp.status == http.StatusNotModified {
		w.WriteHeader(resp.status)
		return nil
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	if _, err := w.Write(resp.body); err != nil {
		return fmt.Errorf("gateway: write function URL response: %w", err)
	}
	return nil
}

// urlResponse is a parsed response object.
type urlResponse struct {
	status  int
	header  http.Header
	cookies []string
	body    []byte
}

// parseURLResponse decodes a response object. isObject is false when the
// payload is not a JSON object with a statusCode field. Keys match exactly
// (encoding/json's struct decoding would also take "StatusCode").
func parseURLResponse(payload []byte) (resp urlResponse, isObject bool, err error) {
	if trimmed := bytes.TrimSpace(payload); len(trimmed) == 0 || trimmed[0] != '{' {
		return resp, false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return resp, false, fmt.Errorf("%w: %w", ErrBadURLResponse, err)
	}
	rawStatus, ok := fields["statusCode"]
	if !ok {
		return resp, false, nil
	}

	status, err := strconv.Atoi(string(bytes.TrimSpace(rawStatus)))
	if err != nil || status < 200 || status > 599 {
		return resp, true, fmt.Errorf("%w: statusCode %s is not an HTTP status", ErrBadURLResponse, rawStatus)
	}
	resp.status = status
	resp.header = make(http.Header)

	var headers map[string]json.RawMessage
	if err := unmarshalField(fields, "headers", &headers); err != nil {
		return resp, true, err
	}
	for name, raw := range headers {
		v, ok, err := headerText(raw)
		if err != nil {
			return resp, true, fmt.Errorf("%w: header %s: %w", ErrBadURLResponse, name, err)
		}
		if ok {
			resp.header.Add(name, v)
		}
	}

	var multi map[string][]json.RawMessage
	if err := unmarshalField(fields, "multiValueHeaders", &multi); err != nil {
		return resp, true, err
	}
	for name, raws := range multi {
		resp.header.Del(name)
		for _, raw := range raws {
			v, ok, err := headerText(raw)
			if err != nil {
				return resp, true, fmt.Errorf("%w: header %s: %w", ErrBadURLResponse, name, err)
			}
			if ok {
				resp.header.Add(name, v)
			}
		}
	}

	if err := unmarshalField(fields, "cookies", &resp.cookies); err != nil {
		return resp, true, err
	}
	var isBase64 bool
	if err := unmarshalField(fields, "isBase64Encoded", &isBase64); err != nil {
		return resp, true, err
	}

	rawBody := bytes.TrimSpace(fields["body"])
	switch {
	case len(rawBody) == 0 || string(rawBody) == "null":
	case rawBody[0] == '"':
		var s string
		if err := json.Unmarshal(rawBody, &s); err != nil {
			return resp, true, fmt.Errorf("%w: body: %w", ErrBadURLResponse, err)
		}
		resp.body = []byte(s)
	default:
		resp.body = rawBody
	}
	if isBase64 {
		decoded, err := base64.StdEncoding.DecodeString(string(resp.body))
		if err != nil {
			return resp, true, fmt.Errorf("%w: body is not base64: %w", ErrBadURLResponse, err)
		}
		resp.body = decoded
	}
	return resp, true, nil
}

// unmarshalField decodes fields[name] into dst when it is present and not null.
func unmarshalField(fields map[string]json.RawMessage, name string, dst any) error {
	raw, ok := fields[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadURLResponse, name, err)
	}
	return nil
}

// headerText is a header value as text: a JSON string, or a number or boolean
// written as is. ok is false for null.
func headerText(raw json.RawMessage) (v string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", false, nil
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, err
		}
		return v, true, nil
	case raw[0] == '{' || raw[0] == '[':
		return "", false, errors.New("value is not a string")
	}
	return string(raw), true, nil
}
