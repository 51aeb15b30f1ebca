package objects

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// Errors the S3 API maps onto its own codes.
var (
	ErrNoSuchBucket = errors.New("objects: no such bucket")
	ErrNoSuchKey    = errors.New("objects: no such key")
	ErrBucketExists = errors.New("objects: bucket exists")
	// ErrTooManyBuckets is a new bucket past Config.MaxBuckets.
	ErrTooManyBuckets = errors.New("objects: too many buckets")
	ErrBucketNotEmpty = errors.New("objects: bucket not empty")
	ErrTooLarge       = errors.New("objects: object too large")
	// ErrBucketFull: the bucket's byte limit (Config.BucketBytes) is reached.
	ErrBucketFull = errors.New("objects: bucket full")
	// ErrInvalidRange: a Get's offset is past the object's end.
	ErrInvalidRange = errors.New("objects: range not satisfiable")
	// ErrChanged: the object was overwritten or deleted while it was read.
	ErrChanged = errors.New("objects: object changed while being read")
)

// Defaults of Config.
const (
	DefaultMaxObjectSize = 5 << 30 // S3's largest single PUT
	// DefaultMaxBuckets is S3's own default of an account's buckets at
	// most (raised there on request, as MaxBuckets is here).
	DefaultMaxBuckets = 1_000
	DefaultChunkSize  = 256 << 10
	DefaultMetaBytes  = 1 << 30
	// MaxKeyLen is S3's limit on a key, in bytes.
	MaxKeyLen = 1024
	// maxMetaValue bounds one object's record: S3 allows 2 KB of user
	// metadata; the rest is headers, checksums and a multipart object's
	// parts (about 30 bytes each, MaxParts of them).
	maxMetaValue = 512 << 10
	// maxUploadValue bounds an upload's or a part's record.
	maxUploadValue = 64 << 10
	// chunkHeadroom is what a message needs beside its payload.
	chunkHeadroom = 4 << 10
)

// Config bounds the store. The zero value works.
type Config struct {
	// MaxObjectSize is the largest object Put takes; default 5 GiB.
	MaxObjectSize int64
	// MaxBuckets bounds the buckets (each is two KV buckets and a stream
	// in JetStream, with their files); default 1,000. Nodes of a cluster
	// check it each on their own view, so racing creates may pass it by
	// a few.
	MaxBuckets int
	// ChunkSize is the payload of one chunk message; default 256 KiB, at
	// most the connection's max payload less a little for headers.
	ChunkSize int
	// BucketBytes bounds each bucket's data stream; writes past it fail
	// with ErrBucketFull. Zero or less: no bound of its own (the store's
	// disk reserve still applies).
	BucketBytes int64
	// MetaBytes bounds each bucket's metadata bucket; default 1 GiB.
	MetaBytes int64
	// MinPartSize is the least size of a multipart upload's parts but
	// the last; default S3's 5 MiB.
	MinPartSize int64
	// UploadMaxAge is how long a multipart upload may stay open before
	// SweepUploads aborts it; default 7 days.
	UploadMaxAge time.Duration
	// Replicas of every stream; default 1.
	Replicas int
	Logger   *slog.Logger
}

// Store keeps buckets and their objects in JetStream.
type Store struct {
	st      *store.Store
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	buckets jetstream.KeyValue
	now     func() time.Time

	mu sync.Mutex
	// open holds the handles of buckets used on this node, by name;
	// guarded by mu.
	open map[string]*bucket
	// closed is set by Close; guarded by mu.
	closed bool
	// follows counts the index followers, which end with Close.
	follows sync.WaitGroup
	// chunks holds Put's chunk buffers (*[]byte), so that a small put
	// does not allocate a whole chunk.
	chunks sync.Pool
}

// bucketsBucket holds one record per bucket, keyed by the bucket's id.
const bucketsBucket = "wisp_buckets"

