package events

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	base, most := time.Minute, 5*time.Minute
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 30 * time.Second, time.Minute},
		{2, time.Minute, 2 * time.Minute},
		{3, 2 * time.Minute, 4 * time.Minute},
		{4, 150 * time.Second, 5 * time.Minute}, // capped
		{10, 150 * time.Second, 5 * time.Minute},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(base, most, tc.n)
			if d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %s, want %s to %s", tc.n, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Errorf("backoff(%d) took only %d values in 200 draws: no jitter", tc.n, len(seen))
		}
	}
}
