package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of a store that cannot take writes now; Writable returns one
// of them, wrapped with the reason.
var (
	// ErrFull is a data dir whose disk has less free space than the
	// store's reserve: writes wait for space, reads go on.
	ErrFull = errors.New("store: the data dir's disk is full")
	// ErrUnavailable is a state store that cannot write for another
	// reason (JetStream restarting after a failure, or not answering).
	ErrUnavailable = errors.New("store: the state store cannot write now")
)

// Health is the state store's condition.
type Health struct {
	// Writable is false while writes are refused; Reason says why.
	Writable bool   `json:"writable"`
	Reason   string `json:"reason,omitempty"`
	// FreeBytes is the free space of the data dir's disk; -1 when the
	// store is an external server.
	FreeBytes int64 `json:"free_bytes"`
	// ReserveBytes is the free space under which writes are refused.
	ReserveBytes int64 `json:"reserve_bytes,omitempty"`
	// Restarts counts JetStream restarts after failures.
	Restarts int64 `json:"jetstream_restarts"`
}

const (
	// healthSubject is where the probe writes: one message, replaced.
	healthStream  = "wisp_health"
	healthSubject = "wisp.health"
	// probeEvery spaces out the probe writes while all is well.
	probeEvery = 5 * time.Second
	// probeTimeout bounds a probe write: JetStream answers in
	// milliseconds when it is well.
	probeTimeout = 3 * time.Second
	// maxRestartWait bounds the wait between two restart attempts.
	maxRestartWait = 30 * time.Second
)

// monitor watches the state store: the disk's free space, the embedded
// server's reports of write failures, and a probe write. It restarts an
// embedded JetStream that a failure left unable to write, once the cause
// (no descriptors, no space) is gone.
type monitor struct {
	s       *Store
	dir     string // the embedded server's store dir; "" for an external server
	reserve int64
	every   time.Duration
	jsCfg   server.JetStreamConfig

	// broken is set when the server reported a failure that leaves
	// JetStream unable to write until it restarts (a filestore's
	// "critical write error" is sticky), or a probe write failed.
	broken atomic.Bool
	kick   chan struct{} // wakes the loop early

	// health is the last look's; read on hot paths (every log line), so
	// an atomic rather than a lock.
	health   atomic.Pointer[Health]
	restarts atomic.Int64
	// lastProbe is when a probe write last worked; the monitor's
	// goroutine alone uses it.
	lastProbe time.Time

	stop context.CancelFunc
	done chan struct{}
}

