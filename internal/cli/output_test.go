package cli

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAge(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"never", time.Time{}, "-"},
		{"now", testNow, "just now"},
		{"in the future", testNow.Add(time.Minute), "just now"},
		{"seconds", testNow.Add(-42 * time.Second), "42s ago"},
		{"minutes", testNow.Add(-5*time.Minute - 59*time.Second), "5m ago"},
		{"hours", testNow.Add(-47 * time.Hour), "47h ago"},
		{"days", testNow.Add(-72 * time.Hour), "3d ago"},
		{"long ago", time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), "2024-02-29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := age(testNow, tt.t); got != tt.want {
				t.Errorf("age = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUntil(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"never", time.Time{}, "-"},
		{"now", testNow, "now"},
		{"in the past", testNow.Add(-time.Minute), "now"},
		{"seconds", testNow.Add(42 * time.Second), "in 42s"},
		{"minutes", testNow.Add(4*time.Minute + 59*time.Second), "in 4m"},
		{"hours", testNow.Add(47 * time.Hour), "in 47h"},
		{"days", testNow.Add(72 * time.Hour), "in 3d"},
		{"far off", time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), "2028-02-29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := until(testNow, tt.t); got != tt.want {
				t.Errorf("until = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSHA(t *testing.T) {
	const hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, in := range []string{hex, "sha256:" + hex} {
		if got, want := fullSHA(in), "sha256:"+hex; got != want {
			t.Errorf("fullSHA(%q) = %q, want %q", in, got, want)
		}
		if got, want := shortSHA(in), "9f86d081884c"; got != want {
			t.Errorf("shortSHA(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	now := testNow
	var out bytes.Buffer
	bar := newProgressBar(&out, 4<<20, func() time.Time { return now })

	bar.update(1<<20, 4<<20)
	if out.Len() != 0 {
		t.Fatalf("drawn before %v: %q", progressDelay, out.String())
	}
	now = now.Add(progressDelay)
	bar.update(1<<20, 4<<20)
	want := "\ruploading [#######                       ] 1.0 MB / 4.0 MB   25%"
	if out.String() != want {
		t.Fatalf("after %v: %q, want %q", progressDelay, out.String(), want)
	}
	now = now.Add(progressRedraw / 2)
	bar.update(2<<20, 4<<20)
	if out.String() != want {
		t.Fatalf("redrawn within %v: %q", progressRedraw, out.String())
	}
	now = now.Add(progressRedraw)
	bar.update(4<<20, 4<<20)
	want += "\ruploading [##############################] 4.0 MB / 4.0 MB  100%"
	if out.String() != want {
		t.Fatalf("at the end: %q, want %q", out.String(), want)
	}
	bar.finish()
	bar.finish()
	want += "\r\x1b[K"
	if out.String() != want {
		t.Fatalf("finished: %q, want %q", out.String(), want)
	}
	now = now.Add(time.Second)
	bar.update(4<<20, 4<<20)
	if out.String() != want {
		t.Errorf("drawn after finish: %q", out.String())
	}
}

func TestQuickUploadDrawsNothing(t *testing.T) {
	var out bytes.Buffer
	bar := newProgressBar(&out, 100, func() time.Time { return testNow })
	bar.update(100, 100)
	bar.finish()
	if out.Len() != 0 {
		t.Errorf("output = %q, want nothing", out.String())
	}
	var nobar *progressBar // stderr is not a terminal
	nobar.update(1, 2)
	nobar.finish()
}

func TestEscapeControls(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		keepTab bool
		want    string
	}{
		{"plain", "hello, wisp é ✓ \\n as typed", false, "hello, wisp é ✓ \\n as typed"},
		{"named escapes", "\a\b\f\n\r\t\v", false, `\a\b\f\n\r\t\v`},
		{"escape sequence", "\x1b[31mred\x1b[0m", false, `\x1b[31mred\x1b[0m`},
		{"nul and del", "a\x00b\x7f", false, `a\x00b\x7f`},
		{"c1", "\u0085\u009b\u009f\u00a0", false, "\\u0085\\u009b\\u009f\u00a0"},
		{"not utf-8", "a\xffb\xc2", false, `a\xffb\xc2`},
		{"replacement character kept", "\ufffd", false, "\ufffd"},
		{"tabs kept", "a\tb\nc", true, `a` + "\t" + `b\nc`},
		{"empty", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeControls(tt.in, tt.keepTab); got != tt.want {
				t.Errorf("escapeControls(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestJSONControls(t *testing.T) {
	in := []byte("{\"m\":\"a\u007fb\u009bc\u00a0d é\"}\n")
	want := "{\"m\":\"a\\u007fb\\u009bc\u00a0d é\"}\n"
	if got := string(jsonControls(in)); got != want {
		t.Errorf("jsonControls = %q, want %q", got, want)
	}
	if plain := []byte(`{"m":"ok"}`); &jsonControls(plain)[0] != &plain[0] {
		t.Error("jsonControls copied JSON with nothing to escape")
	}
}

func TestCellEscapes(t *testing.T) {
	if got, want := cell("a\tb\nc\rd\x1b]0;x\x07"), `a b c d\x1b]0;x\a`; got != want {
		t.Errorf("cell = %q, want %q", got, want)
	}
}

// FuzzEscapeControls checks that no control character and no byte that is
// not UTF-8 gets through, whatever a function writes.
func FuzzEscapeControls(f *testing.F) {
	f.Add("\x1b]0;title\x07", false)
	f.Add("a\tb\u009b\xff\xc2", true)
	f.Fuzz(func(t *testing.T, s string, keepTab bool) {
		got := escapeControls(s, keepTab)
		if !utf8.ValidString(got) {
			t.Fatalf("escapeControls(%q) = %q, not UTF-8", s, got)
		}
		for _, r := range got {
			if r == '\t' && keepTab {
				continue
			}
			if r < 0x20 || 0x7f <= r && r <= 0x9f {
				t.Fatalf("escapeControls(%q) = %q, with %U", s, got, r)
			}
		}
	})
}
