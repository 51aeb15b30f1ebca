package registry

import (
	"errors"
	"strings"
	"testing"
)

// TestLogsSettings checks a function's logs settings: set, kept when not
// given, set back to the node's default with 0, and refused out of range
// with nothing changed.
func TestLogsSettings(t *testing.T) {
	rt := "nodejs"
	h := "index.handler"
	var f Function
	if err := apply(&f, Config{Name: "hello", Runtime: &rt, Handler: &h}, true); err != nil {
		t.Fatal(err)
	}
	if f.Logs != (Logs{}) {
		t.Errorf("a new function's logs = %+v, want the node's defaults (zero)", f.Logs)
	}
	mb, age := int64(64<<20), 72*3600
	if err := apply(&f, Config{Logs: &LogsPatch{MaxBytes: &mb, MaxAge: &age}}, false); err != nil {
		t.Fatal(err)
	}
	if want := (Logs{MaxBytes: 64 << 20, MaxAge: 72 * 3600}); f.Logs != want {
		t.Errorf("logs = %+v, want %+v", f.Logs, want)
	}
	desc := "other"
	if err := apply(&f, Config{Description: &desc, Logs: &LogsPatch{}}, false); err != nil {
		t.Fatal(err)
	}
	if f.Logs.MaxBytes != 64<<20 || f.Logs.MaxAge != 72*3600 {
		t.Errorf("logs not given changed: %+v", f.Logs)
	}
	zero := int64(0)
	if err := apply(&f, Config{Logs: &LogsPatch{MaxBytes: &zero}}, false); err != nil {
		t.Fatal(err)
	}
	if f.Logs.MaxBytes != 0 || f.Logs.MaxAge != 72*3600 {
		t.Errorf("max_bytes 0 gives %+v, want the default bytes and the age kept", f.Logs)
	}

	for _, tc := range []struct {
		name  string
		patch LogsPatch
		want  string
	}{
		{"bytes under 1 MiB", LogsPatch{MaxBytes: ptrTo(int64(1<<20 - 1))}, "max_bytes 1048575 is out of range"},
		{"bytes over the maximum", LogsPatch{MaxBytes: ptrTo(int64(MaxLogBytes + 1))}, "max_bytes"},
		{"negative bytes", LogsPatch{MaxBytes: ptrTo(int64(-1))}, "max_bytes -1"},
		{"age under an hour", LogsPatch{MaxAge: ptrTo(3599)}, "max_age 3599 is out of range"},
		{"age over a year", LogsPatch{MaxAge: ptrTo(MaxLogAge + 1)}, "max_age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := f
			err := apply(&g, Config{Logs: &tc.patch}, false)
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply = %v, want a validation error about %q", err, tc.want)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
