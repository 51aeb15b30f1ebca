package server_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wisp-dev/wisp/internal/server"
)

// TestS3API: a node started with an S3 listener serves the S3 API there
// to AWS's own client, signing with an access key made through the
// control API; what one node stores, a second node on the same NATS
// serves; without S3Listen the node serves none.
func TestS3API(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := startNode(t, server.Config{DataDir: dir, S3Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:0"})
	if n.S3URL() == "" {
		t.Fatal("no S3 URL on a node with S3Listen")
	}
	key, err := n.c.CreateKey(ctx, "s3 test")
	if err != nil {
		t.Fatal(err)
	}
	c := s3Client(n.S3URL(), key.ID, key.Secret)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("uploads")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	body := strings.Repeat("wisp ", 100_000) // 500 KB: more than one chunk
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("uploads"), Key: aws.String("a/b.txt"),
		Body: strings.NewReader(body), ContentType: aws.String("text/plain")}); err != nil {
		t.Fatalf("put: %v", err)
	}

	// A cluster's nodes share the key file that seals the secrets.
	otherDir := t.TempDir()
	keyFile, err := os.ReadFile(filepath.Join(dir, "keys.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(otherDir, "keys.key"), keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	other := startNode(t, server.Config{DataDir: otherDir, S3Listen: "127.0.0.1:0", NATSURL: n.NATSURL()})
	for _, url := range []string{n.S3URL(), other.S3URL()} {
		got, err := s3Client(url, key.ID, key.Secret).GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String("uploads"), Key: aws.String("a/b.txt")})
		if err != nil {
			t.Fatalf("get from %s: %v", url, err)
		}
		b, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil || !bytes.Equal(b, []byte(body)) || aws.ToString(got.ContentType) != "text/plain" {
			t.Fatalf("get from %s: %d bytes, type %q, %v; want the %d put", url, len(b), aws.ToString(got.ContentType), err, len(body))
		}
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("uploads"), Prefix: aws.String("a/")})
	if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "a/b.txt" {
		t.Fatalf("list: %+v, %v", list, err)
	}

	if plain := startNode(t, server.Config{}); plain.S3URL() != "" {
		t.Errorf("a node without S3Listen serves S3 at %s", plain.S3URL())
	}
}

// s3Client is AWS's S3 client of url, path style, signing with a key.
func s3Client(url, keyID, secret string) *s3.Client {
	os.Unsetenv("AWS_CA_BUNDLE")
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		Retryer:                    aws.NopRetryer{},
	})
}
