package store

import (
	"context"
	"fmt"
	"log/slog"
)

// natsLogger hands the embedded server's log to the node's: its notices
// at debug level (it is chatty at start), warnings and errors as they are.
// watch, when set, sees every warning and error, so that the store can
// react to the server's own account of a failure.
type natsLogger struct {
	log   *slog.Logger
	watch func(msg string)
}

func (l natsLogger) put(level slog.Level, format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	if level >= slog.LevelWarn && l.watch != nil {
		l.watch(msg)
	}
	l.log.Log(context.Background(), level, "nats: "+msg)
}

func (l natsLogger) Noticef(format string, v ...any) { l.put(slog.LevelDebug, format, v) }
func (l natsLogger) Warnf(format string, v ...any)   { l.put(slog.LevelWarn, format, v) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.put(slog.LevelError, format, v) }
func (l natsLogger) Errorf(format string, v ...any)  { l.put(slog.LevelError, format, v) }
func (l natsLogger) Debugf(format string, v ...any)  { l.put(slog.LevelDebug-4, format, v) }
func (l natsLogger) Tracef(format string, v ...any)  { l.put(slog.LevelDebug-8, format, v) }
