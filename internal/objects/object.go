package objects

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// bucket is a bucket's streams, as this node holds them open.
type bucket struct {
	s          *Store
	id         string
	meta       jetstream.KeyValue // object records by encoded key
	metaStream jetstream.Stream   // the stream under meta, for its last sequence
	uploads    jetstream.KeyValue // multipart uploads and their parts (multipart.go)
	data       jetstream.Stream   // chunks: subj.<version>.<n>
	subj       string

	mu sync.Mutex
	// idx is the key index, made on the first listing; guarded by mu.
	idx *index
	// stop ends idx's follower; guarded by mu.
	stop func()
}

// ObjectMeta is what the caller stores beside an object's bytes.
type ObjectMeta struct {
	ContentType        string `json:"type,omitempty"`
	ContentEncoding    string `json:"enc,omitempty"`
	ContentDisposition string `json:"disp,omitempty"`
	ContentLanguage    string `json:"lang,omitempty"`
	CacheControl       string `json:"cache,omitempty"`
	Expires            string `json:"expires,omitempty"`
	// User is the x-amz-meta-* pairs, names as the caller gives them.
	User map[string]string `json:"user,omitempty"`
	// Checksums by algorithm (CRC32, SHA256, …), as the caller computed
	// and verified them; stored and returned, not checked here.
	Checksums map[string]string `json:"sums,omitempty"`
	// ChecksumAlgorithm is the one a multipart upload was begun with
	// (x-amz-checksum-algorithm), which its parts carry.
	ChecksumAlgorithm string `json:"alg,omitempty"`
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag is the hex MD5 of the bytes, without S3's quotes.
	ETag     string
	Modified time.Time
	Meta     ObjectMeta
}

// record is an object's entry in its bucket's metadata, under the
// encoded key. Version names the chunk subjects, so that an overwrite
// writes beside the old chunks, not over them.
type record struct {
	Version  string     `json:"v"`
	Size     int64      `json:"size"`
	Chunk    int        `json:"chunk"` // chunk size the object was written with
	ETag     string     `json:"etag"`
	Modified time.Time  `json:"mod"`
	Meta     ObjectMeta `json:"meta"`
	// Upload is set on an object completed from a multipart upload: its
	// bytes are the chunks of Parts in order, each written as a version
	// of its own under the upload (subj.<Upload>.<Tag>.<n>), so that
	// completing joins them without copying. Version is then empty.
	Upload string    `json:"up,omitempty"`
	Parts  []partRef `json:"parts,omitempty"`
}

// partRef is one part of a multipart object.
type partRef struct {
	Tag  string `json:"t"`
	Size int64  `json:"s"`
	// Chunk is the part's chunk size when it is not the record's.
	Chunk int `json:"c,omitempty"`
}

// chunks names what purge drops to free the object's bytes: its version,
// or its upload, whose subjects hold every part.
func (r record) chunks() string {
	if r.Upload != "" {
		return r.Upload
	}
	return r.Version
}

// segment is a run of one version's chunks.
type segment struct {
	version string
	size    int64
	chunk   int64
}

// segments are the runs an object's bytes are read from, in order.
func (r record) segments() []segment {
	if r.Upload == "" {
		return []segment{{version: r.Version, size: r.Size, chunk: int64(r.Chunk)}}
	}
	out := make([]segment, 0, len(r.Parts))
	for _, p := range r.Parts {
		chunk := p.Chunk
		if chunk == 0 {
			chunk = r.Chunk
		}
		out = append(out, segment{version: r.Upload + "." + p.Tag, size: p.Size, chunk: int64(chunk)})
	}
	return out
}

func (r record) info(key string) ObjectInfo {
	return ObjectInfo{Key: key, Size: r.Size, ETag: r.ETag, Modified: r.Modified, Meta: r.Meta}
}

// keyToken encodes a key as a KV key (a subject): base64url keeps every
// byte string valid and unambiguous.
func keyToken(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

func tokenKey(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return string(b), err
}

func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("objects: a key is 1 to %d bytes", MaxKeyLen)
	}
	return nil
}

func (b *bucket) chunkSubject(version string, n int64) string {
	return b.subj + "." + version + "." + strconv.FormatInt(n, 10)
}

// purge drops a version's chunks.
func (b *bucket) purge(ctx context.Context, version string) error {
	err := b.data.Purge(ctx, jetstream.WithPurgeSubject(b.subj+"."+version+".>"))
	if err != nil {
		return fmt.Errorf("objects: drop chunks of %s: %w", version, err)
	}
	return nil
}

