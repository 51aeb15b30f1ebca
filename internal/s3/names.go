package s3

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// MaxKeyLength is the longest object key S3 accepts, in bytes of UTF-8.
const MaxKeyLength = 1024

// Reserved beginnings and endings of general purpose bucket names, from
// AWS's "General purpose bucket naming rules": they belong to access point
// aliases, directory and table buckets and other AWS namespaces.
var (
	reservedBucketPrefixes = []string{"xn--", "sthree-", "amzn-s3-demo-"}
	reservedBucketSuffixes = []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"}
)

// CheckBucketName returns InvalidBucketName, saying why, unless name follows
// S3's general purpose bucket naming rules.
func CheckBucketName(name string) *Error {
	if reason := bucketNameProblem(name); reason != "" {
		return NewError(InvalidBucketName, "The specified bucket is not valid: "+reason+".")
	}
	return nil
}

func bucketNameProblem(name string) string {
	if len(name) < 3 || len(name) > 63 {
		return "a bucket name has 3 to 63 characters"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLowerAlnum(c) && c != '.' && c != '-' {
			return "a bucket name has only lowercase letters, digits, dots and hyphens"
		}
	}
	if !isLowerAlnum(name[0]) || !isLowerAlnum(name[len(name)-1]) {
		return "a bucket name begins and ends with a letter or digit"
	}
	if strings.Contains(name, "..") {
		return "a bucket name has no two adjacent dots"
	}
	if addr, err := netip.ParseAddr(name); err == nil && addr.Is4() {
		return "a bucket name is not an IP address"
	}
	for _, p := range reservedBucketPrefixes {
		if strings.HasPrefix(name, p) {
			return "the prefix " + p + " is reserved"
		}
	}
	for _, s := range reservedBucketSuffixes {
		if strings.HasSuffix(name, s) {
			return "the suffix " + s + " is reserved"
		}
	}
	return ""
}

func isLowerAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// CheckObjectKey returns S3's error for a key it would refuse: empty, not
// UTF-8, or longer than MaxKeyLength bytes.
func CheckObjectKey(key string) *Error {
	switch {
	case key == "":
		return NewError(InvalidArgument, "The object key is empty.")
	case len(key) > MaxKeyLength:
		return NewError(KeyTooLongError, "")
	case !utf8.ValidString(key):
		return NewError(InvalidArgument, "The object key is not valid UTF-8.")
	}
	return nil
}
