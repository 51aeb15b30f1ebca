package s3auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/internal/auth"
)

// Errors of an aws-chunked body.
var (
	// ErrIncompleteBody is a body that ended early, or that is not
	// X-Amz-Decoded-Content-Length long: S3's IncompleteBody.
	ErrIncompleteBody = fmt.Errorf("s3auth: incomplete body: %w", io.ErrUnexpectedEOF)
	// ErrMalformedChunk is an aws-chunked body that does not follow the
	// framing: a bad chunk header, a chunk over MaxChunkSize, a missing
	// CRLF, a trailer not promised or missing: S3's InvalidRequest.
	ErrMalformedChunk = errors.New("s3auth: malformed aws-chunked body")
	// ErrChunkSignature is a chunk or trailer whose signature is not the
	// next in the chain: S3's SignatureDoesNotMatch.
	ErrChunkSignature = fmt.Errorf("s3auth: chunk signature does not match: %w", auth.ErrBadSignature)
)

const (
	// MaxChunkSize bounds one chunk of an aws-chunked body: SDKs send
	// 64 KiB to 16 MiB, and a signed chunk's hash is only checked at its
	// end, so a larger one is refused rather than streamed unverified.
	MaxChunkSize = 16 << 20
	// maxTrailerLines bounds a trailer: a checksum and its signature.
	maxTrailerLines = 8
	// chunkLineMax bounds a chunk header or trailer line (bufio's buffer).
	chunkLineMax = 4096

	payloadAlgorithm = "AWS4-HMAC-SHA256-PAYLOAD"
	trailerAlgorithm = "AWS4-HMAC-SHA256-TRAILER"
	signatureExt     = ";chunk-signature="
	trailerSigHeader = "x-amz-trailer-signature"
)

// emptySHA256 is the hex SHA-256 of nothing, a line of every chunk's
// string to sign.
var emptySHA256 = hex.EncodeToString(sha256.New().Sum(nil))

// ChainSigner signs the links of a chunked payload's signature chain;
// *auth.Signature from auth.CheckS3SigV4 is one.
type ChainSigner interface {
	// Seed is the request's signature, the chain's first link.
	Seed() string
	// Sign signs algorithm, the date, the scope and lines.
	Sign(algorithm string, lines ...string) string
}

// ChunkedOptions say how to read an aws-chunked body.
type ChunkedOptions struct {
	// Signer checks each chunk's chunk-signature
	// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]); nil: chunks are
	// unsigned (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
	Signer ChainSigner
	// Trailer are the trailer headers promised (X-Amz-Trailer),
	// lower-case; exactly these must come, and no others.
	Trailer []string
	// SignedTrailer wants x-amz-trailer-signature after the trailer
	// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER).
	SignedTrailer bool
	// DecodedLength is X-Amz-Decoded-Content-Length, which the data must
	// be; -1: not checked.
	DecodedLength int64
}

// ChunkedReader decodes an aws-chunked body
//
//	size-hex[;chunk-signature=sig]\r\n data \r\n … 0[;chunk-signature=sig]\r\n [trailer lines\r\n] \r\n
//
// as it is read, in bounded memory: the data of a chunk is returned as it
// arrives and its signature checked at the chunk's end, before any later
// data and before io.EOF. So a caller keeps nothing it read until Read
// returned io.EOF. A body that ends early is an ErrIncompleteBody; bad
// framing an ErrMalformedChunk; a bad signature an ErrChunkSignature.
type ChunkedReader struct {
	br   *bufio.Reader
	opts ChunkedOptions
	prev string // the last signature of the chain

	left      int64     // data bytes left in the current chunk
	chunkHash hash.Hash // of the current chunk, when signed
	chunkSig  string    // the current chunk's signature
	n         int64     // data bytes returned
	trailer   http.Header
	err       error // sticky; io.EOF once the body ended well
}

// NewChunkedReader returns a decoder of the aws-chunked body r.
func NewChunkedReader(r io.Reader, opts ChunkedOptions) *ChunkedReader {
	c := &ChunkedReader{br: bufio.NewReaderSize(r, chunkLineMax), opts: opts, trailer: http.Header{}}
	if opts.Signer != nil {
		c.prev = opts.Signer.Seed()
		c.chunkHash = sha256.New()
	}
	return c
}

// Trailer is the body's trailer, without its signature, once Read
// returned io.EOF.
func (c *ChunkedReader) Trailer() http.Header { return c.trailer }

// Read returns the body's data.
func (c *ChunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if err := c.nextChunk(); err != nil {
			c.err = err
			return 0, err
		}
		if c.err == io.EOF {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	c.n += int64(n)
	if c.chunkHash != nil {
		c.chunkHash.Write(p[:n])
	}
	if err != nil {
		c.err = incomplete(err)
		return n, c.err
	}
	if c.left == 0 {
		// Verify at once: a caller that stops reading after the last byte
		// of a chunk has no bad data unverified.
		if err := c.endChunk(); err != nil {
			c.err = err
			return n, err
		}
	}
	return n, nil
}

// incomplete turns the end of the underlying body into ErrIncompleteBody.
func incomplete(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrIncompleteBody
	}
	return err
}

// endChunk reads the CRLF after a chunk's data and checks its signature.
func (c *ChunkedReader) endChunk() error {
	if err := c.expectCRLF(); err != nil {
		return err
	}
	return c.verifyChunk()
}

