package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	// progressDelay is how long an upload runs before its bar shows: fast
	// ones print nothing.
	progressDelay = 500 * time.Millisecond
	// progressRedraw is how often the bar is redrawn at most.
	progressRedraw = 100 * time.Millisecond
	progressWidth  = 30
)

// progressBar draws an upload's progress on one terminal line, in place.
// A nil *progressBar draws nothing.
type progressBar struct {
	w     io.Writer
	total int64
	now   func() time.Time
	start time.Time

	mu       sync.Mutex // guards the fields below; update runs in the HTTP transport's goroutine
	drawn    time.Time  // when the bar was last drawn; zero if never
	finished bool
}

func newProgressBar(w io.Writer, total int64, now func() time.Time) *progressBar {
	return &progressBar{w: w, total: total, now: now, start: now()}
}

// update is the client's progress callback.
func (p *progressBar) update(sent, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	if p.finished || t.Sub(p.start) < progressDelay || t.Sub(p.drawn) < progressRedraw {
		return
	}
	p.drawn = t
	fmt.Fprint(p.w, "\r"+progressLine(sent, total))
}

// finish clears the bar, if it was drawn, and stops drawing it.
func (p *progressBar) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished && !p.drawn.IsZero() {
		fmt.Fprint(p.w, "\r\x1b[K") // to the line's start, and erase it
	}
	p.finished = true
}

// progressLine is "uploading [#####     ] 1.2 MB / 4.0 MB  30%", or
// "uploading 1.2 MB" when the total is not known.
func progressLine(sent, total int64) string {
	if total <= 0 {
		return "uploading " + humanBytes(sent)
	}
	sent = min(sent, total)
	done := int(int64(progressWidth) * sent / total)
	return fmt.Sprintf("uploading [%s%s] %s / %s  %3d%%",
		strings.Repeat("#", done), strings.Repeat(" ", progressWidth-done),
		humanBytes(sent), humanBytes(total), 100*sent/total)
}

// isTerminal reports whether w is a terminal, where a bar can redraw itself.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
