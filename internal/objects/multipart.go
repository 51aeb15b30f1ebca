package objects

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// Errors of multipart uploads, as S3 names them.
var (
	ErrNoSuchUpload = errors.New("objects: no such upload")
	// ErrInvalidPart: a part Complete names was not uploaded, or has
	// another ETag.
	ErrInvalidPart = errors.New("objects: invalid part")
	// ErrInvalidPartOrder: Complete's parts are not in ascending order.
	ErrInvalidPartOrder = errors.New("objects: parts not in ascending order")
	// ErrEntityTooSmall: a part but the last is under Config.MinPartSize.
	ErrEntityTooSmall = errors.New("objects: part too small")
	// ErrInvalidPartNumber: a part number outside 1 to MaxParts.
	ErrInvalidPartNumber = errors.New("objects: part number out of range")
)

// Multipart bounds and defaults, S3's.
const (
	DefaultMinPartSize  = 5 << 20
	DefaultUploadMaxAge = 7 * 24 * time.Hour
	MaxParts            = 10000
	MaxMultipartSize    = 5 << 40
)

// Layout, in the bucket's KV wisp_objup_<id>: the upload's record under
// its id, each part's under <id>.<number>. A part's chunks are the
// version <id>.<tag> of the bucket's data stream, a fresh tag for each
// upload of the part, so that one purge of subj.<id>.> drops a whole
// upload, and a completed object names its parts' versions rather than
// copying them.

// uploadRecord is a multipart upload in flight.
type uploadRecord struct {
	Key       string     `json:"key"`
	Initiated time.Time  `json:"init"`
	Meta      ObjectMeta `json:"meta"`
	// Closing is set by Complete and Abort before they read the parts: a
	// part written after sees it and leaves its cleanup to them.
	Closing bool `json:"closing,omitempty"`
}

// partRecord is an uploaded part.
type partRecord struct {
	Tag      string    `json:"t"`
	Size     int64     `json:"size"`
	Chunk    int       `json:"chunk"`
	ETag     string    `json:"etag"`
	Modified time.Time `json:"mod"`
	// Old is the tag this upload of the part replaced, until the upload
	// ends: whoever ends it drops it unless the object uses it.
	Old string `json:"old,omitempty"`
}

// UploadInfo describes a multipart upload in flight.
type UploadInfo struct {
	Key       string
	UploadID  string
	Initiated time.Time
	Meta      ObjectMeta
}

// PartInfo describes an uploaded part.
type PartInfo struct {
	Number int
	Size   int64
	// ETag is the hex MD5 of the part's bytes.
	ETag     string
	Modified time.Time
}

// CompletedPart is a part as Complete's caller names it.
type CompletedPart struct {
	Number int
	ETag   string
}

func partKey(uploadID string, n int) string { return uploadID + "." + strconv.Itoa(n) }

// CreateUpload begins a multipart upload of key; meta is the object's.
func (s *Store) CreateUpload(ctx context.Context, bucketName, key string, meta ObjectMeta) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if err := s.st.Writable(); err != nil {
		return "", fmt.Errorf("objects: %w", err)
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return "", err
	}
	id := rand.Text()
	data, err := json.Marshal(uploadRecord{Key: key, Initiated: s.now().UTC().Truncate(time.Millisecond), Meta: meta})
	if err != nil {
		return "", err
	}
	if _, err := b.uploads.Create(ctx, id, data); err != nil {
		return "", s.gone(bucketName, b, full(fmt.Errorf("objects: create upload: %w", err)))
	}
	return id, nil
}

// upload reads an upload's record; ErrNoSuchUpload when it is not there
// or is another key's.
func (b *bucket) upload(ctx context.Context, id, key string) (uploadRecord, uint64, error) {
	var up uploadRecord
	if id == "" || strings.ContainsAny(id, ".*> ") {
		return up, 0, ErrNoSuchUpload
	}
	entry, err := b.uploads.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return up, 0, ErrNoSuchUpload
	}
	if err != nil {
		return up, 0, b.s.lost(fmt.Errorf("objects: read upload: %w", err))
	}
	if err := json.Unmarshal(entry.Value(), &up); err != nil {
		return up, 0, fmt.Errorf("objects: upload %s: %w", id, err)
	}
	if key != "" && up.Key != key {
		return up, 0, ErrNoSuchUpload
	}
	return up, entry.Revision(), nil
}

