package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/registry"
)

// Each function's log is a stream of its own, wisp_logs_<function>, on
// the subject wisp.logs.<function>: JetStream bounds a stream's bytes and
// age but not a subject's, and one function's flood must not age out
// another's records. Function names are valid stream names.
const (
	LogStreamPrefix  = "wisp_logs_"
	logSubjectPrefix = "wisp.logs."
	// sharedLogStream is the stream every function's logs shared before.
	sharedLogStream = "wisp_logs"
)

// LogStreamName is the name of a function's log stream.
func LogStreamName(function string) string { return LogStreamPrefix + function }

// Registry says what each function keeps of its log, and when functions
// change.
type Registry interface {
	Functions() []registry.Function
	Resolve(name, qualifier string, pick func() float64) (registry.Target, error)
	Watch(ctx context.Context) (<-chan registry.Change, error)
}

// errNoFunction is a record of a function that is not in the registry.
var errNoFunction = errors.New("telemetry: no such function")

// retention is what a stream keeps.
type retention struct {
	maxBytes int64
	maxAge   time.Duration
}

// logStreams makes, changes and deletes the functions' log streams.
type logStreams struct {
	js       jetstream.JetStream
	reg      Registry // nil: every function, the defaults
	defaults retention
	log      *slog.Logger

	// mu is held across the calls to the server, so that a function's
	// stream is made, changed and deleted in the order asked.
	mu   sync.Mutex
	made map[string]retention // guarded by mu: the streams that exist, with their limits
}

func newLogStreams(js jetstream.JetStream, cfg LogsConfig) *logStreams {
	return &logStreams{js: js, reg: cfg.Registry, log: cfg.Logger, made: map[string]retention{},
		defaults: retention{maxBytes: cfg.DefaultMaxBytes, maxAge: cfg.DefaultMaxAge}}
}

// retentionOf is what function's stream keeps, and false when there is no
// such function.
func (s *logStreams) retentionOf(function string) (retention, bool) {
	if s.reg == nil {
		return s.defaults, true
	}
	t, err := s.reg.Resolve(function, registry.Latest, nil)
	if err != nil {
		return retention{}, false
	}
	r := s.defaults
	if b := t.Function.Logs.MaxBytes; b > 0 {
		r.maxBytes = b
	}
	if a := t.Function.Logs.MaxAge; a > 0 {
		r.maxAge = time.Duration(a) * time.Second
	}
	return r, true
}

func streamConfig(function string, r retention) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        LogStreamName(function),
		Description: "wisp logs of function " + function,
		Subjects:    []string{logSubjectPrefix + function},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      r.maxAge,
		MaxBytes:    r.maxBytes,
		Storage:     jetstream.FileStorage,
	}
}

// ensure makes sure function's stream exists and returns its limits; it
// fails with errNoFunction when there is no such function.
func (s *logStreams) ensure(ctx context.Context, function string) (retention, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.made[function]; ok {
		return r, nil
	}
	r, ok := s.retentionOf(function)
	if !ok {
		return retention{}, errNoFunction
	}
	return r, s.putLocked(ctx, function, r)
}

func (s *logStreams) putLocked(ctx context.Context, function string, r retention) error {
	if _, err := s.js.CreateOrUpdateStream(ctx, streamConfig(function, r)); err != nil {
		return fmt.Errorf("telemetry: the log stream of %s: %w", function, err)
	}
	s.made[function] = r
	return nil
}

// missing forgets that function's stream exists: it was deleted under us.
func (s *logStreams) missing(function string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.made, function)
}

// sync brings function's stream in line with the registry: made, or its
// limits changed; deleted with its records when the function is gone, or
// was deleted (a function made again under the name starts afresh). It
// reports whether the function's logs were deleted.
func (s *logStreams) sync(ctx context.Context, function string, deleted bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, exists := s.retentionOf(function)
	if deleted || !exists {
		delete(s.made, function)
		if err := s.js.DeleteStream(ctx, LogStreamName(function)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			s.log.Warn("telemetry: deleting a deleted function's logs", "function", function, "err", err)
		}
	}
	if exists {
		if old, ok := s.made[function]; !ok || old != r {
			if err := s.putLocked(ctx, function, r); err != nil {
				s.log.Warn("telemetry: setting a function's log limits", "function", function, "err", err)
			}
		}
	}
	return deleted || !exists
}

// follow keeps the streams in line with the registry until ctx ends:
// first every function's (deleting the streams of functions deleted while
// no node watched), then each function that changes. forget is told of
// each function whose logs were deleted.
func (s *logStreams) follow(ctx context.Context, changes <-chan registry.Change, forget func(string)) {
	var (
		mu      sync.Mutex
		pending = map[string]bool{} // guarded by mu: functions changed, and whether one was deleted
		kick    = make(chan struct{}, 1)
		worked  = make(chan struct{})
	)
	// The registry waits for its watchers, so changes are read here at
	// once and the calls to the server made by a worker of their own.
	go func() {
		defer close(worked)
		s.syncAll(ctx, forget)
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			}
			mu.Lock()
			todo := pending
			pending = map[string]bool{}
			mu.Unlock()
			for fn, deleted := range todo {
				if s.sync(ctx, fn, deleted) {
					forget(fn)
				}
			}
		}
	}()
	for c := range changes {
		if c.Kind != registry.KindFunction {
			continue
		}
		mu.Lock()
		pending[c.Function] = pending[c.Function] || c.Deleted
		mu.Unlock()
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	<-worked
}

// syncAll deletes the streams of functions that are gone and makes or
// updates every function's.
func (s *logStreams) syncAll(ctx context.Context, forget func(string)) {
	names := s.js.StreamNames(ctx, jetstream.WithStreamListSubject(logSubjectPrefix+">"))
	var gone []string
	for name := range names.Name() {
		if fn, ok := strings.CutPrefix(name, LogStreamPrefix); ok {
			if _, exists := s.retentionOf(fn); !exists {
				gone = append(gone, fn)
			}
		}
	}
	if err := names.Err(); err != nil && ctx.Err() == nil {
		s.log.Warn("telemetry: listing the log streams", "err", err)
	}
	for _, fn := range gone {
		s.sync(ctx, fn, true)
		forget(fn)
	}
	for _, f := range s.reg.Functions() {
		if ctx.Err() != nil {
			return
		}
		s.sync(ctx, f.Name, false)
	}
}

// dropShared deletes the stream all functions' logs shared before each
// had its own: its subjects are theirs now.
func (s *logStreams) dropShared(ctx context.Context) error {
	err := s.js.DeleteStream(ctx, sharedLogStream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("telemetry: deleting the old shared logs stream %s: %w", sharedLogStream, err)
	}
	s.log.Warn("telemetry: deleted the logs stream all functions shared, with its records: "+
		"each function's logs now have a stream of their own", "stream", sharedLogStream)
	return nil
}

// open returns function's stream, or nil when it has none. With create,
// it makes the stream of a function that has none yet.
func (s *logStreams) open(ctx context.Context, function string, create bool) (jetstream.Stream, error) {
	st, err := s.js.Stream(ctx, LogStreamName(function))
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
	}
	if !create {
		return nil, nil
	}
	s.missing(function)
	if _, err := s.ensure(ctx, function); errors.Is(err, errNoFunction) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	st, err = s.js.Stream(ctx, LogStreamName(function))
	if err != nil {
		return nil, fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
	}
	return st, nil
}
