package s3auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// The chunk-signed upload of AWS's "Signature Calculations for the
// Authorization Header: Transferring Payload in Multiple Chunks" and its
// trailer variant ("Signature calculations for trailing headers"):
// 66,560 bytes of 'a' in chunks of 64 KiB, 1 KiB and 0.
const (
	docKeyID  = "AKIAIOSFODNN7EXAMPLE"
	docSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	docDate   = "20130524T000000Z"
	docScope  = "20130524/us-east-1/s3/aws4_request"
)

var (
	docSignatures = [3]string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	}
	docTrailerSeed       = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
	docTrailerSignatures = [3]string{
		"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
		"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
		"2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
	}
	docTrailer = "x-amz-checksum-crc32c:sOO8/Q==\r\n" +
		"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
	docData = strings.Repeat("a", 66560)
)

func docBody(sigs [3]string, trailer string) string {
	return fmt.Sprintf("10000;chunk-signature=%s\r\n%s\r\n400;chunk-signature=%s\r\n%s\r\n0;chunk-signature=%s\r\n%s\r\n",
		sigs[0], docData[:65536], sigs[1], docData[65536:], sigs[2], trailer)
}

// docRequest is the documented request, as the server reads it.
func docRequest(t *testing.T, body string) *bufio.Reader {
	t.Helper()
	head := "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\n" +
		"Host: s3.amazonaws.com\r\n" +
		"x-amz-date: " + docDate + "\r\n" +
		"x-amz-storage-class: REDUCED_REDUNDANCY\r\n" +
		"Authorization: AWS4-HMAC-SHA256 Credential=" + docKeyID + "/" + docScope + "," +
		"SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class," +
		"Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\r\n" +
		"x-amz-content-sha256: " + StreamingSigned + "\r\n" +
		"Content-Encoding: aws-chunked\r\n" +
		"x-amz-decoded-content-length: 66560\r\n" +
		"Content-Length: 66824\r\n\r\n"
	return bufio.NewReader(strings.NewReader(head + body))
}

// TestDocumentedSignedChunks runs AWS's documented chunk-signed upload
// through Check (its seed signature) and NewBody (its chain): it decodes
// whole, and one byte or one signature changed is refused.
func TestDocumentedSignedChunks(t *testing.T) {
	good := docBody(docSignatures, "")
	tests := []struct {
		name string
		body string
		want error
	}{
		{"as documented", good, nil},
		{"a data byte changed", strings.Replace(good, "\r\naaaa", "\r\nbaaa", 1), ErrChunkSignature},
		{"the last signature changed", strings.Replace(good, docSignatures[2], docSignatures[1], 1), ErrChunkSignature},
		{"chunks traded", strings.Replace(good, docSignatures[0], docSignatures[1], 1), ErrChunkSignature},
		{"cut in the second chunk", good[:66000], ErrIncompleteBody},
		{"without the last chunk", good[:strings.Index(good, "0;chunk")], ErrIncompleteBody},
		{"unsigned chunk header", strings.Replace(good, ";chunk-signature="+docSignatures[1], "", 1), ErrMalformedChunk},
		{"bare LF", strings.Replace(good, "\r\n400;", "\n400;", 1), ErrMalformedChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := readRequest(t, docRequest(t, tt.body))
			sig, err := Check(r, time.Date(2013, 5, 24, 0, 0, 30, 0, time.UTC), "us-east-1", func(id string) (string, error) {
				return docSecret, nil
			})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			body, err := NewBody(r, sig)
			if err != nil {
				t.Fatalf("NewBody: %v", err)
			}
			got, err := io.ReadAll(iotest.OneByteReader(body))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("read = %v, want %v", err, tt.want)
			}
			if err == nil && string(got) != docData {
				t.Fatalf("decoded %d bytes, want the documented %d", len(got), len(docData))
			}
		})
	}
}

// docSigner signs as the documented trailer upload's request did; its
// seed is the documented one, as that request is not given whole.
type docSigner struct{ key []byte }

func newDocSigner() docSigner {
	k := []byte("AWS4" + docSecret)
	for _, s := range []string{"20130524", "us-east-1", "s3", "aws4_request"} {
		k = hmacOf(k, s)
	}
	return docSigner{k}
}

