package process

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/runtime"
)

// The Runtime API (2018-06-01), as one instance's runtime sees it.
const (
	apiPrefix = "/2018-06-01/runtime/"

	hdrRequestID       = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadline        = "Lambda-Runtime-Deadline-Ms"
	hdrFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTraceID         = "Lambda-Runtime-Trace-Id"
	hdrClientContext   = "Lambda-Runtime-Client-Context"
	hdrCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	hdrErrorType       = "Lambda-Runtime-Function-Error-Type"
	// aws-lambda-go sends these as trailers when its response body fails
	// while streaming.
	hdrErrorBody = "Lambda-Runtime-Function-Error-Body"

	// maxDiscard bounds how much of a too-large body is read and thrown
	// away, so the runtime sees an answer rather than a broken connection.
	maxDiscard = 64 << 20
)

// Errors of the Runtime API itself, as Lambda names them.
const (
	apiErrInvalidRequestID       = "InvalidRequestID"
	apiErrInvalidStateTransition = "InvalidStateTransition"
	apiErrTooLarge               = "RequestEntityTooLarge"
)

// ServeHTTP serves the instance's Runtime API.
func (i *instance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Count the handler so Stop can wait for it; none starts once Stop
	// has begun waiting.
	i.hmu.RLock()
	if i.hclosed {
		i.hmu.RUnlock()
		apiError(w, http.StatusInternalServerError, "Runtime.Stopped", "the instance is stopping")
		return
	}
	i.handlers.Add(1)
	i.hmu.RUnlock()
	defer i.handlers.Done()

	rest, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	// A connection that speaks the Runtime API is the runtime's: sockets
	// the function opens and leaves cannot close it to make room.
	connlimit.MarkAuthenticated(r.Context())
	switch {
	case rest == "invocation/next":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		i.serveNext(w, r)
	case rest == "init/error":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		i.serveInitError(w, r)
	case strings.HasPrefix(rest, "invocation/"):
		id, kind, ok := strings.Cut(strings.TrimPrefix(rest, "invocation/"), "/")
		if !ok || id == "" || (kind != "response" && kind != "error") {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		if kind == "response" {
			i.serveResponse(w, r, id)
		} else {
			i.serveError(w, r, id)
		}
	default:
		http.NotFound(w, r)
	}
}

// serveNext hands the runtime the next invocation, waiting for one. The
// first call means init is over.
func (i *instance) serveNext(w http.ResponseWriter, r *http.Request) {
	if !i.isReady.Load() {
		i.readyOnce.Do(i.setReady)
	}
	i.mu.Lock()
	running := i.running
	i.mu.Unlock()
	if running != "" {
		apiError(w, http.StatusForbidden, apiErrInvalidStateTransition,
			"next invocation asked for before invocation "+running+" was answered")
		return
	}
	var inv runtime.Invocation
	select {
	case inv = <-i.invokes:
	case <-r.Context().Done():
		return
	case <-i.stopping:
		return
	}
	i.mu.Lock()
	i.running = inv.RequestID
	i.mu.Unlock()

	// The wait may have been long; the write's time counts from now.
	connlimit.ExtendWrite(w, int64(len(inv.Payload)))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(inv.Payload)))
	h.Set(hdrRequestID, inv.RequestID)
	h.Set(hdrDeadline, strconv.FormatInt(inv.Deadline.UnixMilli(), 10))
	setIf(h, hdrFunctionARN, inv.FunctionARN)
	setIf(h, hdrTraceID, inv.TraceID)
	setIf(h, hdrClientContext, inv.ClientContext)
	setIf(h, hdrCognitoIdentity, inv.CognitoIdentity)
	w.WriteHeader(http.StatusOK)
	// A failed write means the runtime is gone; Invoke sees it exit.
	w.Write(inv.Payload) //nolint:errcheck
}

func setIf(h http.Header, key, value string) {
	if value != "" {
		h.Set(key, value)
	}
}

