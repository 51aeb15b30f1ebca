package s3auth

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Algorithm is one of the checksums S3 verifies and stores beside an
// object, named as in x-amz-checksum-algorithm.
type Algorithm string

// The checksum algorithms of S3's x-amz-checksum-* headers.
const (
	CRC32     Algorithm = "CRC32"  // IEEE
	CRC32C    Algorithm = "CRC32C" // Castagnoli
	CRC64NVME Algorithm = "CRC64NVME"
	SHA1      Algorithm = "SHA1"
	SHA256    Algorithm = "SHA256"
)

// Algorithms are the checksum algorithms, in a fixed order.
var Algorithms = []Algorithm{CRC32, CRC32C, CRC64NVME, SHA1, SHA256}

// crc64NVMETable is CRC-64/NVME's polynomial 0xad93d23594c93659 in the
// bit-reflected form hash/crc64 takes, as AWS computes it.
var (
	crc64NVMETable = crc64.MakeTable(0x9a6c9329ac4bc9b5)
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
)

// ParseAlgorithm reads an algorithm name as x-amz-checksum-algorithm and
// x-amz-sdk-checksum-algorithm carry it, in any case.
func ParseAlgorithm(s string) (Algorithm, bool) {
	a := Algorithm(strings.ToUpper(s))
	return a, slices.Contains(Algorithms, a)
}

// Header is the header (and trailer) that carries a's value:
// x-amz-checksum-crc32 and so on.
func (a Algorithm) Header() string { return "x-amz-checksum-" + strings.ToLower(string(a)) }

// New returns a hash computing a, its Sum big-endian as S3 encodes it.
func (a Algorithm) New() hash.Hash {
	switch a {
	case CRC32:
		return crc32.NewIEEE()
	case CRC32C:
		return crc32.New(castagnoli)
	case CRC64NVME:
		return crc64.New(crc64NVMETable)
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	}
	panic("s3auth: unknown checksum algorithm " + string(a))
}

// Checksum errors. A *DigestError wraps one of them.
var (
	// ErrInvalidDigest is a checksum value that cannot be one: not base64,
	// or not the algorithm's length. S3 answers InvalidDigest for
	// Content-MD5 and InvalidRequest ("Value for x-amz-checksum-crc32
	// header is invalid.") for the others.
	ErrInvalidDigest = errors.New("s3auth: invalid checksum value")
	// ErrBadDigest is a body that does not hash to the value sent: S3's
	// BadDigest.
	ErrBadDigest = errors.New("s3auth: checksum does not match the body")
	// ErrContentSHA256Mismatch is a body whose SHA-256 is not its
	// X-Amz-Content-Sha256: S3's XAmzContentSHA256Mismatch.
	ErrContentSHA256Mismatch = errors.New("s3auth: X-Amz-Content-Sha256 does not match the body")
)

// DigestError is a checksum header or trailer that is malformed or does
// not match the body.
type DigestError struct {
	Header string // lower-case: content-md5, x-amz-checksum-crc32, …
	Err    error  // ErrInvalidDigest, ErrBadDigest or ErrContentSHA256Mismatch
}

func (e *DigestError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Header) }

func (e *DigestError) Unwrap() error { return e.Err }

// Expect is what a body must hash to, checked once it is read to its end.
type Expect struct {
	ContentMD5    string               // base64, as Content-MD5 sends it; "" none
	ContentSHA256 string               // hex, X-Amz-Content-Sha256 when it is a hash; "" none
	Checksums     map[Algorithm]string // base64, from x-amz-checksum-* headers
	// Trailer is the checksum the body's trailer carries (X-Amz-Trailer).
	Trailer Algorithm
	// Compute are algorithms computed with nothing to compare them to,
	// such as the one x-amz-checksum-algorithm names or the server's own.
	Compute []Algorithm
}

// Digests are the checksums of a body read to its end.
type Digests struct {
	MD5 [md5.Size]byte // always computed: a single-part object's ETag is its hex
	// Checksums are the base64 values of the algorithms computed: those
	// expected and those asked for.
	Checksums map[Algorithm]string
}

// ChecksumReader hashes a body as it is read and, when the body ends,
// compares the hashes to the values expected.
type ChecksumReader struct {
	r        io.Reader
	expect   Expect
	trailer  func() http.Header // nil: no trailer
	md5      hash.Hash
	sha256   hash.Hash // X-Amz-Content-Sha256's, or SHA256's if computed
	sums     map[Algorithm]hash.Hash
	err      error // sticky: the first error returned
	done     bool
	digests  Digests
	byteRead int64
}

