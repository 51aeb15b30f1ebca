package telemetry

import (
	"testing"
	"time"
)

func TestBilledMs(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{"zero still bills 1 ms", 0, 1},
		{"negative (a clock step)", -time.Millisecond, 1},
		{"0.1 ms", 100 * time.Microsecond, 1},
		{"1 ns", 1, 1},
		{"exactly 1 ms", time.Millisecond, 1},
		{"1.001 ms", 1001 * time.Microsecond, 2},
		{"1 ms and 1 ns", time.Millisecond + 1, 2},
		{"12.34 ms", 12340 * time.Microsecond, 13},
		{"exactly 13 ms", 13 * time.Millisecond, 13},
		{"3 s", 3 * time.Second, 3000},
		{"15 min", 15 * time.Minute, 900000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BilledMs(tt.d); got != tt.want {
				t.Errorf("BilledMs(%v) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

func TestPlatformLines(t *testing.T) {
	const id = "8f507cfc-1b2a-4697-b07a-ac58fc914c95"
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"start", StartLine(id, "$LATEST"), "START RequestId: " + id + " Version: $LATEST"},
		{"start of a version", StartLine(id, "3"), "START RequestId: " + id + " Version: 3"},
		{"end", EndLine(id), "END RequestId: " + id},
		{
			"warm report",
			ReportLine(id, 12340*time.Microsecond, 128, 20, 0),
			"REPORT RequestId: " + id + "\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB",
		},
		{
			"cold report",
			ReportLine(id, 12340*time.Microsecond, 128, 20, 5670*time.Microsecond),
			"REPORT RequestId: " + id + "\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 5.67 ms",
		},
		{
			"sub-millisecond report bills 1 ms",
			ReportLine(id, 100*time.Microsecond, 1024, 64, 0),
			"REPORT RequestId: " + id + "\tDuration: 0.10 ms\tBilled Duration: 1 ms\tMemory Size: 1024 MB\tMax Memory Used: 64 MB",
		},
		{
			"rounding shows two decimals",
			ReportLine(id, 2*time.Second+6*time.Microsecond, 128, 57, 155320*time.Microsecond),
			"REPORT RequestId: " + id + "\tDuration: 2000.01 ms\tBilled Duration: 2001 ms\tMemory Size: 128 MB\tMax Memory Used: 57 MB\tInit Duration: 155.32 ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", tt.got, tt.want)
			}
		})
	}
}
