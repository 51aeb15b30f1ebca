package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/objects"
	s3api "github.com/wisp-dev/wisp/internal/s3"
	"github.com/wisp-dev/wisp/internal/store"
)

const (
	testKeyID  = "WISPTESTKEY000000001"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRegion = "us-east-1"
)

// testServer is the S3 API on 127.0.0.1 over an object store on an
// embedded NATS, with one access key.
type testServer struct {
	*httptest.Server
	objects *objects.Store
	// skew moves the server's clock, to expire presigned URLs.
	skew atomic.Int64
}

// newTestServer starts one; with tls, the SDK sends PutObject's body
// aws-chunked with a trailing checksum, as it does over HTTPS; over HTTP
// it sends the checksum in a header.
func newTestServer(t *testing.T, tls bool, maxObjectSize int64) *testServer {
	t.Helper()
	ctx := context.Background()
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	st, err := store.Open(ctx, store.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	objs, err := objects.New(ctx, st, objects.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(objs.Close)
	ts := &testServer{objects: objs}
	secrets := map[string]string{testKeyID: testSecret}
	ts.Server = httptest.NewUnstartedServer(s3api.NewHandler(s3api.Config{
		Objects: objs,
		SecretFor: func(_ context.Context, id string) (string, error) {
			if s, ok := secrets[id]; ok {
				return s, nil
			}
			return "", fmt.Errorf("%w: %s", auth.ErrUnknownKey, id)
		},
		Logger:        log,
		Now:           func() time.Time { return time.Now().Add(time.Duration(ts.skew.Load())) },
		MaxObjectSize: maxObjectSize,
	}))
	if tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return ts
}

// client is an S3 client of ts as config.LoadDefaultConfig makes one,
// path style, signing as keyID with secret.
func (ts *testServer) client(keyID, secret string) *s3.Client {
	os.Unsetenv("AWS_CA_BUNDLE")
	return s3.New(s3.Options{
		Region:                     testRegion,
		BaseEndpoint:               aws.String(ts.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		HTTPClient:                 ts.Client(),
		Retryer:                    aws.NopRetryer{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	})
}

func (ts *testServer) good() *s3.Client { return ts.client(testKeyID, testSecret) }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v, want S3's %s", err, code)
	}
	if got := apiErr.ErrorCode(); got != code {
		t.Fatalf("error code %s (%v), want %s", got, err, code)
	}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want an HTTP %d", err, status)
	}
	if got := re.HTTPStatusCode(); got != status {
		t.Fatalf("status %d (%v), want %d", got, err, status)
	}
}

func mustBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
}

func mustPut(t *testing.T, c *s3.Client, bucket, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getBody(t *testing.T, c *s3.Client, in *s3.GetObjectInput) (*s3.GetObjectOutput, string) {
	t.Helper()
	out, err := c.GetObject(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out, string(b)
}

// wantNoObject checks that key was not stored.
func wantNoObject(t *testing.T, c *s3.Client, bucket, key string) {
	t.Helper()
	_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	wantStatus(t, err, http.StatusNotFound)
}

func TestBucketLifecycle(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()

	mustBucket(t, c, "photos")
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("photos")})
	wantCode(t, err, "BucketAlreadyOwnedByYou")
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
	wantCode(t, err, "InvalidBucketName")
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("elsewhere"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}})
	wantCode(t, err, "InvalidLocationConstraint")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("docs"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: testRegion}}); err != nil {
		t.Fatal(err)
	}

	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list.Buckets {
		names = append(names, *b.Name)
	}
	if want := []string{"docs", "photos"}; !slices.Equal(names, want) {
		t.Errorf("buckets %v, want %v", names, want)
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("photos")})
	if err != nil {
		t.Fatal(err)
	}
	if loc.LocationConstraint != "" {
		t.Errorf("location %q, want none for us-east-1", loc.LocationConstraint)
	}

	mustPut(t, c, "photos", "a.jpg", "jpeg")
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("photos")})
	wantCode(t, err, "BucketNotEmpty")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("photos"), Key: aws.String("a.jpg")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("photos")})
	wantStatus(t, err, http.StatusNotFound)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("a.jpg")})
	wantCode(t, err, "NoSuchBucket")
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("photos")})
	wantCode(t, err, "NoSuchBucket")
}

func crc32Base64(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(b)))
}

func TestPutGetHeadDelete(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) { testPutGetHeadDelete(t, tls) })
	}
}

