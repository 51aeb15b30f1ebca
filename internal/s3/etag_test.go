package s3

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"testing"
	"time"
)

func TestETag(t *testing.T) {
	sum := md5.Sum([]byte("hello"))
	if got := ETag(sum[:]); got != `"5d41402abc4b2a76b9719d911017c592"` {
		t.Errorf("single PUT: %s", got)
	}
}

func TestMultipartETag(t *testing.T) {
	// Two parts of known MD5s; the ETag is MD5 of their 32 binary bytes.
	p1, _ := hex.DecodeString("5d41402abc4b2a76b9719d911017c592") // "hello"
	p2, _ := hex.DecodeString("7d793037a0760186574b0282f2f435e7") // "world"
	got := MultipartETag([][]byte{p1, p2})
	want := `"` + md5Hex(append(append([]byte{}, p1...), p2...)) + `-2"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// One 5 MiB part of zeros, as aws s3 cp computes it.
	zero := md5.Sum(make([]byte, 5<<20))
	if got := MultipartETag([][]byte{zero[:]}); got != `"`+md5Hex(zero[:])+`-1"` {
		t.Errorf("one part: %s", got)
	}
	if got := MultipartETag([][]byte{p1, p2}); got != `"065947336a2f2a95ba8899f3675c3be6-2"` {
		t.Errorf("fixed vector (python hashlib): %s", got)
	}
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestParsePartETag(t *testing.T) {
	for in, ok := range map[string]bool{
		`"5d41402abc4b2a76b9719d911017c592"`:   true,
		`5d41402abc4b2a76b9719d911017c592`:     true,
		`"5d41402abc4b2a76"`:                   false,
		`"zz41402abc4b2a76b9719d911017c592"`:   false,
		`"065947336a2f2a95ba8899f3675c3be6-2"`: false,
	} {
		if _, got := ParsePartETag(in); got != ok {
			t.Errorf("%s: %v, want %v", in, got, ok)
		}
	}
}

func TestConditions(t *testing.T) {
	etag := `"abc"`
	modified := time.Date(2024, 5, 1, 12, 0, 0, 500_000_000, time.UTC)
	before := modified.Add(-time.Hour).Format(http.TimeFormat)
	same := modified.Format(http.TimeFormat) // second resolution
	after := modified.Add(time.Hour).Format(http.TimeFormat)
	tests := []struct {
		name   string
		header map[string]string
		copy   bool
		want   ErrorCode
	}{
		{"none", nil, false, ""},
		{"If-Match hit", map[string]string{"If-Match": `"abc"`}, false, ""},
		{"If-Match unquoted", map[string]string{"If-Match": `abc`}, false, ""},
		{"If-Match list", map[string]string{"If-Match": `"x", "abc"`}, false, ""},
		{"If-Match star", map[string]string{"If-Match": `*`}, false, ""},
		{"If-Match miss", map[string]string{"If-Match": `"x"`}, false, PreconditionFailed},
		{"If-None-Match hit", map[string]string{"If-None-Match": `"abc"`}, false, NotModified},
		{"If-None-Match miss", map[string]string{"If-None-Match": `"x"`}, false, ""},
		{"If-Modified-Since before", map[string]string{"If-Modified-Since": before}, false, ""},
		{"If-Modified-Since same second", map[string]string{"If-Modified-Since": same}, false, NotModified},
		{"If-Modified-Since after", map[string]string{"If-Modified-Since": after}, false, NotModified},
		{"If-Modified-Since unreadable", map[string]string{"If-Modified-Since": "yesterday"}, false, ""},
		{"If-Unmodified-Since after", map[string]string{"If-Unmodified-Since": after}, false, ""},
		{"If-Unmodified-Since same second", map[string]string{"If-Unmodified-Since": same}, false, ""},
		{"If-Unmodified-Since before", map[string]string{"If-Unmodified-Since": before}, false, PreconditionFailed},
		{"If-Match true overrides If-Unmodified-Since", map[string]string{"If-Match": etag, "If-Unmodified-Since": before}, false, ""},
		{"If-None-Match miss overrides If-Modified-Since", map[string]string{"If-None-Match": `"x"`, "If-Modified-Since": after}, false, ""},
		{"If-Match true, If-Modified-Since false", map[string]string{"If-Match": etag, "If-Modified-Since": after}, false, NotModified},
		{"If-None-Match hit and If-Unmodified-Since false", map[string]string{"If-None-Match": etag, "If-Unmodified-Since": before}, false, PreconditionFailed},
		{"copy If-None-Match hit", map[string]string{"X-Amz-Copy-Source-If-None-Match": etag}, true, PreconditionFailed},
		{"copy If-Modified-Since false", map[string]string{"X-Amz-Copy-Source-If-Modified-Since": after}, true, PreconditionFailed},
		{"copy If-Match miss", map[string]string{"X-Amz-Copy-Source-If-Match": `"x"`}, true, PreconditionFailed},
		{"copy ignores plain headers", map[string]string{"If-Match": `"x"`}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			c := ParseConditions(h)
			if tt.copy {
				c = ParseCopySourceConditions(h)
			}
			var got ErrorCode
			if e := c.Check(etag, modified); e != nil {
				got = e.Code
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
