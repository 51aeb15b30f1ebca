package s3

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"iter"
	"net/url"
	"strconv"
	"strings"
)

// MaxListKeys is the most keys, uploads or parts one list page holds, and
// the default page size.
const MaxListKeys = 1000

// ListObjectsParams are the query parameters of ListObjects and
// ListObjectsV2, checked as S3 checks them.
type ListObjectsParams struct {
	V2        bool
	Prefix    string
	Delimiter string
	// MaxKeys is 0 to MaxListKeys; larger requests are cut to MaxListKeys.
	MaxKeys int
	// EncodingType is "" or "url".
	EncodingType string
	// Marker is version 1's marker; StartAfter and ContinuationToken are
	// version 2's, the token as the client sent it.
	Marker            string
	StartAfter        string
	ContinuationToken string
	FetchOwner        bool
	// After is where the page begins: only keys and common prefixes
	// greater than After are listed.
	After string
}

// ParseListObjectsParams reads the list parameters of q for version 1 or 2
// of ListObjects. A bad max-keys, encoding-type or continuation token is
// InvalidArgument.
func ParseListObjectsParams(q url.Values, v2 bool) (ListObjectsParams, *Error) {
	p := ListObjectsParams{
		V2:        v2,
		Prefix:    q.Get("prefix"),
		Delimiter: q.Get("delimiter"),
	}
	var e *Error
	if p.MaxKeys, e = parseMax(q, "max-keys", MaxListKeys); e != nil {
		return p, e
	}
	if p.EncodingType, e = parseEncodingType(q); e != nil {
		return p, e
	}
	if !v2 {
		p.Marker = q.Get("marker")
		p.After = p.Marker
		return p, nil
	}
	p.StartAfter = q.Get("start-after")
	p.FetchOwner = q.Get("fetch-owner") == "true"
	p.After = p.StartAfter
	if q.Has("continuation-token") {
		p.ContinuationToken = q.Get("continuation-token")
		after, ok := DecodeContinuationToken(p.ContinuationToken)
		if !ok {
			return p, NewError(InvalidArgument, "The continuation token provided is incorrect")
		}
		// A token is always past start-after: it came from a page that began there.
		p.After = after
	}
	return p, nil
}

// ListUploadsParams are ListMultipartUploads' query parameters.
type ListUploadsParams struct {
	Prefix         string
	Delimiter      string
	MaxUploads     int
	EncodingType   string
	KeyMarker      string
	UploadIDMarker string
}

// ParseListUploadsParams reads ListMultipartUploads' parameters from q.
func ParseListUploadsParams(q url.Values) (ListUploadsParams, *Error) {
	p := ListUploadsParams{
		Prefix:         q.Get("prefix"),
		Delimiter:      q.Get("delimiter"),
		KeyMarker:      q.Get("key-marker"),
		UploadIDMarker: q.Get("upload-id-marker"),
	}
	var e *Error
	if p.MaxUploads, e = parseMax(q, "max-uploads", MaxListKeys); e != nil {
		return p, e
	}
	p.EncodingType, e = parseEncodingType(q)
	return p, e
}

// ListPartsParams are ListParts' query parameters.
type ListPartsParams struct {
	MaxParts         int
	PartNumberMarker int
}

// ParseListPartsParams reads ListParts' parameters from q.
func ParseListPartsParams(q url.Values) (ListPartsParams, *Error) {
	var p ListPartsParams
	var e *Error
	if p.MaxParts, e = parseMax(q, "max-parts", MaxListKeys); e != nil {
		return p, e
	}
	if v := q.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, NewError(InvalidArgument, "Provided part-number-marker not an integer or within integer range")
		}
		p.PartNumberMarker = n
	}
	return p, nil
}

// MaxPartNumber is the highest part number of a multipart upload.
const MaxPartNumber = 10000