func (c *ChunkedReader) verifyChunk() error {
	if c.opts.Signer == nil {
		return nil
	}
	want := c.opts.Signer.Sign(payloadAlgorithm, c.prev, emptySHA256, hex.EncodeToString(c.chunkHash.Sum(nil)))
	if !hmac.Equal([]byte(want), []byte(c.chunkSig)) {
		return ErrChunkSignature
	}
	c.prev = want
	c.chunkHash.Reset()
	return nil
}

func (c *ChunkedReader) expectCRLF() error {
	var b [2]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return incomplete(err)
	}
	if b != [2]byte{'\r', '\n'} {
		return fmt.Errorf("%w: chunk data not followed by CRLF", ErrMalformedChunk)
	}
	return nil
}

// line reads one CRLF-terminated line, without the CRLF.
func (c *ChunkedReader) line() (string, error) {
	l, err := c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("%w: line over %d bytes", ErrMalformedChunk, chunkLineMax)
	case err != nil:
		return "", incomplete(err)
	}
	s, ok := strings.CutSuffix(string(l), "\r\n")
	if !ok {
		return "", fmt.Errorf("%w: line not ended by CRLF", ErrMalformedChunk)
	}
	return s, nil
}

// nextChunk reads a chunk header; at the last chunk, the trailer and the
// body's end, leaving c.err io.EOF.
func (c *ChunkedReader) nextChunk() error {
	l, err := c.line()
	if err != nil {
		return err
	}
	sizeHex, sig, signed := strings.Cut(l, signatureExt)
	if signed != (c.opts.Signer != nil) || (signed && !isHexSignature(sig)) {
		return fmt.Errorf("%w: chunk header %.80q", ErrMalformedChunk, l)
	}
	size, err := strconv.ParseUint(sizeHex, 16, 64)
	if err != nil || size > MaxChunkSize || len(sizeHex) > 16 {
		return fmt.Errorf("%w: chunk size %.20q (at most %d)", ErrMalformedChunk, sizeHex, MaxChunkSize)
	}
	if d := c.opts.DecodedLength; d >= 0 && c.n+int64(size) > d {
		return fmt.Errorf("%w: more data than X-Amz-Decoded-Content-Length %d", ErrIncompleteBody, d)
	}
	c.left, c.chunkSig = int64(size), sig
	if size > 0 {
		return nil
	}
	if err := c.verifyChunk(); err != nil {
		return err
	}
	if err := c.readTrailer(); err != nil {
		return err
	}
	if d := c.opts.DecodedLength; d >= 0 && c.n != d {
		return fmt.Errorf("%w: %d bytes, X-Amz-Decoded-Content-Length %d", ErrIncompleteBody, c.n, d)
	}
	var one [1]byte
	if n, _ := io.ReadFull(c.br, one[:]); n > 0 {
		return fmt.Errorf("%w: data after the body's end", ErrMalformedChunk)
	}
	c.err = io.EOF
	return nil
}

// readTrailer reads the trailer lines after the last chunk up to the
// empty line, and checks the trailer's signature. A body without a
// promised trailer may end right after the last chunk's header, as the
// AWS SDK for JavaScript sends it.
func (c *ChunkedReader) readTrailer() error {
	var canonical strings.Builder
	var sig string
	for i := 0; ; i++ {
		if i == 0 && len(c.opts.Trailer) == 0 && !c.opts.SignedTrailer {
			if _, err := c.br.Peek(1); err == io.EOF {
				return nil
			}
		}
		l, err := c.line()
		if err != nil {
			return err
		}
		if l == "" {
			break
		}
		if i >= maxTrailerLines {
			return fmt.Errorf("%w: over %d trailer lines", ErrMalformedChunk, maxTrailerLines)
		}
		name, value, ok := strings.Cut(l, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		switch {
		case !ok:
			return fmt.Errorf("%w: trailer line %.80q", ErrMalformedChunk, l)
		case name == trailerSigHeader && c.opts.SignedTrailer && sig == "":
			sig = value
		case slices.Contains(c.opts.Trailer, name) && c.trailer.Get(name) == "" && sig == "":
			c.trailer.Set(name, value)
			canonical.WriteString(name + ":" + value + "\n")
		default:
			return fmt.Errorf("%w: trailer %q not promised in X-Amz-Trailer", ErrMalformedChunk, name)
		}
	}
	for _, name := range c.opts.Trailer {
		if c.trailer.Get(name) == "" {
			return fmt.Errorf("%w: trailer %q promised and not sent", ErrMalformedChunk, name)
		}
	}
	if !c.opts.SignedTrailer {
		return nil
	}
	if !isHexSignature(sig) {
		return fmt.Errorf("%w: no %s", ErrMalformedChunk, trailerSigHeader)
	}
	sum := sha256.Sum256([]byte(canonical.String()))
	if want := c.opts.Signer.Sign(trailerAlgorithm, c.prev, hex.EncodeToString(sum[:])); !hmac.Equal([]byte(want), []byte(sig)) {
		return ErrChunkSignature
	}
	return nil
}

// isHexSignature is a signature as SigV4 writes one: lower-case hex of
// a SHA-256 HMAC.
func isHexSignature(s string) bool {
	return len(s) == 2*sha256.Size && strings.Trim(s, "0123456789abcdef") == ""
}