// part reads a part's record.
func (b *bucket) part(ctx context.Context, pkey string) (partRecord, uint64, error) {
	var p partRecord
	entry, err := b.uploads.Get(ctx, pkey)
	if err != nil {
		return p, 0, err
	}
	if err := json.Unmarshal(entry.Value(), &p); err != nil {
		return p, 0, fmt.Errorf("objects: part %s: %w", pkey, err)
	}
	return p, entry.Revision(), nil
}

// PutPart stores part n of an upload from r, one chunk in memory at a
// time, replacing an earlier upload of the same number.
func (s *Store) PutPart(ctx context.Context, bucketName, key, uploadID string, n int, r io.Reader) (PartInfo, error) {
	if n < 1 || n > MaxParts {
		return PartInfo{}, ErrInvalidPartNumber
	}
	if err := s.st.Writable(); err != nil {
		return PartInfo{}, fmt.Errorf("objects: %w", err)
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return PartInfo{}, err
	}
	if up, _, err := b.upload(ctx, uploadID, key); err != nil || up.Closing {
		return PartInfo{}, cmp.Or(err, ErrNoSuchUpload)
	}
	p := partRecord{Tag: rand.Text()[:10], Chunk: s.cfg.ChunkSize}
	version := uploadID + "." + p.Tag
	p.Size, p.ETag, err = s.writeChunks(ctx, bucketName, b, version, r, s.cfg.MaxObjectSize)
	if err != nil {
		return PartInfo{}, err
	}
	p.Modified = s.now().UTC().Truncate(time.Millisecond)
	pkey := partKey(uploadID, n)
	rev, err := b.swapPart(ctx, pkey, &p)
	if err != nil {
		return PartInfo{}, b.abandon(version, s.gone(bucketName, b, full(err)))
	}
	info := PartInfo{Number: n, Size: p.Size, ETag: p.ETag, Modified: p.Modified}
	// A Complete or Abort may be ending the upload: it cleans up the parts
	// it lists, and this one may have come after its listing.
	for range 100 {
		up, _, err := b.upload(ctx, uploadID, key)
		switch {
		case err == nil && !up.Closing:
			// No Complete has read the parts since the swap, nor can one
			// read the replaced part now.
			if p.Old != "" {
				if err := b.purge(ctx, uploadID+"."+p.Old); err != nil {
					s.log.Warn("objects: replaced part's chunks left", "bucket", bucketName, "err", err)
				}
			}
			return info, nil
		case errors.Is(err, ErrNoSuchUpload):
			b.dropLatePart(ctx, key, uploadID, pkey, rev)
			return info, nil
		case err != nil:
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return info, nil
}

// swapPart writes p under pkey, setting p.Old to the tag it replaces,
// and returns the revision written.
func (b *bucket) swapPart(ctx context.Context, pkey string, p *partRecord) (uint64, error) {
	for range 10 {
		was, rev, err := b.part(ctx, pkey)
		var value []byte
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			p.Old = ""
			if value, err = json.Marshal(p); err == nil {
				rev, err = b.uploads.Create(ctx, pkey, value)
			}
		case err != nil:
			return 0, err
		default:
			p.Old = was.Tag
			if value, err = json.Marshal(p); err == nil {
				rev, err = b.uploads.Update(ctx, pkey, value, rev)
			}
		}
		if err == nil {
			return rev, nil
		}
		if !store.IsConflict(err) {
			return 0, fmt.Errorf("objects: write part: %w", err)
		}
	}
	return 0, errors.New("objects: the part kept changing under a put")
}

// dropLatePart cleans up after a part written while its upload ended:
// the part's record, if still the one written (rev), and its tags'
// chunks unless the completed object uses them.
func (b *bucket) dropLatePart(ctx context.Context, key, uploadID, pkey string, rev uint64) {
	p, now, err := b.part(ctx, pkey)
	if err != nil || now != rev {
		return // the upload's end dropped it, or another put owns it
	}
	used := b.usedTags(ctx, key, uploadID)
	for _, tag := range []string{p.Tag, p.Old} {
		if tag != "" && !used[tag] {
			if err := b.purge(ctx, uploadID+"."+tag); err != nil {
				b.s.log.Warn("objects: late part's chunks left", "err", err)
			}
		}
	}
	if err := b.uploads.Delete(ctx, pkey, jetstream.LastRevision(rev)); err != nil {
		b.s.log.Warn("objects: late part's record left", "err", err)
	}
}

// usedTags are the part tags of key's object if it was completed from
// uploadID.
func (b *bucket) usedTags(ctx context.Context, key, uploadID string) map[string]bool {
	used := map[string]bool{}
	rec, _, err := b.record(ctx, keyToken(key))
	if err == nil && rec.Upload == uploadID {
		for _, p := range rec.Parts {
			used[p.Tag] = true
		}
	}
	return used
}

// partNumbers lists an upload's part numbers, ascending.
func (b *bucket) partNumbers(ctx context.Context, uploadID string) ([]int, error) {
	lister, err := b.uploads.ListKeysFiltered(ctx, uploadID+".*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("objects: list parts: %w", err)
	}
	var out []int
	// Reading the keys to the end ends the lister.
	for k := range lister.Keys() {
		if n, err := strconv.Atoi(strings.TrimPrefix(k, uploadID+".")); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil // a lister may repeat a key
}

// ListParts returns up to max of an upload's parts numbered after
// afterPart, ascending, and whether more follow.
func (s *Store) ListParts(ctx context.Context, bucketName, key, uploadID string, afterPart, max int) ([]PartInfo, bool, error) {
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return nil, false, err
	}
	if _, _, err := b.upload(ctx, uploadID, key); err != nil {
		return nil, false, s.gone(bucketName, b, err)
	}
	numbers, err := b.partNumbers(ctx, uploadID)
	if err != nil {
		return nil, false, s.gone(bucketName, b, err)
	}
	var out []PartInfo
	for _, n := range numbers {
		if n <= afterPart {
			continue
		}
		if len(out) >= max {
			return out, true, nil
		}
		p, _, err := b.part(ctx, partKey(uploadID, n))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // the upload ended since the listing
		}
		if err != nil {
			return nil, false, fmt.Errorf("objects: read part: %w", err)
		}
		out = append(out, PartInfo{Number: n, Size: p.Size, ETag: p.ETag, Modified: p.Modified})
	}
	return out, false, nil
}