func testPutGetHeadDelete(t *testing.T, tls bool) {
	ts := newTestServer(t, tls, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	body := strings.Repeat("wisp object data ", 1000)

	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("bkt"), Key: aws.String("dir/file.txt"), Body: strings.NewReader(body),
		ContentType: aws.String("text/plain"), ContentDisposition: aws.String(`attachment; filename="f.txt"`),
		CacheControl: aws.String("max-age=60"), ContentLanguage: aws.String("en"),
		Metadata: map[string]string{"color": "blue", "Owner-Name": "ada"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf(`"%x"`, md5Sum(body))
	if *put.ETag != sum {
		t.Errorf("put ETag %s, want %s", *put.ETag, sum)
	}
	if put.ChecksumCRC32 == nil || *put.ChecksumCRC32 != crc32Base64([]byte(body)) {
		t.Errorf("put CRC32 %v, want the SDK's default CRC32 %s", put.ChecksumCRC32, crc32Base64([]byte(body)))
	}

	got, data := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/file.txt"), ChecksumMode: types.ChecksumModeEnabled})
	if data != body {
		t.Fatalf("got %d bytes, want %d", len(data), len(body))
	}
	for name, pair := range map[string][2]string{
		"ETag":                {aws.ToString(got.ETag), sum},
		"Content-Type":        {aws.ToString(got.ContentType), "text/plain"},
		"Content-Disposition": {aws.ToString(got.ContentDisposition), `attachment; filename="f.txt"`},
		"Cache-Control":       {aws.ToString(got.CacheControl), "max-age=60"},
		"Content-Language":    {aws.ToString(got.ContentLanguage), "en"},
		"CRC32":               {aws.ToString(got.ChecksumCRC32), crc32Base64([]byte(body))},
		"meta color":          {got.Metadata["color"], "blue"},
		"meta owner-name":     {got.Metadata["owner-name"], "ada"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("GET %s %q, want %q", name, pair[0], pair[1])
		}
	}
	if got.LastModified == nil || time.Since(*got.LastModified) > time.Minute {
		t.Errorf("Last-Modified %v, want about now", got.LastModified)
	}
	if aws.ToInt64(got.ContentLength) != int64(len(body)) {
		t.Errorf("Content-Length %d, want %d", aws.ToInt64(got.ContentLength), len(body))
	}

	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/file.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ETag) != sum || aws.ToInt64(head.ContentLength) != int64(len(body)) || head.Metadata["color"] != "blue" {
		t.Errorf("HEAD: ETag %s, length %d, metadata %v", aws.ToString(head.ETag), aws.ToInt64(head.ContentLength), head.Metadata)
	}
	if head.ChecksumCRC32 != nil {
		t.Errorf("HEAD without checksum mode gave CRC32 %s", *head.ChecksumCRC32)
	}

	// SHA-256 asked for explicitly.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("bkt"), Key: aws.String("sha"), Body: strings.NewReader("hashed"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}); err != nil {
		t.Fatal(err)
	}
	wantSHA := sha256.Sum256([]byte("hashed"))
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("sha"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(head.ChecksumSHA256), base64.StdEncoding.EncodeToString(wantSHA[:]); got != want {
		t.Errorf("SHA256 %q, want %q", got, want)
	}

	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/file.txt")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/file.txt")})
	wantCode(t, err, "NoSuchKey")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bkt"), Key: aws.String("never")}); err != nil {
		t.Errorf("deleting a missing key: %v, want 204 as S3", err)
	}
}

func TestRanges(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	mustBucket(t, c, "bkt")
	mustPut(t, c, "bkt", "k", "0123456789")
	for _, tc := range []struct {
		rng, want, contentRange string
	}{
		{"bytes=2-5", "2345", "bytes 2-5/10"},
		{"bytes=7-", "789", "bytes 7-9/10"},
		{"bytes=-3", "789", "bytes 7-9/10"},
		{"bytes=8-100", "89", "bytes 8-9/10"},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			out, data := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Range: aws.String(tc.rng)})
			if data != tc.want || aws.ToString(out.ContentRange) != tc.contentRange {
				t.Errorf("got %q, %s; want %q, %s", data, aws.ToString(out.ContentRange), tc.want, tc.contentRange)
			}
		})
	}
	_, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Range: aws.String("bytes=10-")})
	wantCode(t, err, "InvalidRange")
}

