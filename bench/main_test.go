package main

import (
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
