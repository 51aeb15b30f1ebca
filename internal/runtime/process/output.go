package process

import (
	"bytes"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/wisp-dev/wisp/internal/runtime"
)

const (
	// maxLine caps a line of output; a longer one is handed on in pieces.
	maxLine = 256 << 10
	// flushWait bounds how long an invocation waits, after its answer,
	// for output its function wrote before answering.
	flushWait = 5 * time.Millisecond
)

// stream reads one of the process's output pipes line by line and hands
// each line on, tagged with the request id of the invocation in progress.
//
// It counts bytes so an invocation can wait for its output: a function
// writes its lines before it posts its answer, so when the answer arrives
// they are either read already or still in the pipe. A flush notes the
// bytes read so far plus those the pipe holds, and waits until the reader
// has handed on that many. Reads happen under mu, so no byte is ever
// counted in neither place.
type stream struct {
	name string // "stdout" or "stderr"
	file *os.File
	rc   syscall.RawConn
	fd   int // valid while the file is open, that is until closed is set
	inst *instance
	// finished is closed when the reader has ended.
	finished chan struct{}

	mu     sync.Mutex
	read   int64  // guarded by mu: bytes read from the pipe
	done   int64  // guarded by mu: bytes read whose lines have been handed on
	want   int64  // guarded by mu: a flush waits until done reaches it; 0 if none does
	closed bool   // guarded by mu: the reader has ended or the file is closed
	last   string // guarded by mu: the last line read before the instance was ready
}

func newStream(name string, f *os.File, inst *instance) (*stream, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &stream{name: name, file: f, rc: rc, inst: inst, finished: make(chan struct{})}
	// Fd would put the file in blocking mode, out of the poller.
	if err := rc.Control(func(fd uintptr) { s.fd = int(fd) }); err != nil {
		return nil, err
	}
	return s, nil
}

// run reads until the pipe ends or the file is closed.
func (s *stream) run() {
	defer close(s.finished)
	buf := make([]byte, 0, 4<<10)
	// One closure for every read, so reading allocates nothing.
	var (
		p    []byte
		n    int
		rerr error
	)
	read := func(fd uintptr) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			return false // wait until the pipe is readable
		}
		if n > 0 {
			s.read += int64(n)
		}
		return true
	}
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxLine {
				s.emit(buf, s.inst.tag(), time.Now())
				buf = buf[:0]
			} else {
				grown := make([]byte, len(buf), min(2*cap(buf), maxLine))
				copy(grown, buf)
				buf = grown
			}
		}
		p = buf[len(buf):cap(buf)]
		if err := s.rc.Read(read); err != nil || rerr != nil || n <= 0 {
			break // closed, failed, or the end of the pipe
		}
		old := len(buf)
		buf = buf[:old+n]
		tag, now := s.inst.tag(), time.Now()
		start := 0 // of the line being cut
		for from := old; ; {
			j := bytes.IndexByte(buf[from:], '\n')
			if j < 0 {
				break
			}
			s.emit(buf[start:from+j], tag, now)
			start = from + j + 1
			from = start
		}
		switch {
		case start == len(buf) && cap(buf) > 16<<10:
			buf = make([]byte, 0, 4<<10) // a long line is over: give its room back
		case start > 0:
			buf = buf[:copy(buf, buf[start:])]
		}
		s.mu.Lock()
		s.done = s.read
		s.signalLocked()
		s.mu.Unlock()
	}
	if len(buf) > 0 {
		s.emit(buf, s.inst.tag(), time.Now())
	}
	s.mu.Lock()
	s.closed = true
	s.done = s.read
	s.signalLocked()
	s.mu.Unlock()
}

// emit hands on one line.
func (s *stream) emit(line []byte, tag string, now time.Time) {
	log := s.inst.spec.Log
	ready := s.inst.isReady.Load()
	if log == nil && (ready || s.name != "stderr") {
		return
	}
	text := string(line)
	if !ready && s.name == "stderr" {
		// Kept for the message if init fails.
		s.mu.Lock()
		s.last = text
		s.mu.Unlock()
	}
	if log != nil {
		// Log may wait for room in the node's logs, and the reader with
		// it: the pipe fills and the function's writes block, until the
		// instance stops.
		log(runtime.Line{Time: now, RequestID: tag, Stream: s.name, Text: text, Done: s.inst.stopping})
	}
}

// signalLocked tells a waiting flush that done has reached what it waits
// for.
func (s *stream) signalLocked() {
	if s.want != 0 && (s.done >= s.want || s.closed) {
		s.want = 0
		select {
		case s.inst.flushed <- struct{}{}:
		default:
		}
	}
}

// flushStart notes the output there is now, read or still in the pipe, as
// what a flush waits for, and reports whether any of it is yet to be
// handed on.
func (s *stream) flushStart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	target := s.read + int64(pipeBuffered(s.fd))
	if s.done >= target {
		return false
	}
	s.want = target
	return true
}

// flushPending reports whether the flush started by flushStart still waits.
func (s *stream) flushPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want != 0 && !s.closed && s.done < s.want
}

// flushCancel gives up waiting.
func (s *stream) flushCancel() {
	s.mu.Lock()
	s.want = 0
	s.mu.Unlock()
}

// lastLine returns the last line read before the instance was ready.
func (s *stream) lastLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// close closes the pipe, which ends the reader if the end of the pipe has
// not already.
func (s *stream) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.file.Close()
}
