package s3

import (
	"strconv"
	"strings"
)

// Range is a byte range of an object: Length bytes from Start.
type Range struct {
	Start  int64
	Length int64
}

// ContentRange is the Content-Range header of r within an object of size.
func (r Range) ContentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.Start, 10) + "-" + strconv.FormatInt(r.Start+r.Length-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// ParseRange reads a GetObject Range header against an object of size bytes,
// as S3 does. ok is true for one satisfiable range (bytes=a-b, a-, -n; an end
// past the object is cut to it). A header S3 ignores, and serves the whole
// object for, gives ok false and no error: absent, another unit, not
// numbers, an end before the start, several ranges (S3 serves no
// multipart/byteranges), or a suffix of an empty object. A start at or past
// the end, or a suffix of zero bytes, is InvalidRange.
func ParseRange(header string, size int64) (r Range, ok bool, e *Error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(header), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return Range{}, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return Range{}, false, nil
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		n, valid := parseDigits(last)
		switch {
		case !valid:
			return Range{}, false, nil
		case n == 0:
			return Range{}, false, NewError(InvalidRange, "")
		case size == 0:
			return Range{}, false, nil
		}
		n = min(n, size)
		return Range{Start: size - n, Length: n}, true, nil
	}
	start, valid := parseDigits(first)
	if !valid {
		return Range{}, false, nil
	}
	end := int64(-1)
	if last != "" {
		if end, valid = parseDigits(last); !valid || end < start {
			return Range{}, false, nil
		}
	}
	if start >= size {
		return Range{}, false, NewError(InvalidRange, "")
	}
	if end < 0 || end >= size {
		end = size - 1
	}
	return Range{Start: start, Length: end - start + 1}, true, nil
}

// parseDigits reads a decimal number of digits only; one too large for
// int64 saturates, as it lies past any object.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 1<<63 - 1, true
	}
	return n, true
}