func TestConditionalGet(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	mustBucket(t, c, "bkt")
	etag := aws.ToString(mustPut(t, c, "bkt", "k", "v1").ETag)
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		in     s3.GetObjectInput
		status int
	}{
		{"if-match", s3.GetObjectInput{IfMatch: aws.String(etag)}, 200},
		{"if-match other", s3.GetObjectInput{IfMatch: aws.String(`"0000"`)}, 412},
		{"if-none-match", s3.GetObjectInput{IfNoneMatch: aws.String(etag)}, 304},
		{"if-none-match other", s3.GetObjectInput{IfNoneMatch: aws.String(`"0000"`)}, 200},
		{"if-modified-since past", s3.GetObjectInput{IfModifiedSince: &past}, 200},
		{"if-modified-since future", s3.GetObjectInput{IfModifiedSince: &future}, 304},
		{"if-unmodified-since past", s3.GetObjectInput{IfUnmodifiedSince: &past}, 412},
		{"if-unmodified-since future", s3.GetObjectInput{IfUnmodifiedSince: &future}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Bucket, in.Key = aws.String("bkt"), aws.String("k")
			out, err := c.GetObject(context.Background(), &in)
			if tc.status == 200 {
				if err != nil {
					t.Fatal(err)
				}
				out.Body.Close()
				return
			}
			wantStatus(t, err, tc.status)
			if tc.status == 412 {
				wantCode(t, err, "PreconditionFailed")
			}
		})
	}
}

// putMany stores keys straight into the object store: listing is what is
// tested, and 2,500 signed PUTs under the race detector take long.
func putMany(t *testing.T, ts *testServer, bucket string, keys []string) {
	t.Helper()
	for _, k := range keys {
		if _, err := ts.objects.Put(context.Background(), bucket, k, strings.NewReader(k), objects.ObjectMeta{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListObjectsV2Paging(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	// Every tenth key in one of 25 directories of 10.
	var keys, top, dirs []string
	for i := range 2500 {
		k := fmt.Sprintf("k%05d", i*7%2500)
		if i%10 == 0 {
			d := fmt.Sprintf("g%03d/", i/100)
			k = d + k
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		} else {
			top = append(top, k)
		}
		keys = append(keys, k)
	}
	putMany(t, ts, "bkt", keys)
	slices.Sort(keys)
	slices.Sort(top)

	list := func(in *s3.ListObjectsV2Input) (keys, prefixes []string, pages int) {
		t.Helper()
		p := s3.NewListObjectsV2Paginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if got := int(aws.ToInt32(out.KeyCount)); got != len(out.Contents)+len(out.CommonPrefixes) {
				t.Errorf("page %d: KeyCount %d, %d keys and %d prefixes", pages, got, len(out.Contents), len(out.CommonPrefixes))
			}
			for _, o := range out.Contents {
				keys = append(keys, *o.Key)
			}
			for _, cp := range out.CommonPrefixes {
				prefixes = append(prefixes, *cp.Prefix)
			}
		}
		return keys, prefixes, pages
	}
	listed, _, pages := list(&s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	if pages != 3 || !slices.Equal(listed, keys) {
		t.Errorf("%d pages, %d keys; want 3 pages and every key once, in order", pages, len(listed))
	}
	listed, prefixes, pages := list(&s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(300)})
	if pages != 8 || !slices.Equal(listed, top) || !slices.Equal(prefixes, dirs) {
		t.Errorf("delimited: %d pages, %d keys, prefixes %q; want 8 pages, %d keys, %q", pages, len(listed), prefixes, len(top), dirs)
	}

	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), StartAfter: aws.String("k02495"), MaxKeys: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.Contents); n != 4 || *out.Contents[0].Key != "k02496" || aws.ToBool(out.IsTruncated) {
		t.Errorf("start-after: %d keys, truncated %v", n, aws.ToBool(out.IsTruncated))
	}
}

func TestListObjectsDelimiter(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	putMany(t, ts, "bkt", []string{
		"photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/d.jpg",
		"photos/e.jpg", "readme", "zeta/1",
	})
	// One entry a page, so every continuation token is used.
	var got []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
		Bucket: aws.String("bkt"), Prefix: aws.String("photos/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range out.CommonPrefixes {
			got = append(got, "prefix "+*cp.Prefix)
		}
		for _, o := range out.Contents {
			got = append(got, *o.Key)
		}
	}
	want := []string{"prefix photos/2024/", "prefix photos/2025/", "photos/d.jpg", "photos/e.jpg"}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}

	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CommonPrefixes) != 2 || len(out.Contents) != 1 || aws.ToInt32(out.KeyCount) != 3 {
		t.Errorf("top level: %d prefixes, %d keys, KeyCount %d; want 2, 1, 3", len(out.CommonPrefixes), len(out.Contents), aws.ToInt32(out.KeyCount))
	}
}