// ParsePartNumber reads UploadPart's partNumber, 1 to MaxPartNumber.
func ParsePartNumber(s string) (int, *Error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPartNumber {
		return 0, NewError(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")
	}
	return n, nil
}

func parseMax(q url.Values, name string, limit int) (int, *Error) {
	v := q.Get(name)
	if v == "" {
		return limit, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, NewError(InvalidArgument, "Provided "+name+" not an integer or within integer range")
	}
	return min(int(n), limit), nil
}

func parseEncodingType(q url.Values) (string, *Error) {
	switch v := q.Get("encoding-type"); v {
	case "", "url":
		return v, nil
	}
	return "", NewError(InvalidArgument, "Invalid Encoding Method specified in Request")
}

// EncodeKey writes a key, prefix, delimiter or marker for a listing that
// asked for encoding-type (only "url" changes anything), so keys with
// characters XML cannot carry still arrive.
func EncodeKey(encodingType, s string) string {
	if encodingType != "url" {
		return s
	}
	return url.QueryEscape(s)
}

// A continuation token is base64url of the key it resumes after and the
// CRC-32 of that key: opaque to clients, and a mangled token is refused
// rather than read as a different key.
const tokenCheckLen = 4

// EncodeContinuationToken returns the token of a page that resumes after key.
func EncodeContinuationToken(after string) string {
	b := make([]byte, 0, len(after)+tokenCheckLen)
	b = append(b, after...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE([]byte(after)))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeContinuationToken returns the key a token resumes after; ok is false
// for a token EncodeContinuationToken did not make.
func DecodeContinuationToken(token string) (after string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < tokenCheckLen {
		return "", false
	}
	key, check := b[:len(b)-tokenCheckLen], b[len(b)-tokenCheckLen:]
	if binary.BigEndian.Uint32(check) != crc32.ChecksumIEEE(key) {
		return "", false
	}
	return string(key), true
}

// Page is one page of a listing, as S3 groups it.
type Page[T any] struct {
	Contents       []T
	CommonPrefixes []string
	IsTruncated    bool
	// Next is the last key or common prefix of a truncated page: the next
	// page begins after it (NextMarker, or the continuation token's key).
	Next string
}

// KeyCount is S3's KeyCount: keys and common prefixes on the page.
func (p Page[T]) KeyCount() int {
	return len(p.Contents) + len(p.CommonPrefixes)
}

// PageQuery is what one page of a listing asks for.
type PageQuery struct {
	Prefix    string
	Delimiter string
	// After excludes every key and common prefix up to and including it.
	After   string
	MaxKeys int
}

// ListPage groups the keys list yields into one page as S3 does: keys with
// Prefix only; a key whose rest after Prefix holds Delimiter rolls up into
// the common prefix ending at its first Delimiter, which counts once toward
// MaxKeys; the page is truncated when more would follow.
//
// list(from) yields entries in byte order of their keys, starting at the
// first key >= from; ListPage stops ranging when it has enough, and after a
// common prefix it asks again from past that prefix instead of reading the
// keys rolled up in it. key tells an entry's key.
func ListPage[T any](list func(from string) iter.Seq2[T, error], key func(T) string, q PageQuery) (Page[T], error) {
	var page Page[T]
	from := q.Prefix
	if q.After >= from {
		// The smallest string greater than After.
		from = q.After + "\x00"
	}
	for {
		restart, done := false, false
		for entry, err := range list(from) {
			if err != nil {
				return Page[T]{}, err
			}
			k := key(entry)
			if !strings.HasPrefix(k, q.Prefix) {
				if k < q.Prefix {
					continue
				}
				done = true
				break
			}
			var cp string
			if q.Delimiter != "" {
				if i := strings.Index(k[len(q.Prefix):], q.Delimiter); i >= 0 {
					cp = k[:len(q.Prefix)+i+len(q.Delimiter)]
				}
			}
			if cp != "" && cp <= q.After {
				// Rolled up on an earlier page: skip all its keys.
				next, ok := prefixEnd(cp)
				if !ok {
					done = true
					break
				}
				from, restart = next, true
				break
			}
			if page.KeyCount() == q.MaxKeys {
				page.IsTruncated = q.MaxKeys > 0
				done = true
				break
			}
			if cp == "" {
				page.Contents = append(page.Contents, entry)
				page.Next = k
				continue
			}
			page.CommonPrefixes = append(page.CommonPrefixes, cp)
			page.Next = cp
			next, ok := prefixEnd(cp)
			if !ok {
				done = true
				break
			}
			from, restart = next, true
			break
		}
		if done || !restart {
			break
		}
	}
	if !page.IsTruncated {
		page.Next = ""
	}
	return page, nil
}

// prefixEnd returns the smallest string greater than every string that has
// prefix p; ok is false when there is none (p is all 0xff bytes).
func prefixEnd(p string) (end string, ok bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
