package connlimit

import (
	"io"
	"net/http"
	"time"
)

// How slowly a request may arrive and its answer leave. A server's
// ReadHeaderTimeout and IdleTimeout are its own; these are shared by every
// server of the node and by the handlers that set their own deadlines.
const (
	// WriteTimeout is how long a handler has, from the end of the request
	// (its headers, or the last of a long body), to write its answer.
	// Answers made from memory or the state store take milliseconds; a
	// client that has not taken one in a minute is stuck or hostile, and
	// would otherwise hold its connection and goroutine for good. Handlers
	// that wait before they answer (a sync invocation, a followed log)
	// restart it with ExtendWrite when their answer is ready.
	WriteTimeout = time.Minute
	// MinRate is the slowest, in bytes a second, a request body may
	// arrive (after BodyGrace) and a long answer leave: 8 KiB/s is 64
	// kbit/s, slower than any link one deploys from, so a 50 MB code
	// upload may take up to 1h45m; a sender of a byte every 2 s is cut
	// off after BodyGrace.
	MinRate = 8 << 10
	// BodyGrace is the time a body has before MinRate counts: a client
	// may wait for a 100-continue, or a slow link may start slowly.
	BodyGrace = 10 * time.Second
)

// Rates bound how slowly requests arrive and answers leave. The zero
// value is the constants above.
type Rates struct {
	// MinRate is in bytes a second; 0 means MinRate.
	MinRate int64
	// BodyGrace 0 means BodyGrace; WriteTimeout 0 means WriteTimeout.
	BodyGrace, WriteTimeout time.Duration
}

func (rt Rates) withDefaults() Rates {
	if rt.MinRate <= 0 {
		rt.MinRate = MinRate
	}
	if rt.BodyGrace <= 0 {
		rt.BodyGrace = BodyGrace
	}
	if rt.WriteTimeout <= 0 {
		rt.WriteTimeout = WriteTimeout
	}
	return rt
}

// transfer is how long n bytes may take at MinRate.
func (rt Rates) transfer(n int64) time.Duration {
	return time.Duration(n) * time.Second / time.Duration(rt.MinRate)
}

// BodyRate bounds how slowly request bodies reach h: a body must arrive
// at MinRate or faster once BodyGrace has passed, or its read fails (the
// handler sees a timeout error, and the connection is closed). A body
// costs two deadline updates at its start and, while it arrives, a clock
// read per read and two more updates every BodyGrace/2. A long body moves
// the answer's write deadline along with it, so the answer to a long
// upload still has WriteTimeout to be written.
func (rt Rates) BodyRate(h http.Handler) http.Handler {
	rt = rt.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &rateBody{ReadCloser: r.Body, rt: rt, rc: http.NewResponseController(w), start: time.Now()}
		// Set now, not at the first read: a handler that answers without
		// reading leaves the server to drain the body, within this bound too.
		b.extend()
		orig := r.Body
		r.Body = b
		// net/http decides what to do with a body the handler did not
		// read (drain up to 256 KB, or close the connection when more is
		// declared) only when it knows the body as its own: give it back
		// for the answer, else a large unread body is drained first.
		defer func() { r.Body = orig }()
		h.ServeHTTP(w, r)
	})
}

// rateBody is a request body held to a minimum rate.
type rateBody struct {
	io.ReadCloser
	rt       Rates
	rc       *http.ResponseController
	start    time.Time
	n        int64     // bytes read
	deadline time.Time // the read deadline set
}

func (b *rateBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	// Not at the end: the server clears the read deadline there, to wait
	// for the next request, and a deadline set after would cut that off.
	if err == nil && n > 0 && time.Until(b.deadline) < b.rt.BodyGrace/2 {
		b.extend()
	}
	return n, err
}

// extend sets the read deadline the bytes read so far have earned, and
// the write deadline WriteTimeout after it.
func (b *rateBody) extend() {
	b.deadline = b.start.Add(b.rt.BodyGrace + b.rt.transfer(b.n))
	// A server that cannot set deadlines (ErrNotSupported) is left as it is.
	b.rc.SetReadDeadline(b.deadline)                         //nolint:errcheck
	b.rc.SetWriteDeadline(b.deadline.Add(b.rt.WriteTimeout)) //nolint:errcheck
}

// ExtendWrite gives the answer a handler is about to write, of about n
// bytes (0 for a small one), WriteTimeout from now, plus the time n bytes
// take at MinRate. A handler that waited before answering (an
// invocation), or writes a stream (a followed log, once per record),
// calls it before it writes. It does nothing on a server that cannot set
// deadlines.
func ExtendWrite(w http.ResponseWriter, n int64) {
	rt := Rates{}.withDefaults()
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.WriteTimeout + rt.transfer(n))) //nolint:errcheck // see above
}