// serveResponse takes an invocation's response.
func (i *instance) serveResponse(w http.ResponseWriter, r *http.Request, id string) {
	if !i.isRunning(id) {
		invalidRequestID(w)
		return
	}
	body, tooLarge, err := readBody(r)
	if err != nil {
		return // the connection broke: the runtime is gone or going
	}
	var res runtime.Result
	switch errType := r.Trailer.Get(hdrErrorType); {
	case tooLarge:
		res = runtime.Result{ErrorType: runtime.ErrTypeResponseTooLarge, Payload: runtime.ErrorPayload(
			runtime.ErrTypeResponseTooLarge,
			fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", runtime.MaxResponseBytes),
		)}
	case errType != "":
		// The response failed part way: aws-lambda-go says so in trailers.
		payload, err := base64.StdEncoding.DecodeString(r.Trailer.Get(hdrErrorBody))
		if err != nil || !json.Valid(payload) {
			payload = runtime.ErrorPayload(errType, "the response failed while it was sent")
		}
		res = runtime.Result{ErrorType: errType, Payload: payload, Reusable: true}
	default:
		res = runtime.Result{Payload: body, Reusable: true}
	}
	if !i.finish(id, res) {
		invalidRequestID(w)
		return
	}
	if tooLarge {
		apiError(w, http.StatusRequestEntityTooLarge, apiErrTooLarge,
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", runtime.MaxResponseBytes))
		return
	}
	accepted(w)
}

// serveError takes an invocation's error.
func (i *instance) serveError(w http.ResponseWriter, r *http.Request, id string) {
	if !i.isRunning(id) {
		invalidRequestID(w)
		return
	}
	body, tooLarge, err := readBody(r)
	if err != nil {
		return
	}
	errType, payload := errorDocument(r.Header.Get(hdrErrorType), body, tooLarge, runtime.ErrTypeUnknown)
	if !i.finish(id, runtime.Result{ErrorType: errType, Payload: payload, Reusable: true}) {
		invalidRequestID(w)
		return
	}
	accepted(w)
}

// serveInitError takes the error of an init that failed.
func (i *instance) serveInitError(w http.ResponseWriter, r *http.Request) {
	if i.isReady.Load() {
		apiError(w, http.StatusForbidden, apiErrInvalidStateTransition, "init error posted after init was over")
		return
	}
	body, tooLarge, err := readBody(r)
	if err != nil {
		return
	}
	errType, payload := errorDocument(r.Header.Get(hdrErrorType), body, tooLarge, runtime.ErrTypeInit)
	var doc struct {
		Message string `json:"errorMessage"`
	}
	msg := string(body)
	if json.Unmarshal(payload, &doc) == nil && doc.Message != "" {
		msg = doc.Message
	}
	// The first report counts.
	select {
	case i.initErrs <- &runtime.InitError{Type: errType, Message: msg, Payload: payload}:
	default:
	}
	accepted(w)
}

// errorDocument works out an error's type, from the header, else the
// body's errorType, else fallback, and the error document to hand the
// caller: the body when it is JSON, else one built around its text.
func errorDocument(header string, body []byte, tooLarge bool, fallback string) (errType string, payload []byte) {
	errType = header
	if errType == "" && json.Valid(body) {
		var doc struct {
			Type string `json:"errorType"`
		}
		if json.Unmarshal(body, &doc) == nil {
			errType = doc.Type
		}
	}
	if errType == "" {
		errType = fallback
	}
	switch {
	case tooLarge:
		payload = runtime.ErrorPayload(errType,
			fmt.Sprintf("The error document exceeded the maximum allowed size (%d bytes).", runtime.MaxResponseBytes))
	case len(body) > 0 && json.Valid(body):
		payload = body
	default:
		payload = runtime.ErrorPayload(errType, strings.TrimSpace(string(body)))
	}
	return errType, payload
}

// readBody reads a posted body of at most runtime.MaxResponseBytes. A
// larger one is read and thrown away (up to maxDiscard), and reported as
// tooLarge.
// Bodies grow as their bytes arrive: a declared length is never allocated
// ahead, so a runtime that announces 6 MB and sends little holds little.
func readBody(r *http.Request) (body []byte, tooLarge bool, err error) {
	const limit = runtime.MaxResponseBytes
	if n := r.ContentLength; n >= 0 && n <= limit {
		body, err = io.ReadAll(io.LimitReader(r.Body, n))
		if err == nil && int64(len(body)) < n {
			err = io.ErrUnexpectedEOF
		}
		return body, false, err
	}
	if r.ContentLength < 0 { // chunked: aws-lambda-go's way
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil || len(body) <= limit {
			return body, false, err
		}
	}
	_, err = io.Copy(io.Discard, io.LimitReader(r.Body, maxDiscard))
	return nil, true, err
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`) //nolint:errcheck
}

func invalidRequestID(w http.ResponseWriter) {
	apiError(w, http.StatusBadRequest, apiErrInvalidRequestID, "Invalid request ID")
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	apiError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
}

// apiError answers the runtime with an error of the Runtime API.
func apiError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(runtime.ErrorPayload(errType, msg)) //nolint:errcheck
}
