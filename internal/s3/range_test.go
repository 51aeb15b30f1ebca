package s3

import "testing"

func TestParseRange(t *testing.T) {
	tests := []struct {
		name   string
		header string
		size   int64
		want   Range
		ok     bool
		err    bool
	}{
		{"absent", "", 10, Range{}, false, false},
		{"closed", "bytes=0-4", 10, Range{0, 5}, true, false},
		{"middle", "bytes=3-3", 10, Range{3, 1}, true, false},
		{"open", "bytes=4-", 10, Range{4, 6}, true, false},
		{"suffix", "bytes=-3", 10, Range{7, 3}, true, false},
		{"suffix longer than object", "bytes=-30", 10, Range{0, 10}, true, false},
		{"end past object is cut", "bytes=5-100", 10, Range{5, 5}, true, false},
		{"huge end is cut", "bytes=5-99999999999999999999", 10, Range{5, 5}, true, false},
		{"start at end", "bytes=10-", 10, Range{}, false, true},
		{"start past end", "bytes=20-30", 10, Range{}, false, true},
		{"huge start", "bytes=99999999999999999999-", 10, Range{}, false, true},
		{"zero suffix", "bytes=-0", 10, Range{}, false, true},
		{"empty object", "bytes=0-", 0, Range{}, false, true},
		{"suffix of empty object", "bytes=-5", 0, Range{}, false, false},
		{"multiple ranges serve everything", "bytes=0-1,3-4", 10, Range{}, false, false},
		{"end before start is ignored", "bytes=5-2", 10, Range{}, false, false},
		{"other unit", "items=0-1", 10, Range{}, false, false},
		{"not numbers", "bytes=a-b", 10, Range{}, false, false},
		{"signed number", "bytes=+1-2", 10, Range{}, false, false},
		{"no dash", "bytes=5", 10, Range{}, false, false},
		{"only a dash", "bytes=-", 10, Range{}, false, false},
		{"spaces", " bytes= 1 - 2 ", 10, Range{1, 2}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, e := ParseRange(tt.header, tt.size)
			if (e != nil) != tt.err {
				t.Fatalf("error %v, want error %v", e, tt.err)
			}
			if e != nil && (e.Code != InvalidRange || e.HTTPStatus() != 416) {
				t.Errorf("error %s %d", e.Code, e.HTTPStatus())
			}
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := (Range{Start: 7, Length: 3}).ContentRange(10); got != "bytes 7-9/10" {
		t.Errorf("Content-Range %q", got)
	}
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-4", int64(10))
	f.Add("bytes=-3", int64(10))
	f.Add("bytes=4-", int64(0))
	f.Add("bytes=1-2,3-4", int64(100))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			return
		}
		r, ok, e := ParseRange(header, size)
		if ok && e != nil {
			t.Fatal("a range and an error")
		}
		if !ok {
			return
		}
		if r.Start < 0 || r.Length < 1 || r.Start+r.Length > size {
			t.Fatalf("range %+v outside object of %d", r, size)
		}
	})
}
