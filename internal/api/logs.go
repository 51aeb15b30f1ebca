package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// followWindow is how far back a followed stream starts when the caller
// does not say.
const followWindow = time.Hour

// functionLogs streams a function's log records as NDJSON, one record a
// line, each line flushed as it is written, so that follow=true tails the
// log until the client goes away. A function's logs go with it: one that
// does not exist has none.
func (a *api) functionLogs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := registry.ValidName("function", name); err != nil {
		return err
	}
	if a.logs == nil {
		return &Error{http.StatusNotImplemented, apitype.TypeService, "logs are not enabled on this node"}
	}
	q := r.URL.Query()
	follow := false
	if s := q.Get("follow"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return badRequest(fmt.Sprintf("follow %q must be true or false", s))
		}
		follow = b
	}
	since, err := parseSince(q.Get("since"), time.Now(), follow)
	if err != nil {
		return err
	}

	out := &ndjsonWriter{w: w, rc: http.NewResponseController(w)}
	if follow {
		// Tell the client the stream is open before there is anything in it.
		if err := out.start(); err != nil {
			return nil // the client is gone
		}
	}
	err = a.logs.Read(r.Context(), name, since, q.Get("request_id"), follow, out.write)
	switch {
	case err == nil:
		if !out.started {
			out.start() //nolint:errcheck // an empty answer to a client that left
		}
		return nil
	case r.Context().Err() != nil || errors.Is(err, errClientGone):
		return nil // the client went away: the normal end of a follow
	case !out.started:
		return err
	}
	// The status is sent: cut the stream off so the client sees that it is
	// incomplete rather than a clean end.
	a.log.Warn("api: log stream cut off", "function", name, "err", err)
	panic(http.ErrAbortHandler)
}

// errClientGone is a write to the client failing.
var errClientGone = errors.New("api: the client went away")

// ndjsonWriter writes records as NDJSON lines, sending the status and
// headers with the first.
type ndjsonWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (o *ndjsonWriter) start() error {
	o.started = true
	o.w.Header().Set("Content-Type", "application/x-ndjson")
	o.w.Header().Set("Cache-Control", "no-store")
	// A followed stream lasts as long as the client wants it, and each
	// write gets its own deadline: a client that stops reading is let go.
	connlimit.ExtendWrite(o.w, 0)
	o.w.WriteHeader(http.StatusOK)
	return o.flush()
}

func (o *ndjsonWriter) write(rec telemetry.Record) error {
	if !o.started {
		if err := o.start(); err != nil {
			return err
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	connlimit.ExtendWrite(o.w, int64(len(b)))
	if _, err := o.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return o.flush()
}

func (o *ndjsonWriter) flush() error {
	if err := o.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

// parseSince reads the since parameter: a duration back from now ("10m",
// "2h", "7d") or an RFC 3339 time. Absent, it means every record kept, or
// the last followWindow when following.
func parseSince(s string, now time.Time, follow bool) (time.Time, error) {
	if s == "" {
		if follow {
			return now.Add(-followWindow), nil
		}
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// Days, which ParseDuration does not know: "7d".
		if n, ok := strings.CutSuffix(s, "d"); ok {
			if days, derr := strconv.ParseUint(n, 10, 16); derr == nil {
				d, err = time.Duration(days)*24*time.Hour, nil
			}
		}
	}
	if err != nil || d < 0 {
		return time.Time{}, badRequest(fmt.Sprintf("since %q must be a duration back from now (such as 10m, 2h or 7d) or an RFC 3339 time", s))
	}
	return now.Add(-d), nil
}
