package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/pool"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/store"
)

// Invoker runs invocations.
type Invoker interface {
	Invoke(ctx context.Context, req invoke.Request) (*invoke.Response, error)
	Resolve(name, qualifier string) (registry.Target, error)
}

// Queue stores events (async invocations).
type Queue interface {
	Enqueue(ctx context.Context, a events.Async) (string, error)
}

// Secrets finds the secret of an access key, for SigV4.
type Secrets interface {
	Secret(ctx context.Context, accessKeyID string) (string, error)
}

// Config is what the gateway needs.
type Config struct {
	Invoker Invoker
	// Queue takes invocations of type Event; nil refuses them.
	Queue Queue
	// Writable, if set, says whether the state store takes writes now:
	// an invocation of type Event is refused up front when it does not
	// (507 on a full disk), as every call that writes is.
	Writable   func() error
	AdminToken string
	Keys       Secrets // nil: SigV4 is refused
	// Region is the node's AWS region: a SigV4 signature must be scoped
	// to it and to service lambda, as AWS's Lambda endpoints want for the
	// Invoke API and function URLs alike; default us-east-1.
	Region string
	Logger *slog.Logger
	Now    func() time.Time
}

// sigV4Service is the service of the credential scope of every signed
// call to the gateway.
const sigV4Service = "lambda"

type gateway struct {
	cfg Config
}

// New returns the handler of the Lambda Invoke API
// (/2015-03-31/functions/…) and of function URLs (/fn/…).
func New(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	g := &gateway{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", g.invokeAPI)
	mux.HandleFunc("/fn/", g.functionURL)
	return mux
}

// lambdaError is an error of the Lambda API, rendered as the AWS SDKs read
// it: the type in X-Amzn-ErrorType and in the body.
type lambdaError struct {
	status int
	typ    string
	msg    string
	reason string // a throttle's, as Lambda gives it
	// retryAfter is when to try again, for a throttle; 0 means 1s.
	retryAfter time.Duration
}

func (e *lambdaError) Error() string { return e.typ + ": " + e.msg }

// retryAfterHeader is Retry-After in whole seconds, at least 1.
func (e *lambdaError) retryAfterHeader() string {
	return strconv.Itoa(max(1, int(math.Ceil(e.retryAfter.Seconds()))))
}

// lerr is an error of type typ (apitype.Type…), with the status apitype
// gives that type.
func lerr(typ, msg string) *lambdaError {
	return lerrStatus(apitype.ErrorStatus(typ), typ, msg)
}

// lerrStatus is an error of type typ with another status than its own.
func lerrStatus(status int, typ, msg string) *lambdaError {
	return &lambdaError{status: status, typ: typ, msg: msg}
}

func writeLambdaError(w http.ResponseWriter, e *lambdaError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	body := apitype.LambdaError{Type: e.typ, Message: e.msg}
	if e.reason != "" {
		body.Reason = e.reason
		w.Header().Set("Retry-After", e.retryAfterHeader()) // before the status, or it is not sent
	}
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(body) //nolint:errcheck // the status is sent
}

// lambdaErrorFor maps what the invoker said to Lambda's error.
func lambdaErrorFor(err error) *lambdaError {
	var (
		le *lambdaError
		te *pool.ThrottleError
		ce *meter.CapError
	)
	switch {
	case errors.As(err, &le):
		return le
	case errors.As(err, &te):
		return &lambdaError{status: http.StatusTooManyRequests, typ: apitype.TypeTooManyRequests, msg: "Rate Exceeded: " + te.Msg, reason: te.Reason}
	case errors.As(err, &ce):
		return &lambdaError{status: http.StatusTooManyRequests, typ: apitype.TypeTooManyRequests, msg: "Spend cap exceeded: " + ce.Error(),
			reason: meter.ReasonSpendCap, retryAfter: ce.RetryAfter}
	case store.IsFull(err):
		return lerr(apitype.TypeStorageFull, "the node's disk is full: "+err.Error())
	case errors.Is(err, store.ErrUnavailable):
		return lerrStatus(http.StatusServiceUnavailable, apitype.TypeService, err.Error())
	case errors.Is(err, meter.ErrBacklog):
		return lerrStatus(http.StatusServiceUnavailable, apitype.TypeService, "the node cannot meter calls now; try again later")
	case errors.Is(err, registry.ErrNotFound):
		return lerr(apitype.TypeResourceNotFound, strings.TrimSuffix(err.Error(), ": "+registry.ErrNotFound.Error()))
	case errors.Is(err, invoke.ErrInvalidContent):
		return lerr(apitype.TypeInvalidRequestContent, "Could not parse request body into json")
	case errors.Is(err, events.ErrTooLarge):
		return lerr(apitype.TypeRequestTooLarge, fmt.Sprintf("Request must be smaller than %d bytes for the InvokeAsync operation", events.MaxPayload))
	case errors.Is(err, invoke.ErrTooLarge):
		return lerr(apitype.TypeRequestTooLarge, "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
	}
	return lerr(apitype.TypeService, err.Error())
}

// readBody reads at most the sync payload limit, and one byte more to
// tell an oversize body.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > runtime.MaxRequestBytes {
		return nil, invoke.ErrTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, runtime.MaxRequestBytes+1))
	if err != nil {
		return nil, lerr(apitype.TypeInvalidRequestContent, "reading the body: "+err.Error())
	}
	if len(b) > runtime.MaxRequestBytes {
		return nil, invoke.ErrTooLarge
	}
	return b, nil
}