// ListUploads returns up to max uploads in flight whose keys start with
// prefix, in S3's order (by key, then by initiation), after the marker
// (keyMarker alone: after every upload of that key; with uploadIDMarker:
// after that upload), and whether more follow. It reads every upload's
// record: uploads in flight are few beside objects.
func (s *Store) ListUploads(ctx context.Context, bucketName, prefix, keyMarker, uploadIDMarker string, max int) ([]UploadInfo, bool, error) {
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return nil, false, err
	}
	all, err := b.allUploads(ctx)
	if err != nil {
		return nil, false, s.gone(bucketName, b, err)
	}
	var marker *UploadInfo
	if uploadIDMarker != "" {
		i := slices.IndexFunc(all, func(u UploadInfo) bool { return u.UploadID == uploadIDMarker && u.Key == keyMarker })
		if i >= 0 {
			marker = &all[i]
		}
	}
	var out []UploadInfo
	for _, u := range all {
		if !strings.HasPrefix(u.Key, prefix) {
			continue
		}
		if marker != nil && compareUploads(u, *marker) <= 0 || marker == nil && keyMarker != "" && u.Key <= keyMarker {
			continue
		}
		if len(out) >= max {
			return out, true, nil
		}
		out = append(out, u)
	}
	return out, false, nil
}

func compareUploads(a, b UploadInfo) int {
	return cmp.Or(strings.Compare(a.Key, b.Key), a.Initiated.Compare(b.Initiated), strings.Compare(a.UploadID, b.UploadID))
}

// allUploads reads every upload's record, in S3's order.
func (b *bucket) allUploads(ctx context.Context) ([]UploadInfo, error) {
	lister, err := b.uploads.ListKeysFiltered(ctx, "*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("objects: list uploads: %w", err)
	}
	var ids []string
	for id := range lister.Keys() {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []UploadInfo
	for _, id := range slices.Compact(ids) {
		up, _, err := b.upload(ctx, id, "")
		if errors.Is(err, ErrNoSuchUpload) {
			continue // ended since it was listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, UploadInfo{Key: up.Key, UploadID: id, Initiated: up.Initiated, Meta: up.Meta})
	}
	slices.SortFunc(out, compareUploads)
	return out, nil
}
