package cli

import "testing"

func TestParseByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1048576", want: 1 << 20},
		{in: "64MB", want: 64e6},
		{in: "64MiB", want: 64 << 20},
		{in: "64mib", want: 64 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "2 KB", want: 2000},
		{in: "10B", want: 10},
		{in: "0", want: 0},
		{in: "", bad: true},
		{in: "MB", bad: true},
		{in: "12XB", bad: true},
		{in: "-1MB", bad: true},
		{in: "1.5B", bad: true},
		{in: "10000000TiB", bad: true},
	} {
		got, err := parseByteSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{64 << 20: "64MiB", 1536 << 10: "1536KiB", 1000: "1000", 0: "0", 3 << 40: "3TiB"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}