// New opens the store's bucket list, making it if needed.
func New(ctx context.Context, st *store.Store, cfg Config) (*Store, error) {
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = DefaultMaxObjectSize
	}
	if cfg.MaxBuckets <= 0 {
		cfg.MaxBuckets = DefaultMaxBuckets
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if limit := int(st.Conn.MaxPayload()) - chunkHeadroom; cfg.ChunkSize > limit {
		cfg.ChunkSize = limit
	}
	if cfg.MetaBytes <= 0 {
		cfg.MetaBytes = DefaultMetaBytes
	}
	if cfg.MinPartSize <= 0 {
		cfg.MinPartSize = DefaultMinPartSize
	}
	if cfg.UploadMaxAge <= 0 {
		cfg.UploadMaxAge = DefaultUploadMaxAge
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := st.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucketsBucket, Description: "wisp object storage buckets",
		History: 1, Storage: jetstream.FileStorage, MaxBytes: 16 << 20, MaxValueSize: 4 << 10,
		Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("objects: open %s: %w", bucketsBucket, err)
	}
	return &Store{st: st, js: st.JS, cfg: cfg, log: cfg.Logger, buckets: kv, now: time.Now,
		open: map[string]*bucket{}}, nil
}

// Close stops following buckets' listings.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	for name, b := range s.open {
		b.stopIndex()
		delete(s.open, name)
	}
	s.mu.Unlock()
	s.follows.Wait()
}

// BucketInfo describes a bucket.
type BucketInfo struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// bucketID names a bucket in JetStream: a hash, so that any name the
// caller accepts makes a valid stream name and subject token, and the
// same name always finds the same streams.
func bucketID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// CreateBucket makes a bucket.
func (s *Store) CreateBucket(ctx context.Context, name string) error {
	id := bucketID(name)
	if err := s.checkBucketRoom(ctx, id); err != nil {
		return err
	}
	// The streams first: a record is never without them. Streams left
	// by a create that failed after are reused by the next.
	if err := s.ensureStreams(ctx, id); err != nil {
		return err
	}
	data, err := json.Marshal(BucketInfo{Name: name, Created: s.now().UTC()})
	if err != nil {
		return err
	}
	if _, err := s.buckets.Create(ctx, id, data); err != nil {
		if store.IsConflict(err) {
			return ErrBucketExists
		}
		return fmt.Errorf("objects: create bucket: %w", err)
	}
	return nil
}

// checkBucketRoom refuses a new bucket past MaxBuckets; an existing one
// is ErrBucketExists, whatever the count.
func (s *Store) checkBucketRoom(ctx context.Context, id string) error {
	if _, err := s.buckets.Get(ctx, id); err == nil {
		return ErrBucketExists
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("objects: create bucket: %w", err)
	}
	keys, err := s.buckets.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("objects: count buckets: %w", err)
	}
	n := 0
	for range keys.Keys() { // read to the end: that ends the lister
		n++
	}
	if n >= s.cfg.MaxBuckets {
		return fmt.Errorf("%w: %d of %d", ErrTooManyBuckets, n, s.cfg.MaxBuckets)
	}
	return nil
}

func (s *Store) ensureStreams(ctx context.Context, id string) error {
	_, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "wisp_objmeta_" + id, Description: "wisp object records",
		History: 1, Storage: jetstream.FileStorage, MaxBytes: s.cfg.MetaBytes,
		MaxValueSize: maxMetaValue, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("objects: bucket metadata: %w", err)
	}
	_, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "wisp_objup_" + id, Description: "wisp multipart uploads",
		History: 1, Storage: jetstream.FileStorage, MaxBytes: s.cfg.MetaBytes,
		MaxValueSize: maxUploadValue, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("objects: bucket uploads: %w", err)
	}
	_, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "wisp_obj_" + id, Description: "wisp object chunks",
		Subjects: []string{"wisp.obj." + id + ".>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
		MaxBytes: max(s.cfg.BucketBytes, -1), MaxMsgSize: int32(s.cfg.ChunkSize + chunkHeadroom),
		AllowDirect: true, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("objects: bucket data: %w", err)
	}
	return nil
}

// HeadBucket says whether a bucket exists, and when it was made.
func (s *Store) HeadBucket(ctx context.Context, name string) (BucketInfo, error) {
	return s.bucketRecord(ctx, bucketID(name))
}

