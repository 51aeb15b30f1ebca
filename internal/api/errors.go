package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/archive"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
)

// Error is an API error: a stable type name (Lambda's where Lambda has one)
// and the HTTP status that goes with it.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// apiError is an error of type typ (apitype.Type…), with the status
// apitype gives that type.
func apiError(typ, msg string) *Error {
	return &Error{apitype.ErrorStatus(typ), typ, msg}
}

func badRequest(msg string) *Error {
	return apiError(apitype.TypeInvalidParameterValue, msg)
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
		return apiError(apitype.TypeCodeTooLarge, arcErr.Error())
	case errors.As(err, &arcErr):
		return apiError(apitype.TypeInvalidCode, arcErr.Error())
	case errors.As(err, &maxErr), errors.Is(err, registry.ErrTooLarge):
		return apiError(apitype.TypeRequestTooLarge, "request body is too large: "+err.Error())
	case errors.Is(err, events.ErrTooLarge):
		return apiError(apitype.TypeRequestTooLarge, err.Error())
	case errors.Is(err, events.ErrForbidden):
		return apiError(apitype.TypeAccessDenied, trimSentinel(err, events.ErrForbidden))
	case errors.Is(err, events.ErrInvalid):
		return apiError(apitype.TypeInvalidRequestContent, trimSentinel(err, events.ErrInvalid))
	case errors.Is(err, events.ErrBusy):
		return apiError(apitype.TypeTooManyRequests, trimSentinel(err, events.ErrBusy))
	case errors.Is(err, events.ErrTooManyTopics):
		return apiError(apitype.TypeTopicLimitExceeded, trimSentinel(err, events.ErrTooManyTopics))
	case errors.Is(err, events.ErrNotFound):
		return apiError(apitype.TypeResourceNotFound, trimSentinel(err, events.ErrNotFound))
	case errors.Is(err, registry.ErrNotFound):
		return apiError(apitype.TypeResourceNotFound, trimSentinel(err, registry.ErrNotFound))
	case errors.Is(err, registry.ErrExists):
		return apiError(apitype.TypeResourceConflict, trimSentinel(err, registry.ErrExists))
	case errors.Is(err, registry.ErrStale):
		return apiError(apitype.TypePreconditionFailed, trimSentinel(err, registry.ErrStale))
	case store.IsFull(err):
		return apiError(apitype.TypeStorageFull, "the node's disk is full: "+trimSentinel(err, store.ErrFull))
	case errors.Is(err, store.ErrUnavailable):
		return apiError(apitype.TypeServiceUnavailable, trimSentinel(err, store.ErrUnavailable))
	}
	return apiError(apitype.TypeService, "internal error: "+err.Error())
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
	writeJSON(w, e.Status, apitype.Error{Type: e.Type, Message: e.Message})
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
