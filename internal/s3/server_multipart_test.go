package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// partSize is S3's least part size, which the harness's store keeps.
const partSize = 5 << 20

func createUpload(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ContentType: aws.String("text/x-parts"),
		Metadata: map[string]string{"who": "test"}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Bucket) != bucket || aws.ToString(out.Key) != key || aws.ToString(out.UploadId) == "" {
		t.Fatalf("CreateMultipartUpload answered %s/%s %q", aws.ToString(out.Bucket), aws.ToString(out.Key), aws.ToString(out.UploadId))
	}
	return aws.ToString(out.UploadId)
}

func uploadPart(t *testing.T, c *s3.Client, bucket, key, id string, n int32, body []byte) *s3.UploadPartOutput {
	t.Helper()
	out, err := c.UploadPart(context.Background(), &s3.UploadPartInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id),
		PartNumber: aws.Int32(n), Body: bytes.NewReader(body), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; aws.ToString(out.ETag) != want {
		t.Fatalf("part %d ETag %s, want %s", n, aws.ToString(out.ETag), want)
	}
	if got, want := aws.ToString(out.ChecksumCRC32), crc32Base64(body); got != want {
		t.Fatalf("part %d CRC32 %q, want %q echoed", n, got, want)
	}
	return out
}

func completed(parts ...*s3.UploadPartOutput) *types.CompletedMultipartUpload {
	var cm types.CompletedMultipartUpload
	for i, p := range parts {
		cm.Parts = append(cm.Parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: p.ETag})
	}
	return &cm
}

func TestMultipartUpload(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "mpb")
	id := createUpload(t, c, "mpb", "big")

	bodies := [][]byte{
		bytes.Repeat([]byte("a"), partSize),
		bytes.Repeat([]byte("b"), partSize),
		[]byte("the last part may be small"),
	}
	var parts []*s3.UploadPartOutput
	for i, b := range bodies {
		parts = append(parts, uploadPart(t, c, "mpb", "big", id, int32(i+1), b))
	}

	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("mpb"), Key: aws.String("big"), UploadId: aws.String(id), MaxParts: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Parts) != 2 || !aws.ToBool(lp.IsTruncated) || aws.ToString(lp.NextPartNumberMarker) != "2" {
		t.Fatalf("ListParts page 1: %d parts, truncated %v, next %q", len(lp.Parts), aws.ToBool(lp.IsTruncated), aws.ToString(lp.NextPartNumberMarker))
	}
	if aws.ToInt64(lp.Parts[1].Size) != partSize || aws.ToString(lp.Parts[1].ETag) != aws.ToString(parts[1].ETag) {
		t.Fatalf("ListParts part 2: size %d ETag %s", aws.ToInt64(lp.Parts[1].Size), aws.ToString(lp.Parts[1].ETag))
	}
	lp, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("mpb"), Key: aws.String("big"), UploadId: aws.String(id), PartNumberMarker: lp.NextPartNumberMarker})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Parts) != 1 || aws.ToInt32(lp.Parts[0].PartNumber) != 3 || aws.ToBool(lp.IsTruncated) {
		t.Fatalf("ListParts page 2: %d parts, truncated %v", len(lp.Parts), aws.ToBool(lp.IsTruncated))
	}

	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("mpb"), Key: aws.String("big"), UploadId: aws.String(id), MultipartUpload: completed(parts...),
	})
	if err != nil {
		t.Fatal(err)
	}
	etag := aws.ToString(done.ETag)
	if !strings.HasSuffix(etag, `-3"`) || aws.ToString(done.Key) != "big" || aws.ToString(done.Bucket) != "mpb" ||
		!strings.HasSuffix(aws.ToString(done.Location), "/mpb/big") {
		t.Fatalf("CompleteMultipartUpload: ETag %s, %s/%s at %s", etag, aws.ToString(done.Bucket), aws.ToString(done.Key), aws.ToString(done.Location))
	}
	out, got := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("mpb"), Key: aws.String("big")})
	if got != string(bytes.Join(bodies, nil)) {
		t.Fatalf("GetObject: %d bytes, not the parts joined", len(got))
	}
	if aws.ToString(out.ETag) != etag || aws.ToString(out.ContentType) != "text/x-parts" || out.Metadata["who"] != "test" {
		t.Fatalf("GetObject: ETag %s, Content-Type %s, metadata %v", aws.ToString(out.ETag), aws.ToString(out.ContentType), out.Metadata)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("mpb"), Key: aws.String("big"), UploadId: aws.String(id)})
	wantCode(t, err, "NoSuchUpload")
}

func TestUploadPartCopy(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "mpb")
	mustPut(t, c, "mpb", "src", "0123456789")
	id := createUpload(t, c, "mpb", "dst")

	cp, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
		Bucket: aws.String("mpb"), Key: aws.String("dst"), UploadId: aws.String(id), PartNumber: aws.Int32(1),
		CopySource: aws.String("mpb/src"), CopySourceRange: aws.String("bytes=2-5"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte("2345"))
	if got := aws.ToString(cp.CopyPartResult.ETag); got != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("UploadPartCopy ETag %s, want the MD5 of 2345", got)
	}
	_, err = c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
		Bucket: aws.String("mpb"), Key: aws.String("dst"), UploadId: aws.String(id), PartNumber: aws.Int32(2),
		CopySource: aws.String("mpb/src"), CopySourceRange: aws.String("bytes=5-10"),
	})
	wantCode(t, err, "InvalidArgument")
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("mpb"), Key: aws.String("dst"), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: cp.CopyPartResult.ETag}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, got := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("mpb"), Key: aws.String("dst")}); got != "2345" {
		t.Fatalf("copied part reads %q, want 2345", got)
	}
}