func (s *Store) bucketRecord(ctx context.Context, id string) (BucketInfo, error) {
	var info BucketInfo
	entry, err := s.buckets.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return info, ErrNoSuchBucket
	}
	if err != nil {
		return info, fmt.Errorf("objects: bucket record: %w", err)
	}
	if err := json.Unmarshal(entry.Value(), &info); err != nil {
		return info, fmt.Errorf("objects: bucket record %s: %w", id, err)
	}
	return info, nil
}

// ListBuckets returns every bucket, by name.
func (s *Store) ListBuckets(ctx context.Context) ([]BucketInfo, error) {
	keys, err := s.buckets.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("objects: list buckets: %w", err)
	}
	var ids []string
	// Reading the keys to the end ends the lister.
	for id := range keys.Keys() {
		ids = append(ids, id)
	}
	var out []BucketInfo
	for _, id := range ids {
		info, err := s.bucketRecord(ctx, id)
		if errors.Is(err, ErrNoSuchBucket) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b BucketInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteBucket deletes a bucket without objects. Multipart uploads in
// flight go with it, as in S3's general purpose buckets.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	b, err := s.bucket(ctx, name)
	if err != nil {
		return err
	}
	idx, err := b.synced(ctx)
	if err != nil {
		return err
	}
	if idx.len() > 0 {
		return ErrBucketNotEmpty
	}
	// The record first, so that no new write finds the bucket; a crash
	// after it leaves empty streams that the next create of the name
	// takes up again.
	if err := s.buckets.Delete(ctx, b.id); err != nil {
		return fmt.Errorf("objects: delete bucket: %w", err)
	}
	s.forget(name, b)
	if err := s.js.DeleteKeyValue(ctx, "wisp_objmeta_"+b.id); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("objects: delete bucket metadata: %w", err)
	}
	if err := s.js.DeleteKeyValue(ctx, "wisp_objup_"+b.id); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("objects: delete bucket uploads: %w", err)
	}
	if err := s.js.DeleteStream(ctx, "wisp_obj_"+b.id); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("objects: delete bucket data: %w", err)
	}
	return nil
}

// bucket returns the handle of an existing bucket.
func (s *Store) bucket(ctx context.Context, name string) (*bucket, error) {
	s.mu.Lock()
	b := s.open[name]
	s.mu.Unlock()
	if b != nil {
		return b, nil
	}
	id := bucketID(name)
	if _, err := s.bucketRecord(ctx, id); err != nil {
		return nil, err
	}
	b, err := s.openStreams(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("objects: store closed")
	}
	if was := s.open[name]; was != nil {
		return was, nil
	}
	s.open[name] = b
	return b, nil
}

func (s *Store) openStreams(ctx context.Context, id string) (*bucket, error) {
	meta, err := s.js.KeyValue(ctx, "wisp_objmeta_"+id)
	if err != nil {
		return nil, s.lost(fmt.Errorf("objects: bucket metadata: %w", err))
	}
	metaStream, err := s.js.Stream(ctx, "KV_wisp_objmeta_"+id)
	if err != nil {
		return nil, s.lost(fmt.Errorf("objects: bucket metadata: %w", err))
	}
	uploads, err := s.js.KeyValue(ctx, "wisp_objup_"+id)
	if err != nil {
		return nil, s.lost(fmt.Errorf("objects: bucket uploads: %w", err))
	}
	data, err := s.js.Stream(ctx, "wisp_obj_"+id)
	if err != nil {
		return nil, s.lost(fmt.Errorf("objects: bucket data: %w", err))
	}
	return &bucket{s: s, id: id, meta: meta, metaStream: metaStream, uploads: uploads, data: data,
		subj: "wisp.obj." + id}, nil
}

// forget drops a bucket's handle, when it was deleted.
func (s *Store) forget(name string, b *bucket) {
	s.mu.Lock()
	if s.open[name] == b {
		delete(s.open, name)
	}
	s.mu.Unlock()
	b.stopIndex()
}

// lost turns the errors of a bucket whose streams are gone (deleted by
// another node) into ErrNoSuchBucket.
func (s *Store) lost(err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w (%w)", ErrNoSuchBucket, err)
	}
	return err
}

// gone is lost for an open bucket: it also drops the handle.
func (s *Store) gone(name string, b *bucket, err error) error {
	err = s.lost(err)
	if errors.Is(err, ErrNoSuchBucket) {
		s.forget(name, b)
	}
	return err
}