func hmacOf(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func (docSigner) Seed() string { return docTrailerSeed }

func (d docSigner) Sign(algorithm string, lines ...string) string {
	return hex.EncodeToString(hmacOf(d.key, strings.Join(append([]string{algorithm, docDate, docScope}, lines...), "\n")))
}

// TestDocumentedSignedTrailer decodes AWS's documented chunk-signed
// upload with a signed CRC32C trailer, and refuses it with the trailer
// changed, unsigned or not promised.
func TestDocumentedSignedTrailer(t *testing.T) {
	good := docBody(docTrailerSignatures, docTrailer)
	tests := []struct {
		name    string
		body    string
		trailer []string
		want    error
	}{
		{"as documented", good, []string{"x-amz-checksum-crc32c"}, nil},
		{"the checksum changed", strings.Replace(good, "sOO8/Q==", "sOO8/A==", 1), []string{"x-amz-checksum-crc32c"}, ErrChunkSignature},
		{"no trailer signature", strings.Replace(good, docTrailer, "x-amz-checksum-crc32c:sOO8/Q==\r\n", 1), []string{"x-amz-checksum-crc32c"}, ErrMalformedChunk},
		{"a trailer not promised", good, []string{"x-amz-checksum-crc32"}, ErrMalformedChunk},
		{"no final CRLF", strings.TrimSuffix(good, "\r\n"), []string{"x-amz-checksum-crc32c"}, ErrIncompleteBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChunkedReader(strings.NewReader(tt.body), ChunkedOptions{
				Signer: newDocSigner(), Trailer: tt.trailer, SignedTrailer: true, DecodedLength: 66560,
			})
			got, err := io.ReadAll(c)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("read = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if string(got) != docData {
				t.Fatalf("decoded %d bytes, want %d", len(got), len(docData))
			}
			if v := c.Trailer().Get("x-amz-checksum-crc32c"); v != "sOO8/Q==" || sumBase64(CRC32C, got) != v {
				t.Fatalf("trailer checksum %q, the data's %q", v, sumBase64(CRC32C, got))
			}
		})
	}
}

// TestUnsignedChunks checks the framing of STREAMING-UNSIGNED-PAYLOAD-
// TRAILER bodies beyond what the SDK sends: the JavaScript SDK's bare
// "0\r\n" end, the chunk size bound, X-Amz-Decoded-Content-Length.
func TestUnsignedChunks(t *testing.T) {
	crc := "x-amz-checksum-crc32:" + sumBase64(CRC32, []byte("hello world")) + "\r\n\r\n"
	tests := []struct {
		name    string
		body    string
		trailer []string
		decoded int64
		want    error
	}{
		{"with a trailer", "5\r\nhello\r\n6\r\n world\r\n0\r\n" + crc, []string{"x-amz-checksum-crc32"}, 11, nil},
		{"ending at the last chunk", "b\r\nhello world\r\n0\r\n", nil, 11, nil},
		{"length unknown", "b\r\nhello world\r\n0\r\n\r\n", nil, -1, nil},
		{"a trailer promised and not sent", "b\r\nhello world\r\n0\r\n\r\n", []string{"x-amz-checksum-crc32"}, 11, ErrMalformedChunk},
		{"longer than declared", "b\r\nhello world\r\n0\r\n", nil, 10, ErrIncompleteBody},
		{"shorter than declared", "b\r\nhello world\r\n0\r\n", nil, 12, ErrIncompleteBody},
		{"a chunk over the bound", "1000001\r\n", nil, -1, ErrMalformedChunk},
		{"a size not hex", "zz\r\n", nil, -1, ErrMalformedChunk},
		{"a signed chunk", "b;chunk-signature=" + strings.Repeat("0", 64) + "\r\nhello world\r\n0\r\n", nil, -1, ErrMalformedChunk},
		{"a header line too long", strings.Repeat("0", 5000) + "\r\n", nil, -1, ErrMalformedChunk},
		{"data after the end", "b\r\nhello world\r\n0\r\n\r\nmore", nil, -1, ErrMalformedChunk},
		{"no CRLF after the data", "5\r\nhelloXX", nil, -1, ErrMalformedChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChunkedReader(strings.NewReader(tt.body), ChunkedOptions{Trailer: tt.trailer, DecodedLength: tt.decoded})
			got, err := io.ReadAll(c)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("read = %v, want %v", err, tt.want)
			}
			if err == nil && string(got) != "hello world" {
				t.Fatalf("decoded %q, want %q", got, "hello world")
			}
		})
	}
}

// FuzzChunkedReader feeds arbitrary bodies to the decoder: it must end
// with io.EOF or an error of its own, never panic, and never return more
// data than the framing announced.
func FuzzChunkedReader(f *testing.F) {
	f.Add("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n")
	f.Add("b\r\nhello world\r\n0\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		c := NewChunkedReader(strings.NewReader(body), ChunkedOptions{Trailer: []string{"x-amz-checksum-crc32"}, DecodedLength: -1})
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, ErrIncompleteBody) && !errors.Is(err, ErrMalformedChunk) {
			t.Fatalf("read = %v, want one of s3auth's errors", err)
		}
		if len(got) > len(body) {
			t.Fatalf("decoded %d bytes from a %d-byte body", len(got), len(body))
		}
	})
}

func readRequest(t *testing.T, br *bufio.Reader) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