func TestListObjectsV1Marker(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("key-%02d", i))
	}
	putMany(t, ts, "bkt", keys)

	var listed []string
	marker := ""
	for range 10 {
		out, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("bkt"), Marker: aws.String(marker), MaxKeys: aws.Int32(10)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			listed = append(listed, *o.Key)
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		marker = aws.ToString(out.NextMarker)
	}
	if !slices.Equal(listed, keys) {
		t.Errorf("listed %q, want %q", listed, keys)
	}
}

func TestCopyObject(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "src")
	mustBucket(t, c, "dst")
	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("src"), Key: aws.String("a b+c"), Body: strings.NewReader("payload"),
		ContentType: aws.String("text/plain"), Metadata: map[string]string{"v": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}

	out, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("dst"), Key: aws.String("copy"), CopySource: aws.String("src/a%20b%2Bc"),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"v": "2"},
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.CopyObjectResult.ETag) != aws.ToString(put.ETag) {
		t.Errorf("copy ETag %s, want the source's %s", aws.ToString(out.CopyObjectResult.ETag), aws.ToString(put.ETag))
	}
	got, data := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("dst"), Key: aws.String("copy")})
	if data != "payload" || got.Metadata["v"] != "2" || aws.ToString(got.ContentType) != "application/json" {
		t.Errorf("REPLACE copy: %q, metadata %v, type %s", data, got.Metadata, aws.ToString(got.ContentType))
	}

	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("dst"), Key: aws.String("kept"), CopySource: aws.String("src/a%20b%2Bc"),
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("dst"), Key: aws.String("kept")})
	if got.Metadata["v"] != "1" || aws.ToString(got.ContentType) != "text/plain" {
		t.Errorf("COPY copy: metadata %v, type %s; want the source's", got.Metadata, aws.ToString(got.ContentType))
	}

	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("dst"), Key: aws.String("cond"), CopySource: aws.String("src/a%20b%2Bc"),
		CopySourceIfMatch: aws.String(`"0000"`),
	})
	wantCode(t, err, "PreconditionFailed")
	wantNoObject(t, c, "dst", "cond")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("src"), Key: aws.String("a b+c"), CopySource: aws.String("src/a%20b%2Bc")})
	wantCode(t, err, "InvalidRequest")
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("x"), CopySource: aws.String("src/missing")})
	wantCode(t, err, "NoSuchKey")
}

func TestDeleteObjects(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	for _, k := range []string{"a", "bkt", "c", "keep"} {
		mustPut(t, c, "bkt", k, k)
	}
	del := func(quiet bool, keys ...string) *s3.DeleteObjectsOutput {
		t.Helper()
		var ids []types.ObjectIdentifier
		for _, k := range keys {
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(k)})
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(quiet)}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := del(false, "a", "bkt", "missing")
	var deleted []string
	for _, d := range out.Deleted {
		deleted = append(deleted, *d.Key)
	}
	if want := []string{"a", "bkt", "missing"}; !slices.Equal(deleted, want) || len(out.Errors) != 0 {
		t.Errorf("deleted %q, errors %v; want %q", deleted, out.Errors, want)
	}
	if out := del(true, "c"); len(out.Deleted) != 0 || len(out.Errors) != 0 {
		t.Errorf("quiet: %d deleted, %d errors listed, want none", len(out.Deleted), len(out.Errors))
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || *list.Contents[0].Key != "keep" {
		t.Errorf("left %d keys, want only keep", len(list.Contents))
	}
}

func TestPresigned(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	presign := s3.NewPresignClient(c)

	put, err := presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("up")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(put.Method, put.URL, strings.NewReader("from a browser"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %s", resp.Status)
	}

	get, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String("bkt"), Key: aws.String("up"), ResponseContentType: aws.String("text/x-test"),
	}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = ts.Client().Get(get.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "from a browser" || resp.Header.Get("Content-Type") != "text/x-test" {
		t.Errorf("presigned GET: %s %q, type %s", resp.Status, body, resp.Header.Get("Content-Type"))
	}

	ts.skew.Store(int64(2 * time.Minute))
	resp, err = ts.Client().Get(get.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !bytes.Contains(body, []byte("<Code>AccessDenied</Code><Message>Request has expired</Message>")) {
		t.Errorf("expired presigned GET: %s %s", resp.Status, body)
	}
}

func TestErrors(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) { testErrors(t, tls) })
	}
}