// NewChecksumReader returns a reader of r that hashes what it reads as
// e says and, at r's end, returns io.EOF only if every value expected
// matches (else a *DigestError). trailer, when e.Trailer is set, gives the
// body's trailer once r is at its end (ChunkedReader.Trailer). A value
// that cannot be a checksum is an error at once, before reading.
func NewChecksumReader(r io.Reader, e Expect, trailer func() http.Header) (*ChecksumReader, error) {
	c := &ChecksumReader{r: r, expect: e, trailer: trailer, md5: md5.New(), sums: map[Algorithm]hash.Hash{}}
	if e.ContentMD5 != "" {
		if err := checkEncoded("content-md5", e.ContentMD5, md5.Size); err != nil {
			return nil, err
		}
	}
	if e.ContentSHA256 != "" {
		if b, err := hex.DecodeString(e.ContentSHA256); err != nil || len(b) != sha256.Size {
			return nil, &DigestError{Header: "x-amz-content-sha256", Err: ErrInvalidDigest}
		}
		c.sha256 = sha256.New()
	}
	want := slices.Clone(e.Compute)
	for a, v := range e.Checksums {
		if _, ok := ParseAlgorithm(string(a)); !ok {
			return nil, &DigestError{Header: a.Header(), Err: ErrInvalidDigest}
		}
		if err := checkEncoded(a.Header(), v, a.New().Size()); err != nil {
			return nil, err
		}
		want = append(want, a)
	}
	if e.Trailer != "" {
		if _, ok := ParseAlgorithm(string(e.Trailer)); !ok || trailer == nil {
			return nil, &DigestError{Header: e.Trailer.Header(), Err: ErrInvalidDigest}
		}
		want = append(want, e.Trailer)
	}
	for _, a := range want {
		if _, ok := c.sums[a]; ok {
			continue
		}
		if a == SHA256 && c.sha256 != nil {
			c.sums[a] = c.sha256 // one SHA-256 for both
			continue
		}
		c.sums[a] = a.New()
	}
	return c, nil
}

func checkEncoded(header, v string, size int) error {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != size {
		return &DigestError{Header: header, Err: ErrInvalidDigest}
	}
	return nil
}

// Read reads and hashes; at the body's end it compares.
func (c *ChecksumReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.byteRead += int64(n)
		c.md5.Write(p[:n])
		if c.sha256 != nil && c.sums[SHA256] != c.sha256 {
			c.sha256.Write(p[:n])
		}
		for _, h := range c.sums {
			h.Write(p[:n])
		}
	}
	switch {
	case err == io.EOF:
		if cerr := c.finish(); cerr != nil {
			c.err = cerr
			return n, cerr
		}
		c.err = io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrIncompleteBody):
		// net/http's body ends short of Content-Length.
		c.err = fmt.Errorf("%w: %w", ErrIncompleteBody, err)
	case err != nil:
		c.err = err
	}
	return n, c.err
}

// finish compares every hash to its expected value.
func (c *ChecksumReader) finish() error {
	c.done = true
	c.digests.Checksums = make(map[Algorithm]string, len(c.sums))
	copy(c.digests.MD5[:], c.md5.Sum(nil))
	for a, h := range c.sums {
		c.digests.Checksums[a] = base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	if c.expect.ContentSHA256 != "" && !strings.EqualFold(hex.EncodeToString(c.sha256.Sum(nil)), c.expect.ContentSHA256) {
		return &DigestError{Header: "x-amz-content-sha256", Err: ErrContentSHA256Mismatch}
	}
	if c.expect.ContentMD5 != "" && base64.StdEncoding.EncodeToString(c.digests.MD5[:]) != c.expect.ContentMD5 {
		return &DigestError{Header: "content-md5", Err: ErrBadDigest}
	}
	for _, a := range Algorithms { // a fixed order: the same error for the same body
		if v, ok := c.expect.Checksums[a]; ok && c.digests.Checksums[a] != v {
			return &DigestError{Header: a.Header(), Err: ErrBadDigest}
		}
	}
	if a := c.expect.Trailer; a != "" {
		v := c.trailer().Get(a.Header())
		if err := checkEncoded(a.Header(), v, c.sums[a].Size()); err != nil {
			return err
		}
		if c.digests.Checksums[a] != v {
			return &DigestError{Header: a.Header(), Err: ErrBadDigest}
		}
	}
	return nil
}

// Digests are the body's checksums, once Read returned io.EOF; ok is
// false before.
func (c *ChecksumReader) Digests() (d Digests, ok bool) {
	if !c.done || c.err != io.EOF {
		return Digests{}, false
	}
	return c.digests, true
}

// Size is how many bytes of the body were read.
func (c *ChecksumReader) Size() int64 { return c.byteRead }