// Put stores the bytes r gives under key, replacing what was there, one
// chunk in memory at a time. Readers of the old version finish it or get
// ErrChanged; the new one is seen whole once Put returns.
func (s *Store) Put(ctx context.Context, bucketName, key string, r io.Reader, meta ObjectMeta) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := s.st.Writable(); err != nil {
		return ObjectInfo{}, fmt.Errorf("objects: %w", err)
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return ObjectInfo{}, err
	}
	rec := record{Version: rand.Text(), Chunk: s.cfg.ChunkSize, Meta: meta}
	rec.Size, rec.ETag, err = s.writeChunks(ctx, bucketName, b, rec.Version, r, s.cfg.MaxObjectSize)
	if err != nil {
		return ObjectInfo{}, err
	}
	rec.Modified = s.now().UTC().Truncate(time.Millisecond)
	value, err := json.Marshal(rec)
	if err != nil {
		return ObjectInfo{}, b.abandon(rec.Version, err)
	}
	old, err := b.swap(ctx, keyToken(key), value)
	if err != nil {
		return ObjectInfo{}, b.abandon(rec.Version, s.gone(bucketName, b, full(err)))
	}
	if old != "" {
		if err := b.purge(ctx, old); err != nil {
			// The new version is in place; the old chunks are only space.
			s.log.Warn("objects: overwritten chunks left", "bucket", bucketName, "err", err)
		}
	}
	return rec.info(key), nil
}

// writeChunks streams r into version's chunks, one chunk in memory at a
// time, and returns its size and hex MD5. On failure it drops what it
// wrote.
func (s *Store) writeChunks(ctx context.Context, bucketName string, b *bucket, version string, r io.Reader, limit int64) (int64, string, error) {
	var size int64
	sum := md5.New()
	bufp, _ := s.chunks.Get().(*[]byte)
	if bufp == nil {
		buf := make([]byte, s.cfg.ChunkSize)
		bufp = &buf
	}
	// Publish has copied each chunk out by the time it returns.
	defer s.chunks.Put(bufp)
	buf := *bufp
	for n := int64(0); ; n++ {
		got, rerr := io.ReadFull(r, buf)
		if got > 0 {
			if size+int64(got) > limit {
				return 0, "", b.abandon(version, ErrTooLarge)
			}
			sum.Write(buf[:got])
			if _, err := s.js.Publish(ctx, b.chunkSubject(version, n), buf[:got]); err != nil {
				return 0, "", b.abandon(version, s.gone(bucketName, b, full(err)))
			}
			size += int64(got)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return 0, "", b.abandon(version, fmt.Errorf("objects: read body: %w", rerr))
		}
	}
	return size, hex.EncodeToString(sum.Sum(nil)), nil
}

// abandon drops the chunks a failed Put wrote, and returns its error.
func (b *bucket) abandon(version string, err error) error {
	// Not the Put's ctx: it may be why the Put failed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if perr := b.purge(ctx, version); perr != nil && !errors.Is(b.s.lost(perr), ErrNoSuchBucket) {
		b.s.log.Warn("objects: chunks of a failed put left", "err", perr)
	}
	return err
}

// swap writes value under token and returns the version it replaced,
// under optimistic concurrency, so that of two racing overwrites each
// replaced version is dropped by the one Put that replaced it.
func (b *bucket) swap(ctx context.Context, token string, value []byte) (string, error) {
	for range 10 {
		old, rev, err := b.record(ctx, token)
		switch {
		case errors.Is(err, ErrNoSuchKey):
			_, err = b.meta.Create(ctx, token, value)
		case err != nil:
			return "", err
		default:
			_, err = b.meta.Update(ctx, token, value, rev)
		}
		if err == nil {
			return old.chunks(), nil
		}
		if !store.IsConflict(err) {
			return "", fmt.Errorf("objects: write record: %w", err)
		}
	}
	return "", errors.New("objects: the key kept changing under a put")
}

// full names a write refused because the bucket reached its bound.
func full(err error) error {
	if err != nil && (strings.Contains(err.Error(), "maximum bytes exceeded") ||
		strings.Contains(err.Error(), "insufficient storage")) {
		return fmt.Errorf("%w (%w)", ErrBucketFull, err)
	}
	return err
}

