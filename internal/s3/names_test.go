package s3

import (
	"strings"
	"testing"
)

func TestCheckBucketName(t *testing.T) {
	valid := []string{
		"abc", "my-bucket", "my.bucket.name", "0bucket9", "a1-b2.c3",
		strings.Repeat("a", 63), "192.168.5", "1.2.3.4.5", "xn-a", "sthree", "my-s3alias-x", "amzn-s3-demo",
	}
	for _, name := range valid {
		if e := CheckBucketName(name); e != nil {
			t.Errorf("%q: %v, want valid", name, e)
		}
	}
	invalid := map[string]string{
		"too short":           "ab",
		"too long":            strings.Repeat("a", 64),
		"upper case":          "MyBucket",
		"underscore":          "my_bucket",
		"space":               "my bucket",
		"begins with hyphen":  "-bucket",
		"ends with hyphen":    "bucket-",
		"begins with dot":     ".bucket",
		"ends with dot":       "bucket.",
		"adjacent dots":       "my..bucket",
		"IP address":          "192.168.5.4",
		"prefix xn--":         "xn--bucket",
		"prefix sthree-":      "sthree-bucket",
		"prefix amzn-s3-demo": "amzn-s3-demo-bucket",
		"suffix -s3alias":     "bucket-s3alias",
		"suffix --ol-s3":      "bucket--ol-s3",
		"suffix .mrap":        "bucket.mrap",
		"suffix --x-s3":       "bucket--x-s3",
		"suffix --table-s3":   "bucket--table-s3",
		"empty":               "",
		"non-ASCII":           "bücket",
	}
	for why, name := range invalid {
		e := CheckBucketName(name)
		if e == nil {
			t.Errorf("%s: %q accepted", why, name)
			continue
		}
		if e.Code != InvalidBucketName || e.HTTPStatus() != 400 {
			t.Errorf("%s: %q gave %s %d", why, name, e.Code, e.HTTPStatus())
		}
	}
}

func TestCheckObjectKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want ErrorCode
	}{
		{"plain", "photos/2006/january/sample.jpg", ""},
		{"unicode", "文件/ąćę.txt", ""},
		{"1024 bytes", strings.Repeat("k", 1024), ""},
		{"1024 bytes of multibyte runes", strings.Repeat("é", 512), ""},
		{"1025 bytes", strings.Repeat("k", 1025), KeyTooLongError},
		{"empty", "", InvalidArgument},
		{"not UTF-8", "a\xffb", InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := CheckObjectKey(tt.key)
			var got ErrorCode
			if e != nil {
				got = e.Code
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
