package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

// Error is an API error: a stable type name (Lambda's where Lambda has one)
// and the HTTP status that goes with it.
type Error struct {
	Status  int    `json:"-"`
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

func badRequest(msg string) *Error {
	return &Error{http.StatusBadRequest, "InvalidParameterValueException", msg}
}

// errorFor maps an error from below to what the caller is told.
func errorFor(err error) *Error {
	var (
		apiErr *Error
		valErr *registry.ValidationError
		arcErr *archive.Error
		maxErr *http.MaxBytesError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &valErr):
		return badRequest(valErr.Msg)
	case errors.As(err, &arcErr) && arcErr.TooLarge:
		return &Error{http.StatusRequestEntityTooLarge, "CodeTooLargeException", arcErr.Error()}
	case errors.As(err, &arcErr):
		return &Error{http.StatusBadRequest, "InvalidCodeException", arcErr.Error()}
	case errors.As(err, &maxErr), errors.Is(err, registry.ErrTooLarge):
		return &Error{http.StatusRequestEntityTooLarge, "RequestTooLargeException", "request body is too large: " + err.Error()}
	case errors.Is(err, events.ErrTooLarge):
		return &Error{http.StatusRequestEntityTooLarge, "RequestTooLargeException", err.Error()}
	case errors.Is(err, events.ErrForbidden):
		return &Error{http.StatusForbidden, "AccessDeniedException", trimSentinel(err, events.ErrForbidden)}
	case errors.Is(err, events.ErrInvalid):
		return &Error{http.StatusBadRequest, "InvalidRequestContentException", trimSentinel(err, events.ErrInvalid)}
	case errors.Is(err, events.ErrBusy):
		return &Error{http.StatusTooManyRequests, "TooManyRequestsException", trimSentinel(err, events.ErrBusy)}
	case errors.Is(err, events.ErrTooManyTopics):
		return &Error{http.StatusInsufficientStorage, "TopicLimitExceededException", trimSentinel(err, events.ErrTooManyTopics)}
	case errors.Is(err, events.ErrNotFound):
		return &Error{http.StatusNotFound, "ResourceNotFoundException", trimSentinel(err, events.ErrNotFound)}
	case errors.Is(err, registry.ErrNotFound):
		return &Error{http.StatusNotFound, "ResourceNotFoundException", trimSentinel(err, registry.ErrNotFound)}
	case errors.Is(err, registry.ErrExists):
		return &Error{http.StatusConflict, "ResourceConflictException", trimSentinel(err, registry.ErrExists)}
	case errors.Is(err, registry.ErrStale):
		return &Error{http.StatusConflict, "PreconditionFailedException", trimSentinel(err, registry.ErrStale)}
	case store.IsFull(err):
		return &Error{http.StatusInsufficientStorage, "StorageFullException", "the node's disk is full: " + trimSentinel(err, store.ErrFull)}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{http.StatusServiceUnavailable, "ServiceUnavailableException", trimSentinel(err, store.ErrUnavailable)}
	}
	return &Error{http.StatusInternalServerError, "ServiceException", "internal error: " + err.Error()}
}

// trimSentinel drops the ": registry: …" tail a wrapped sentinel adds, so
// the message reads as a sentence about the caller's request.
func trimSentinel(err, sentinel error) string {
	msg, tail := err.Error(), ": "+sentinel.Error()
	if len(msg) > len(tail) && msg[len(msg)-len(tail):] == tail {
		return msg[:len(msg)-len(tail)]
	}
	return msg
}

// writeError renders err; the one place errors become responses.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	e := errorFor(err)
	if e.Status >= 500 {
		log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The status is sent; a failed write means the client went away, and
	// there is no one left to tell.
	enc.Encode(v) //nolint:errcheck
}
