package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Read calls fn for the function's records from since on (the zero time:
// all that are kept), oldest first, only those of requestID unless it is
// empty. Without follow it returns once it has caught up with what the
// stream held when it started; with follow it waits for new records until
// ctx ends (returning ctx's error) or StopFollowing is called (returning
// nil). An error from fn ends Read with that error.
//
// A function's records go with it: a function that does not exist has
// none, and following it ends at once.
func (l *Logs) Read(ctx context.Context, function string, since time.Time, requestID string, follow bool, fn func(Record) error) error {
	if !validToken(function) {
		return fmt.Errorf("telemetry: %q is not a function name", function)
	}
	stream, err := l.streams.open(ctx, function, follow)
	if err != nil || stream == nil {
		return err
	}
	subject := logSubjectPrefix + function
	var last uint64 // without follow: the last record's sequence when Read started
	if !follow {
		seq, err := lastSeq(ctx, stream, subject, since)
		if err != nil || seq == 0 {
			return err
		}
		last = seq
	}

	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
	}
	defer l.deleteConsumer(ctx, function, cons)
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
	}
	defer msgs.Stop()

	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := false
	if follow {
		stopped = func() bool {
			select {
			case <-l.stopFollow:
				return true
			default:
				return false
			}
		}()
		go func() {
			select {
			case <-l.stopFollow:
				cancel()
			case <-readCtx.Done():
			}
		}()
	}

	var delivered uint64 // the sequence of the last record delivered
	for !stopped {
		nextCtx, cancelNext := readCtx, context.CancelFunc(func() {})
		if !follow {
			nextCtx, cancelNext = context.WithTimeout(readCtx, idleRecheck)
		}
		msg, err := msgs.Next(jetstream.NextContext(nextCtx))
		cancelNext()
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && follow && readCtx.Err() != nil:
			return nil // StopFollowing
		case err != nil && !follow && errors.Is(err, context.DeadlineExceeded):
			// The record awaited may have aged out while Read waited.
			seq, err := lastSeq(ctx, stream, subject, since)
			if err != nil {
				return err
			}
			if seq <= delivered {
				return nil
			}
			continue
		case err != nil:
			return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("telemetry: reading the logs of %s: %w", function, err)
		}
		delivered = meta.Sequence.Stream
		for line := range bytes.SplitSeq(bytes.TrimRight(msg.Data(), "\n"), []byte("\n")) {
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				l.log.Warn("telemetry: skipping a log record that is not JSON", "function", function, "seq", delivered, "err", err)
				continue
			}
			if requestID != "" && rec.RequestID != requestID {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if !follow && (delivered >= last || meta.NumPending == 0) {
			return nil
		}
	}
	return nil
}

// lastSeq is the sequence of the subject's last record, or 0 when there is
// none or it is older than since.
func lastSeq(ctx context.Context, stream jetstream.Stream, subject string, since time.Time) (uint64, error) {
	m, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("telemetry: reading the logs of %s: %w", strings.TrimPrefix(subject, logSubjectPrefix), err)
	}
	if !since.IsZero() && m.Time.Before(since) {
		return 0, nil
	}
	return m.Sequence, nil
}

// deleteConsumer removes a Read's consumer from the server at once rather
// than leave it to expire.
func (l *Logs) deleteConsumer(ctx context.Context, function string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.js.DeleteConsumer(ctx, LogStreamName(function), info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("telemetry: deleting a log reader's consumer", "consumer", info.Name, "err", err)
	}
}
