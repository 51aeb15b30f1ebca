package cli

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag of bytes: a number with an optional unit, KB, MB, GB
// and TB for powers of 1000, KiB, MiB, GiB and TiB for powers of 1024, B
// or none for bytes; 64MB, 1.5GiB, 1048576.
type byteSize int64

var byteUnits = []struct {
	name string
	size float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

func parseByteSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	unit := 1.0
	lower := strings.ToLower(num)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(lower, u.name); ok {
			num, unit = strings.TrimSpace(n), u.size
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*unit >= math.MaxInt64 {
		return 0, errors.New("must be a number of bytes with an optional unit, such as 64MB, 1GiB or 1048576")
	}
	b := v * unit
	if b != math.Trunc(b) {
		return 0, errors.New("must be a whole number of bytes")
	}
	return int64(b), nil
}

func (b *byteSize) String() string { return sizeText(int64(*b)) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// sizeText writes n bytes in the largest binary unit that holds it
// exactly: 64MiB, 1536KiB, 1000.
func sizeText(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
