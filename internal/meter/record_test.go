package meter

import (
	"math"
	"testing"
	"time"
)

func TestCost(t *testing.T) {
	var u Usage
	// 1000 calls of 128 MB billed 100 ms: 12.5 GB-s; 10 of 10240 MB
	// billed 900 s: 90000 GB-s; one of 128 MB that ran 0.2 ms, billed 1 ms.
	for range 1000 {
		u.Add(Record{MemoryMB: 128, BilledMs: 100, Outcome: "success"})
	}
	for range 10 {
		u.Add(Record{MemoryMB: 10240, BilledMs: 900_000, Outcome: "timeout", Cold: true})
	}
	u.Add(Record{MemoryMB: 128, BilledMs: 1, Outcome: "error"})
	if u.Invocations != 1011 || u.Errors != 11 || u.ColdStarts != 10 {
		t.Fatalf("usage %+v", u)
	}
	wantGBs := 12.5 + 90000 + 0.125/1000
	if math.Abs(u.GBSeconds()-wantGBs) > 1e-9 {
		t.Errorf("%v GB-s, want %v", u.GBSeconds(), wantGBs)
	}
	for _, tc := range []struct {
		p    Prices
		want float64
	}{
		{Prices{PerRequest: 0.000001, PerGBSecond: 0.00002}, 1011*0.000001 + wantGBs*0.00002},
		{LambdaX86, 1011*0.0000002 + wantGBs*0.0000166667},
		{Prices{}, 0},
		{Prices{PerRequest: 1}, 1011},
	} {
		if got := tc.p.Cost(u); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("cost at %+v: %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestPeriod(t *testing.T) {
	at := time.Date(2026, 2, 28, 23, 30, 0, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		p           string
		start, next string
	}{
		{"hour", "2026-02-28T22:00:00Z", "2026-02-28T23:00:00Z"},
		{"day", "2026-02-28T00:00:00Z", "2026-03-01T00:00:00Z"},
		{"month", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
	} {
		s, n := period(tc.p, at)
		if s.Format(time.RFC3339) != tc.start || n.Format(time.RFC3339) != tc.next {
			t.Errorf("%s: %s to %s, want %s to %s", tc.p, s, n, tc.start, tc.next)
		}
	}
}