func testErrors(t *testing.T, tls bool) {
	ts := newTestServer(t, tls, 1000)
	c := ts.good()
	ctx := context.Background()
	mustBucket(t, c, "bkt")
	put := func(c *s3.Client, key string, in s3.PutObjectInput) error {
		in.Bucket, in.Key = aws.String("bkt"), aws.String(key)
		if in.Body == nil {
			in.Body = strings.NewReader("some bytes")
		}
		_, err := c.PutObject(ctx, &in)
		return err
	}
	for _, tc := range []struct {
		name, code string
		err        error
	}{
		{"SignatureDoesNotMatch", "SignatureDoesNotMatch", put(ts.client(testKeyID, "not the secret"), "sig", s3.PutObjectInput{})},
		{"InvalidAccessKeyId", "InvalidAccessKeyId", put(ts.client("WISPUNKNOWNKEY000000", testSecret), "akid", s3.PutObjectInput{})},
		{"BadDigest", "BadDigest", put(c, "crc", s3.PutObjectInput{ChecksumCRC32: aws.String(crc32Base64([]byte("other bytes")))})},
		{"EntityTooLarge", "EntityTooLarge", put(c, "big", s3.PutObjectInput{Body: bytes.NewReader(make([]byte, 1001))})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.err, tc.code)
		})
	}
	for _, key := range []string{"sig", "akid", "crc", "big"} {
		wantNoObject(t, c, "bkt", key)
	}
	if tls {
		// A body of unknown length comes aws-chunked: held to the bound as it streams.
		err := put(c, "bigstream", s3.PutObjectInput{Body: io.MultiReader(bytes.NewReader(make([]byte, 1001)))})
		wantCode(t, err, "EntityTooLarge")
		wantNoObject(t, c, "bkt", "bigstream")
	}

	_, err := c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("bkt")})
	wantCode(t, err, "NotImplemented")

	// Anonymous: AccessDenied, as S3's XML with a request id.
	resp, err := ts.Client().Get(ts.URL + "/bkt/k")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Amz-Request-Id")
	if resp.StatusCode != 403 || id == "" ||
		!bytes.Contains(body, []byte("<Code>AccessDenied</Code>")) ||
		!bytes.Contains(body, []byte("<Resource>/bkt/k</Resource><RequestId>"+id+"</RequestId>")) {
		t.Errorf("anonymous GET: %s, request id %q, %s", resp.Status, id, body)
	}
}

func md5Sum(s string) [16]byte { return md5.Sum([]byte(s)) }

// signedRequest is a request signed as aws-sdk-go-v2 signs S3's, its
// payload UNSIGNED-PAYLOAD, for what the SDK will not send.
func (ts *testServer) signedRequest(t *testing.T, method, path string, body io.Reader, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil && req.ContentLength == 0 {
		req.ContentLength = -1 // not a bytes or strings reader: chunked
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func wantXMLError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || !bytes.Contains(body, []byte("<Code>"+code+"</Code>")) {
		t.Errorf("%s %s\nwant %d %s", resp.Status, body, status, code)
	}
}

func TestRequestErrors(t *testing.T) {
	ts := newTestServer(t, false, 0)
	c := ts.good()
	mustBucket(t, c, "bkt")

	resp := ts.signedRequest(t, http.MethodPut, "/bkt/nolength", io.MultiReader(strings.NewReader("data")), nil)
	wantXMLError(t, resp, http.StatusLengthRequired, "MissingContentLength")
	wantNoObject(t, c, "bkt", "nolength")

	del := `<Delete><Object><Key>k</Key></Object></Delete>`
	resp = ts.signedRequest(t, http.MethodPost, "/bkt?delete", strings.NewReader(del), nil)
	wantXMLError(t, resp, http.StatusBadRequest, "InvalidRequest")
	resp = ts.signedRequest(t, http.MethodPost, "/bkt?delete", strings.NewReader(del), http.Header{"Content-Md5": {"AAAAAAAAAAAAAAAAAAAAAA=="}})
	wantXMLError(t, resp, http.StatusBadRequest, "BadDigest")
	resp = ts.signedRequest(t, http.MethodPost, "/bkt?delete", strings.NewReader("<Delete>"), http.Header{"Content-Md5": {md5Base64("<Delete>")}})
	wantXMLError(t, resp, http.StatusBadRequest, "MalformedXML")

	resp = ts.signedRequest(t, http.MethodPut, "/bkt/meta", strings.NewReader("x"), http.Header{"X-Amz-Meta-Big": {strings.Repeat("m", 2100)}})
	wantXMLError(t, resp, http.StatusBadRequest, "MetadataTooLarge")
	wantNoObject(t, c, "bkt", "meta")

	ts.skew.Store(int64(20 * time.Minute))
	_, err := c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("bkt")})
	wantStatus(t, err, http.StatusForbidden)
	_, err = c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	wantCode(t, err, "RequestTimeTooSkewed")
}

func md5Base64(s string) string {
	sum := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}