// serverReport is what the embedded server's log says that needs the
// monitor: write failures that stick until JetStream restarts, and
// JetStream turning itself off (out of space, permission).
func serverReport(msg string) bool {
	for _, s := range []string{"Critical write error", "critical write error", "will be DISABLED", "disabling JetStream"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (m *monitor) heard(msg string) {
	if serverReport(msg) {
		m.broken.Store(true)
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

func (m *monitor) start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.done = cancel, make(chan struct{})
	m.check(ctx)
	go m.loop(ctx)
}

func (m *monitor) close() {
	if m.stop != nil {
		m.stop()
		<-m.done
	}
}

func (m *monitor) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		m.check(ctx)
	}
}

// check takes one look and acts on it.
func (m *monitor) check(ctx context.Context) {
	h := Health{Writable: true, FreeBytes: -1, ReserveBytes: m.reserve}
	if m.dir != "" {
		free, _, err := diskSpace(m.dir)
		if err == nil {
			h.FreeBytes = free
			if free < m.reserve {
				h.Writable = false
				h.Reason = fmt.Sprintf("the data dir's disk has %s free, under the %s kept in reserve: writes are refused until space is freed",
					FormatBytes(free), FormatBytes(m.reserve))
			}
		}
	}
	if h.Writable && m.dir != "" && (m.broken.Load() || !m.s.srv.JetStreamEnabled()) {
		h.Writable = false
		h.Reason = "JetStream failed to write and is restarting"
		if err := m.restart(ctx); err != nil {
			h.Reason = "JetStream failed to write and cannot restart yet: " + err.Error()
		} else {
			h.Writable, h.Reason = true, ""
		}
	}
	if h.Writable {
		if err := m.probe(ctx); err != nil {
			h.Writable = false
			h.Reason = "the state store does not take writes: " + err.Error()
			if m.dir != "" && !errors.Is(err, context.DeadlineExceeded) {
				m.broken.Store(true) // restarted at the next look
			}
		}
	}
	h.Restarts = m.restarts.Load()
	was := m.health.Swap(&h)
	if (was == nil && !h.Writable) || (was != nil && was.Writable != h.Writable) {
		if h.Writable {
			m.s.log.Info("store: writes work again", "free", h.FreeBytes)
		} else {
			m.s.log.Error("store: writes are refused", "why", h.Reason)
		}
	}
}

// probe writes to the store, at most every probeEvery while that works:
// the only sure sign that writes work.
func (m *monitor) probe(ctx context.Context) error {
	if time.Since(m.lastProbe) < probeEvery {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := m.s.JS.Publish(ctx, healthSubject, nil)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if err = m.s.ensureHealthStream(ctx); err == nil {
			_, err = m.s.JS.Publish(ctx, healthSubject, nil)
		}
	}
	if err == nil {
		m.lastProbe = time.Now()
	}
	return err
}

// restart stops and starts the embedded JetStream, which reloads every
// stream from disk and so clears the write error a filestore keeps after
// a failure. It does nothing while the cause is still there.
func (m *monitor) restart(ctx context.Context) error {
	if err := canCreateFile(m.dir); err != nil {
		return err
	}
	srv := m.s.srv
	m.s.log.Warn("store: restarting JetStream after a write failure")
	if srv.JetStreamEnabled() {
		if err := srv.ShutdownJetStream(); err != nil {
			return fmt.Errorf("stopping JetStream: %w", err)
		}
	}
	cfg := m.jsCfg
	if err := srv.EnableJetStream(&cfg); err != nil {
		return fmt.Errorf("starting JetStream: %w", err)
	}
	m.broken.Store(false)
	m.restarts.Add(1)
	m.lastProbe = time.Time{} // probe at once
	// The clients' JetStream requests in flight were lost; theirs to retry.
	m.s.log.Info("store: JetStream restarted")
	return ctx.Err()
}

// canCreateFile checks that a file can be made in dir now: descriptors
// are to be had and the disk takes a write.
func canCreateFile(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	os.Remove(name) //nolint:errcheck // a stray probe file is harmless
	return errors.Join(werr, cerr)
}

// ensureHealthStream makes the probe's stream: one message, one subject.
func (s *Store) ensureHealthStream(ctx context.Context) error {
	_, err := s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: healthStream, Description: "wisp: the state store's probe writes",
		Subjects: []string{healthSubject}, MaxMsgs: 1, MaxBytes: 64 << 10, Discard: jetstream.DiscardOld,
		Storage: jetstream.FileStorage,
	})
	return err
}

// Health is the state store's condition as last seen (at most a second
// ago).
func (s *Store) Health() Health {
	h := *s.mon.health.Load() // set before Open returns
	h.Restarts = s.mon.restarts.Load()
	return h
}

// CanWrite says whether the store takes writes, as cheaply as a read of
// a word: for writers that drop what cannot be stored (log lines).
func (s *Store) CanWrite() bool { return s.mon.health.Load().Writable }

// Writable returns nil when the store takes writes, else an error
// wrapping ErrFull or ErrUnavailable with the reason. Callers check it
// before work that must write, so a full disk is refused at the edge
// rather than part way.
func (s *Store) Writable() error {
	h := s.Health()
	switch {
	case h.Writable:
		return nil
	case h.FreeBytes >= 0 && h.FreeBytes < h.ReserveBytes:
		return fmt.Errorf("%s: %w", h.Reason, ErrFull)
	}
	return fmt.Errorf("%s: %w", h.Reason, ErrUnavailable)
}

// FormatBytes writes n in the largest binary unit that keeps it at least 1.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// IsFull reports whether err says the store has no room: ErrFull, or
// JetStream's own refusals for want of storage.
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrFull) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrInsufficientResources || apiErr.ErrorCode == jsErrStorageResourcesExceeded) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "insufficient resources") ||
		strings.Contains(msg, "insufficient storage") || strings.Contains(msg, "maximum bytes exceeded")
}

// JetStream's error codes for want of storage.
const (
	jsErrInsufficientResources    = 10023
	jsErrStorageResourcesExceeded = 10047
)
