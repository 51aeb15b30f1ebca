package wasm

import (
	"bytes"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

// maxLine caps a line of stderr; a longer one is handed on in pieces.
const maxLine = 256 << 10

// response collects stdout, up to the largest response there can be.
type response struct {
	buf     []byte
	written int64 // every byte written, kept or not
}

func (r *response) Write(p []byte) (int, error) {
	r.written += int64(len(p))
	if r.written <= runtime.MaxResponseBytes {
		r.buf = append(r.buf, p...)
	}
	// Past the limit the guest is not told: the invocation fails at its
	// end, whatever the guest does about a failed write.
	return len(p), nil
}

func (r *response) tooLarge() bool { return r.written > runtime.MaxResponseBytes }

// logWriter hands each line written to a stream (stderr, or in reuse
// mode stdout too) to the spec's Log, tagged with the request id, and
// remembers what an error message is made of.
type logWriter struct {
	log func(runtime.Line)
	// done ends a wait of log for room in the node's logs: the call's
	// ctx.Done. While log waits, so does the guest's write.
	done      <-chan struct{}
	requestID string
	stream    string // "stdout" or "stderr"
	partial   []byte // the line being written
	last      string // the last line that was not blank
	crash     string // the last line a Go runtime crash begins with
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(w.partial)
			if len(p) < room {
				w.partial = append(w.partial, p...)
				break
			}
			w.partial = append(w.partial, p[:room]...)
			p = p[room:]
			w.emit()
			continue
		}
		w.partial = append(w.partial, p[:i]...)
		p = p[i+1:]
		w.emit()
	}
	return n, nil
}

// flush hands on a last line written without its newline.
func (w *logWriter) flush() {
	if len(w.partial) > 0 {
		w.emit()
	}
}

func (w *logWriter) emit() {
	text := strings.TrimSuffix(string(w.partial), "\r")
	w.partial = w.partial[:0]
	if strings.TrimSpace(text) != "" {
		w.last = text
	}
	if strings.HasPrefix(text, "panic: ") || strings.HasPrefix(text, "fatal error: ") {
		w.crash = text
	}
	if w.log != nil {
		w.log(runtime.Line{Time: time.Now(), RequestID: w.requestID, Stream: w.stream, Text: text, Done: w.done})
	}
}

// errorLine is the line of stderr that says why a guest exited with code:
// the last one, or for a Go program that crashed (exit status 2) the line
// its crash report begins with.
func (w *logWriter) errorLine(code uint32) string {
	if code == 2 && w.crash != "" {
		return w.crash
	}
	return w.last
}