// record reads an object's record and its revision.
func (b *bucket) record(ctx context.Context, token string) (record, uint64, error) {
	var rec record
	entry, err := b.meta.Get(ctx, token)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, ErrNoSuchKey
	}
	if err != nil {
		return rec, 0, fmt.Errorf("objects: read record: %w", err)
	}
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("objects: record of %s: %w", token, err)
	}
	return rec, entry.Revision(), nil
}

// Head returns an object's description.
func (s *Store) Head(ctx context.Context, bucketName, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, ErrNoSuchKey
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return ObjectInfo{}, err
	}
	rec, _, err := b.record(ctx, keyToken(key))
	if err != nil {
		return ObjectInfo{}, s.gone(bucketName, b, err)
	}
	return rec.info(key), nil
}

// Delete removes an object; ErrNoSuchKey when there was none.
func (s *Store) Delete(ctx context.Context, bucketName, key string) error {
	if err := checkKey(key); err != nil {
		return ErrNoSuchKey
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return err
	}
	token := keyToken(key)
	for range 10 {
		rec, rev, err := b.record(ctx, token)
		if err != nil {
			return s.gone(bucketName, b, err)
		}
		err = b.meta.Delete(ctx, token, jetstream.LastRevision(rev))
		if store.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("objects: delete record: %w", err)
		}
		return b.purge(ctx, rec.chunks())
	}
	return errors.New("objects: the key kept changing under a delete")
}

// Get returns the object's description and a reader of length bytes
// from offset (length < 0: to the end; a length past the end is cut
// there). An offset past the end is ErrInvalidRange. The reader fetches
// one chunk at a time, and only the chunks the range covers; it reads
// with ctx, so it must be closed before ctx ends.
func (s *Store) Get(ctx context.Context, bucketName, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, ObjectInfo{}, ErrNoSuchKey
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	rec, _, err := b.record(ctx, keyToken(key))
	if err != nil {
		return nil, ObjectInfo{}, s.gone(bucketName, b, err)
	}
	if offset < 0 || offset > rec.Size {
		return nil, rec.info(key), ErrInvalidRange
	}
	if length < 0 || length > rec.Size-offset {
		length = rec.Size - offset
	}
	rd := &reader{ctx: ctx, b: b, segs: rec.segments(), left: length}
	rd.seek(offset)
	return rd, rec.info(key), nil
}

// reader streams a range of an object's segments.
type reader struct {
	// ctx is Get's: io.Reader has no other way to carry it.
	ctx  context.Context
	b    *bucket
	segs []segment
	seg  int   // the segment read from
	next int64 // its chunk to fetch next
	skip int64 // bytes of that chunk before the range
	left int64 // bytes of the range not yet returned
	buf  []byte
	err  error
}

// seek places the reader at offset, which is within the object.
func (r *reader) seek(offset int64) {
	for r.seg < len(r.segs)-1 && offset >= r.segs[r.seg].size {
		offset -= r.segs[r.seg].size
		r.seg++
	}
	r.next, r.skip = offset/r.segs[r.seg].chunk, offset%r.segs[r.seg].chunk
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.buf) == 0 {
		if r.left == 0 {
			return 0, io.EOF
		}
		if err := r.fetch(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.left -= int64(n)
	return n, nil
}

func (r *reader) fetch() error {
	// Past the end of a segment (or an empty one): the next's start.
	for r.next*r.segs[r.seg].chunk >= r.segs[r.seg].size {
		if r.seg == len(r.segs)-1 {
			return io.ErrUnexpectedEOF // left > 0 beyond the segments: a bad record
		}
		r.seg, r.next, r.skip = r.seg+1, 0, 0
	}
	sg := r.segs[r.seg]
	msg, err := r.b.data.GetLastMsgForSubject(r.ctx, r.b.chunkSubject(sg.version, r.next))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ErrChanged
	}
	if err != nil {
		return fmt.Errorf("objects: read chunk: %w", err)
	}
	want := min(sg.chunk, sg.size-r.next*sg.chunk)
	if int64(len(msg.Data)) != want {
		return fmt.Errorf("objects: chunk %d of %s holds %d bytes, not %d", r.next, sg.version, len(msg.Data), want)
	}
	r.buf = msg.Data[r.skip:]
	if int64(len(r.buf)) > r.left {
		r.buf = r.buf[:r.left]
	}
	r.next++
	r.skip = 0
	return nil
}

// Close ends the read; later Reads fail.
func (r *reader) Close() error {
	r.buf, r.err = nil, errors.New("objects: read after close")
	return nil
}