// authorize checks who is calling before a byte of the body is read, so
// that a caller without credentials cannot make the node read 6 MB: it
// accepts the admin bearer token, or a SigV4 signature by a Wisp access key
// that passes every check but the body's. A signed request gets its
// signature back, to check against the body. An authorized request's
// connection is marked so: a flood of unauthenticated connections cannot
// close it.
func (g *gateway) authorize(r *http.Request) (*auth.Signature, *lambdaError) {
	if tok, ok := auth.BearerToken(r.Header); ok {
		if auth.IsToken(tok, g.cfg.AdminToken) {
			connlimit.MarkAuthenticated(r.Context())
			return nil, nil
		}
		return nil, lerr(apitype.TypeUnauthorized, "wrong bearer token")
	}
	if g.cfg.Keys == nil {
		return nil, lerr(apitype.TypeMissingAuthenticationToken, "a bearer token is required")
	}
	sig, err := auth.CheckSigV4(r, g.cfg.Now(), auth.SigV4Scope{Region: g.cfg.Region, Service: sigV4Service}, func(id string) (string, error) {
		return g.cfg.Keys.Secret(r.Context(), id)
	})
	if err != nil {
		return nil, g.signatureError(err)
	}
	return sig, nil
}

// signatureError is Lambda's answer to a refused signature.
func (g *gateway) signatureError(err error) *lambdaError {
	var (
		se *auth.ScopeError
		ue *auth.UnsignedError
	)
	switch {
	case errors.As(err, &se) && se.Part == "region":
		return lerr(apitype.TypeInvalidSignature,
			fmt.Sprintf("Credential should be scoped to a valid region, not '%s': this node's region is '%s'.", se.Got, se.Want))
	case errors.As(err, &se):
		return lerr(apitype.TypeInvalidSignature,
			fmt.Sprintf("Credential should be scoped to correct service: '%s', not '%s'.", se.Want, se.Got))
	case errors.As(err, &ue) && ue.What == "the payload":
		return lerr(apitype.TypeInvalidSignature,
			"The request signature must cover the payload: X-Amz-Content-Sha256 must be the body's SHA-256, not UNSIGNED-PAYLOAD or a STREAMING mode.")
	case errors.As(err, &ue):
		return lerr(apitype.TypeInvalidSignature,
			fmt.Sprintf("The request signature must cover the %s header: add it to SignedHeaders.", ue.What))
	case errors.Is(err, auth.ErrNoSignature):
		return lerr(apitype.TypeMissingAuthenticationToken, "Missing Authentication Token: send a bearer token or sign the request (SigV4)")
	case errors.Is(err, auth.ErrUnknownKey):
		return lerr(apitype.TypeUnrecognizedClient, "The security token included in the request is invalid.")
	case errors.Is(err, auth.ErrExpired):
		return lerr(apitype.TypeInvalidSignature, "Signature expired: the request time is too far from the server's")
	case errors.Is(err, auth.ErrBadSignature):
		return lerr(apitype.TypeInvalidSignature, "The request signature we calculated does not match the signature you provided.")
	default: // the key could not be looked up
		g.cfg.Logger.Error("gateway: checking a signature", "err", err)
		return lerr(apitype.TypeService, "the request's signature could not be checked")
	}
}

