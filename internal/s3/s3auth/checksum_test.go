package s3auth

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func sumBase64(a Algorithm, data []byte) string {
	h := a.New()
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// TestAlgorithmVectors checks each algorithm against published values:
// the CRC catalogue's check value of "123456789", aws-c-s3's CRC64NVME
// test of "aaaaaaaaaa" and FIPS 180's "abc".
func TestAlgorithmVectors(t *testing.T) {
	tests := []struct {
		alg     Algorithm
		input   string
		wantHex string
	}{
		{CRC32, "123456789", "cbf43926"},
		{CRC32C, "123456789", "e3069283"},
		{CRC64NVME, "123456789", "ae8b14860a799888"},
		{CRC64NVME, "aaaaaaaaaa", "0c1a80036d65c555"},
		{SHA1, "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{SHA256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg)+" "+tt.input, func(t *testing.T) {
			h := tt.alg.New()
			h.Write([]byte(tt.input))
			if got := hex.EncodeToString(h.Sum(nil)); got != tt.wantHex {
				t.Errorf("%s(%q) = %s, want %s", tt.alg, tt.input, got, tt.wantHex)
			}
		})
	}
}

// TestChecksumReader checks the values compared at the body's end, MD5
// among them, and that a malformed value is refused before reading.
func TestChecksumReader(t *testing.T) {
	const body = "abc"
	md5abc := base64.StdEncoding.EncodeToString(mustHex(t, "900150983cd24fb0d6963f7d28e17f72"))
	sha256abc := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	tests := []struct {
		name      string
		expect    Expect
		trailer   http.Header
		wantNew   error // from NewChecksumReader
		wantRead  error // at the end
		wantSumOf Algorithm
	}{
		{name: "every header right", expect: Expect{ContentMD5: md5abc, ContentSHA256: sha256abc, Checksums: map[Algorithm]string{
			CRC32: sumBase64(CRC32, []byte(body)), CRC32C: sumBase64(CRC32C, []byte(body)), CRC64NVME: sumBase64(CRC64NVME, []byte(body)),
			SHA1: sumBase64(SHA1, []byte(body)), SHA256: sumBase64(SHA256, []byte(body)),
		}}, wantSumOf: CRC64NVME},
		{name: "computed only", expect: Expect{Compute: []Algorithm{CRC64NVME}}, wantSumOf: CRC64NVME},
		{name: "trailer right", expect: Expect{Trailer: CRC32C}, trailer: http.Header{"X-Amz-Checksum-Crc32c": {sumBase64(CRC32C, []byte(body))}}, wantSumOf: CRC32C},
		{name: "trailer wrong", expect: Expect{Trailer: CRC32}, trailer: http.Header{"X-Amz-Checksum-Crc32": {sumBase64(CRC32, []byte("abd"))}}, wantRead: ErrBadDigest},
		{name: "trailer malformed", expect: Expect{Trailer: CRC32}, trailer: http.Header{"X-Amz-Checksum-Crc32": {"AAAA"}}, wantRead: ErrInvalidDigest},
		{name: "Content-MD5 wrong", expect: Expect{ContentMD5: sumBase64(SHA1, nil)[:24]}, wantNew: ErrInvalidDigest},
		{name: "Content-MD5 of another body", expect: Expect{ContentMD5: "1B2M2Y8AsgTpgAmY7PhCfg=="}, wantRead: ErrBadDigest},
		{name: "X-Amz-Content-Sha256 of another body", expect: Expect{ContentSHA256: strings.Repeat("0", 64)}, wantRead: ErrContentSHA256Mismatch},
		{name: "CRC64NVME wrong", expect: Expect{Checksums: map[Algorithm]string{CRC64NVME: sumBase64(CRC64NVME, nil)}}, wantRead: ErrBadDigest},
		{name: "CRC32 too long", expect: Expect{Checksums: map[Algorithm]string{CRC32: "AAAAAAAA"}}, wantNew: ErrInvalidDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChecksumReader(strings.NewReader(body), tt.expect, func() http.Header { return tt.trailer })
			if !errors.Is(err, tt.wantNew) {
				t.Fatalf("NewChecksumReader = %v, want %v", err, tt.wantNew)
			}
			if err != nil {
				return
			}
			_, err = io.ReadAll(c)
			if !errors.Is(err, tt.wantRead) || (err == nil) != (tt.wantRead == nil) {
				t.Fatalf("read = %v, want %v", err, tt.wantRead)
			}
			d, ok := c.Digests()
			if ok != (err == nil) {
				t.Fatalf("Digests ok = %v after read error %v", ok, err)
			}
			if !ok {
				return
			}
			if got := base64.StdEncoding.EncodeToString(d.MD5[:]); got != md5abc {
				t.Errorf("MD5 = %s, want %s", got, md5abc)
			}
			if got, want := d.Checksums[tt.wantSumOf], sumBase64(tt.wantSumOf, []byte(body)); got != want {
				t.Errorf("%s = %q, want %q", tt.wantSumOf, got, want)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
