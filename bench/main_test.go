package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSandboxCost(t *testing.T) {
	ms := func(xs ...float64) *coldRow {
		r := &coldRow{}
		for _, x := range xs {
			r.trials = append(r.trials, time.Duration(x*float64(time.Millisecond)))
		}
		r.took = slices.Sorted(slices.Values(r.trials))
		return r
	}
	// p50 (nearest rank, lower middle of 4): 5 − 4 = 1 ms; paired
	// differences 1, 2, 3, −1: median 1.5 ms.
	s := ms(5, 6, 9, 4)
	u := ms(4, 4, 6, 5)
	p50, paired := sandboxCost(s, u)
	if p50 != 1*time.Millisecond {
		t.Errorf("p50 cost = %v, want 1ms", p50)
	}
	if paired != 1500*time.Microsecond {
		t.Errorf("paired cost = %v, want 1.5ms", paired)
	}
	if p50, _ := sandboxCost(u, s); p50 != -1*time.Millisecond {
		t.Errorf("reversed p50 cost = %v, want -1ms", p50)
	}
}

func TestFmtDelta(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1680 * time.Microsecond: "+1.68 ms",
		-250 * time.Microsecond: "−250 µs",
		0:                       "+0 µs",
	} {
		if got := fmtDelta(d); got != want {
			t.Errorf("fmtDelta(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		line string
		want report
		ok   bool
	}{
		{"REPORT RequestId: abc\tDuration: 0.05 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 2 MB",
			report{requestID: "abc", duration: 50 * time.Microsecond}, true},
		{"REPORT RequestId: d\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 5.67 ms",
			report{requestID: "d", duration: 12340 * time.Microsecond, init: 5670 * time.Microsecond}, true},
		{"START RequestId: abc Version: $LATEST", report{}, false},
		{"REPORT RequestId: abc\tBilled Duration: 1 ms", report{}, false},
		{"REPORT RequestId: abc\tDuration: fast", report{}, false},
	} {
		got, ok := parseReport(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseReport(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCountFiles(t *testing.T) {
	dir := t.TempDir()
	if n := countFiles(filepath.Join(dir, "missing")); n != 0 {
		t.Errorf("missing dir: %d files", n)
	}
	for _, f := range []string{"a", "sub/b", "sub/deeper/c"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := countFiles(dir); n != 3 {
		t.Errorf("countFiles = %d, want 3", n)
	}
}