// authorizedBody reads the body of an authorized request: at most 6 MB
// and a byte, and only once authorize let the caller in. A signature is
// then checked against the body it covers.
func (g *gateway) authorizedBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	sig, le := g.authorize(r)
	if le != nil {
		if r.ContentLength != 0 {
			// Else net/http reads up to 256 KB of the unread body
			// before answering, to keep the connection.
			w.Header().Set("Connection", "close")
		}
		return nil, le
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if sig != nil {
		if _, err := sig.Verify(body); err != nil {
			return nil, g.signatureError(err)
		}
		connlimit.MarkAuthenticated(r.Context())
	}
	return body, nil
}

// splitName reads a FunctionName as Lambda takes it: a name, name:qualifier,
// or an ARN with or without a qualifier.
func splitName(s string) (name, qualifier string) {
	if rest, ok := strings.CutPrefix(s, "arn:"); ok {
		parts := strings.Split(rest, ":")
		// aws:lambda:region:account:function:name[:qualifier]
		if len(parts) >= 6 && parts[4] == "function" {
			name = parts[5]
			if len(parts) > 6 {
				qualifier = parts[6]
			}
			return name, qualifier
		}
	}
	name, qualifier, _ = strings.Cut(s, ":")
	return name, qualifier
}

func (g *gateway) invokeAPI(w http.ResponseWriter, r *http.Request) {
	body, err := g.authorizedBody(w, r)
	if err != nil {
		writeLambdaError(w, lambdaErrorFor(err))
		return
	}
	name, qualifier := splitName(r.PathValue("name"))
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if qualifier != "" && qualifier != q {
			writeLambdaError(w, lerr(apitype.TypeInvalidParameterValue,
				fmt.Sprintf("the qualifier in the function name (%s) and the Qualifier parameter (%s) differ", qualifier, q)))
			return
		}
		qualifier = q
	}
	req := invoke.Request{Function: name, Qualifier: qualifier, Payload: body,
		Tail: r.Header.Get("X-Amz-Log-Type") == "Tail"}
	if cc := r.Header.Get("X-Amz-Client-Context"); cc != "" {
		b, err := base64.StdEncoding.DecodeString(cc)
		if err != nil || !json.Valid(b) {
			writeLambdaError(w, lerr(apitype.TypeInvalidParameterValue, "X-Amz-Client-Context must be base64 of a JSON object"))
			return
		}
		req.ClientContext = string(b)
	}
	switch typ := r.Header.Get("X-Amz-Invocation-Type"); typ {
	case "", "RequestResponse":
	case "DryRun":
		if _, err := g.cfg.Invoker.Resolve(name, qualifier); err != nil {
			writeLambdaError(w, lambdaErrorFor(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		g.invokeAsync(w, r, req)
		return
	default:
		writeLambdaError(w, lerr(apitype.TypeInvalidParameterValue,
			fmt.Sprintf("X-Amz-Invocation-Type %q must be RequestResponse, Event or DryRun", typ)))
		return
	}
	res, err := g.cfg.Invoker.Invoke(r.Context(), req)
	answerReady(w, res)
	if err != nil {
		writeLambdaError(w, lambdaErrorFor(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-RequestId", res.RequestID)
	h.Set("X-Amz-Executed-Version", res.Version)
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	if req.Tail {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(res.LogTail))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(res.Payload) //nolint:errcheck // the status is sent; the caller may have left
}

// answerReady restarts the write deadline once an invocation is over:
// it may have run for 15 minutes, and the answer's time counts from now.
func answerReady(w http.ResponseWriter, res *invoke.Response) {
	var n int64
	if res != nil {
		n = int64(len(res.Payload))
	}
	connlimit.ExtendWrite(w, n)
}

// invokeAsync stores the invocation as an event and answers 202 once it
// is stored: it runs later, with the function's retries and destinations.
func (g *gateway) invokeAsync(w http.ResponseWriter, r *http.Request, req invoke.Request) {
	if g.cfg.Queue == nil {
		writeLambdaError(w, lerr(apitype.TypeInvalidParameterValue, "this node does not take events"))
		return
	}
	if req.Tail {
		writeLambdaError(w, lerr(apitype.TypeInvalidParameterValue, "X-Amz-Log-Type Tail is for RequestResponse invocations"))
		return
	}
	if g.cfg.Writable != nil {
		if err := g.cfg.Writable(); err != nil {
			writeLambdaError(w, lambdaErrorFor(err))
			return
		}
	}
	id, err := g.cfg.Queue.Enqueue(r.Context(), events.Async{Function: req.Function, Qualifier: req.Qualifier, Payload: req.Payload})
	if err != nil {
		writeLambdaError(w, lambdaErrorFor(err))
		return
	}
	w.Header().Set("X-Amzn-RequestId", id)
	w.WriteHeader(http.StatusAccepted)
}

// urlError answers a function URL request as Lambda's URLs do: a status and
// {"Message": …}.
func urlError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"Message": msg}) //nolint:errcheck // the status is sent
}

// functionURL serves /fn/{name}[:{qualifier}][/{path…}].
func (g *gateway) functionURL(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/fn/")
	target, rawPath, _ := strings.Cut(rest, "/")
	rawPath = "/" + rawPath
	name, qualifier, _ := strings.Cut(target, ":")
	// Who may call the URL is the function's setting now, not the one a
	// version was published with.
	latest, err := g.cfg.Invoker.Resolve(name, "")
	if err == nil && qualifier != "" {
		_, err = g.cfg.Invoker.Resolve(name, qualifier)
	}
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			urlError(w, http.StatusNotFound, "Not Found")
			return
		}
		urlError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var body []byte
	if latest.URLAuth == registry.URLAuthNone {
		body, err = readBody(r)
	} else {
		body, err = g.authorizedBody(w, r)
		// The function must not see the caller's credentials.
		r.Header.Del("Authorization")
	}
	if err != nil {
		le := lambdaErrorFor(err)
		if le.status == http.StatusUnauthorized || le.status == http.StatusForbidden {
			urlError(w, http.StatusForbidden, "Forbidden")
			return
		}
		urlError(w, le.status, http.StatusText(le.status))
		return
	}
	id := invoke.NewRequestID()
	event, err := URLEvent(r, rawPath, body, id, g.cfg.Now())
	if err != nil {
		urlError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(event) > runtime.MaxRequestBytes {
		urlError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	res, err := g.cfg.Invoker.Invoke(r.Context(), invoke.Request{Function: name, Qualifier: qualifier, Payload: event, RequestID: id, Trigger: "url"})
	answerReady(w, res)
	w.Header().Set("X-Amzn-RequestId", id)
	if err != nil {
		le := lambdaErrorFor(err)
		if le.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", le.retryAfterHeader())
		}
		urlError(w, le.status, http.StatusText(le.status))
		return
	}
	if res.FunctionError != "" {
		urlError(w, http.StatusBadGateway, "Internal Server Error")
		return
	}
	if err := WriteURLResponse(w, res.Payload); errors.Is(err, ErrBadURLResponse) {
		g.cfg.Logger.Warn("function URL: bad response from function", "function", name, "request_id", id, "err", err)
		urlError(w, http.StatusBadGateway, "Internal Server Error")
	}
}