func TestMultipartRefusals(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "mpb")
	id := createUpload(t, c, "mpb", "k")
	p1 := uploadPart(t, c, "mpb", "k", id, 1, bytes.Repeat([]byte("x"), partSize))
	p2 := uploadPart(t, c, "mpb", "k", id, 2, []byte("tail"))
	complete := func(parts ...types.CompletedPart) error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String("mpb"), Key: aws.String("k"), UploadId: aws.String(id),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		return err
	}
	one := types.CompletedPart{PartNumber: aws.Int32(1), ETag: p1.ETag}
	two := types.CompletedPart{PartNumber: aws.Int32(2), ETag: p2.ETag}

	wantCode(t, complete(two, one), "InvalidPartOrder")
	wantCode(t, complete(one, types.CompletedPart{PartNumber: aws.Int32(2), ETag: p1.ETag}), "InvalidPart")
	wantCode(t, complete(one, types.CompletedPart{PartNumber: aws.Int32(3), ETag: p2.ETag}), "InvalidPart")
	wantCode(t, complete(), "MalformedXML")
	wantNoObject(t, c, "mpb", "k")

	small := createUpload(t, c, "mpb", "small")
	s1 := uploadPart(t, c, "mpb", "small", small, 1, []byte("too small"))
	s2 := uploadPart(t, c, "mpb", "small", small, 2, []byte("last"))
	_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("mpb"), Key: aws.String("small"), UploadId: aws.String(small), MultipartUpload: completed(s1, s2),
	})
	wantCode(t, err, "EntityTooSmall")

	_, err = c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String("mpb"), Key: aws.String("k"), UploadId: aws.String(id), PartNumber: aws.Int32(10001), Body: strings.NewReader("x"),
	})
	wantCode(t, err, "InvalidArgument")

	// The refusals left the upload as it was: it completes.
	if err := complete(one, two); err != nil {
		t.Fatal(err)
	}

	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("mpb"), Key: aws.String("small"), UploadId: aws.String(small)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String("mpb"), Key: aws.String("small"), UploadId: aws.String(small), PartNumber: aws.Int32(3), Body: strings.NewReader("x"),
	})
	wantCode(t, err, "NoSuchUpload")
	_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("mpb"), Key: aws.String("small"), UploadId: aws.String(small)})
	wantCode(t, err, "NoSuchUpload")
	wantNoObject(t, c, "mpb", "small")
}

func TestListMultipartUploads(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "mpb")
	ids := map[string]string{}
	for _, k := range []string{"a", "dir/one", "dir/two", "z"} {
		ids[k] = createUpload(t, c, "mpb", k)
	}
	list := func(in *s3.ListMultipartUploadsInput) *s3.ListMultipartUploadsOutput {
		t.Helper()
		in.Bucket = aws.String("mpb")
		out, err := c.ListMultipartUploads(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	keys := func(out *s3.ListMultipartUploadsOutput) string {
		var ks []string
		for _, u := range out.Uploads {
			ks = append(ks, aws.ToString(u.Key))
		}
		for _, p := range out.CommonPrefixes {
			ks = append(ks, aws.ToString(p.Prefix))
		}
		return strings.Join(ks, " ")
	}

	out := list(&s3.ListMultipartUploadsInput{})
	if keys(out) != "a dir/one dir/two z" || aws.ToBool(out.IsTruncated) {
		t.Fatalf("all uploads: %q, truncated %v", keys(out), aws.ToBool(out.IsTruncated))
	}
	if aws.ToString(out.Uploads[1].UploadId) != ids["dir/one"] {
		t.Fatalf("dir/one listed as %s, created as %s", aws.ToString(out.Uploads[1].UploadId), ids["dir/one"])
	}
	out = list(&s3.ListMultipartUploadsInput{MaxUploads: aws.Int32(2)})
	if keys(out) != "a dir/one" || !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextKeyMarker) != "dir/one" || aws.ToString(out.NextUploadIdMarker) != ids["dir/one"] {
		t.Fatalf("page 1: %q, truncated %v, next %s %s", keys(out), aws.ToBool(out.IsTruncated), aws.ToString(out.NextKeyMarker), aws.ToString(out.NextUploadIdMarker))
	}
	out = list(&s3.ListMultipartUploadsInput{KeyMarker: out.NextKeyMarker, UploadIdMarker: out.NextUploadIdMarker})
	if keys(out) != "dir/two z" {
		t.Fatalf("page 2: %q", keys(out))
	}
	out = list(&s3.ListMultipartUploadsInput{Prefix: aws.String("dir/")})
	if keys(out) != "dir/one dir/two" {
		t.Fatalf("prefix dir/: %q", keys(out))
	}
	out = list(&s3.ListMultipartUploadsInput{Delimiter: aws.String("/")})
	if len(out.CommonPrefixes) != 1 || aws.ToString(out.CommonPrefixes[0].Prefix) != "dir/" || len(out.Uploads) != 2 {
		t.Fatalf("delimiter /: %q", keys(out))
	}

	// Completed and aborted uploads leave the listing.
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("mpb"), Key: aws.String("a"), UploadId: aws.String(ids["a"])}); err != nil {
		t.Fatal(err)
	}
	p := uploadPart(t, c, "mpb", "z", ids["z"], 1, []byte("z"))
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("mpb"), Key: aws.String("z"), UploadId: aws.String(ids["z"]), MultipartUpload: completed(p),
	}); err != nil {
		t.Fatal(err)
	}
	if out = list(&s3.ListMultipartUploadsInput{}); keys(out) != "dir/one dir/two" {
		t.Fatalf("after abort and complete: %q", keys(out))
	}
}
