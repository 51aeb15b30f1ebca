package objects

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-dev/wisp/internal/store"
)

// Complete joins an upload's parts, as named, into the object at key,
// replacing what was there, without copying their bytes. Nothing changes
// when it is refused. Readers see the old object or the new one whole. A
// retry of a Complete that finished gets the same object back.
func (s *Store) Complete(ctx context.Context, bucketName, key, uploadID string, parts []CompletedPart) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, ErrNoSuchUpload
	}
	if err := s.st.Writable(); err != nil {
		return ObjectInfo{}, fmt.Errorf("objects: %w", err)
	}
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return ObjectInfo{}, err
	}
	up, rev, err := b.upload(ctx, uploadID, key)
	if errors.Is(err, ErrNoSuchUpload) {
		if rec, _, rerr := b.record(ctx, keyToken(key)); rerr == nil && rec.Upload == uploadID {
			return rec.info(key), nil
		}
	}
	if err != nil {
		return ObjectInfo{}, s.gone(bucketName, b, err)
	}
	if err := checkOrder(parts); err != nil {
		return ObjectInfo{}, err
	}
	// Closed before the parts are read: a part put since then leaves
	// the part it replaced alone, which this may be about to use.
	reopen := func() {}
	if !up.Closing {
		if rev, err = b.setClosing(ctx, uploadID, up, rev, true); err != nil {
			return ObjectInfo{}, err
		}
		reopen = func() {
			if _, err := b.setClosing(context.WithoutCancel(ctx), uploadID, up, rev, false); err != nil {
				s.log.Warn("objects: upload left closed after a refused complete", "bucket", bucketName, "err", err)
			}
		}
	}
	rec, err := b.assemble(ctx, uploadID, up, parts)
	if err != nil {
		reopen()
		return ObjectInfo{}, err
	}
	value, err := json.Marshal(rec)
	if err != nil {
		reopen()
		return ObjectInfo{}, err
	}
	old, err := b.swap(ctx, keyToken(key), value)
	if err != nil {
		reopen()
		return ObjectInfo{}, s.gone(bucketName, b, full(err))
	}
	if old != "" && old != uploadID { // uploadID: a retry after a crash
		if err := b.purge(ctx, old); err != nil {
			s.log.Warn("objects: overwritten chunks left", "bucket", bucketName, "err", err)
		}
	}
	if err := b.finish(ctx, uploadID, b.usedTags(ctx, key, uploadID)); err != nil {
		// The object is whole; SweepUploads ends the upload later.
		s.log.Warn("objects: completed upload left", "bucket", bucketName, "err", err)
	}
	return rec.info(key), nil
}

// checkOrder refuses a part list that is empty, out of range or not
// strictly ascending.
func checkOrder(parts []CompletedPart) error {
	if len(parts) == 0 {
		return fmt.Errorf("%w: no parts", ErrInvalidPart)
	}
	for i, p := range parts {
		if p.Number < 1 || p.Number > MaxParts {
			return fmt.Errorf("%w: part number %d", ErrInvalidPart, p.Number)
		}
		if i > 0 && p.Number <= parts[i-1].Number {
			return ErrInvalidPartOrder
		}
	}
	return nil
}

// setClosing writes the upload's record with Closing set as given, under
// the revision read, and returns the revision written.
func (b *bucket) setClosing(ctx context.Context, uploadID string, up uploadRecord, rev uint64, closing bool) (uint64, error) {
	up.Closing = closing
	value, err := json.Marshal(up)
	if err != nil {
		return 0, err
	}
	rev, err = b.uploads.Update(ctx, uploadID, value, rev)
	if err != nil {
		return 0, fmt.Errorf("objects: the upload changed under its end: %w", err)
	}
	return rev, nil
}

// assemble makes the record of the object the named parts make, S3's
// multipart ETag included.
func (b *bucket) assemble(ctx context.Context, uploadID string, up uploadRecord, parts []CompletedPart) (record, error) {
	rec := record{Upload: uploadID, Chunk: b.s.cfg.ChunkSize, Meta: up.Meta, Parts: make([]partRef, 0, len(parts))}
	sums := md5.New()
	for i, cp := range parts {
		p, _, err := b.part(ctx, partKey(uploadID, cp.Number))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return rec, fmt.Errorf("%w: part %d was not uploaded", ErrInvalidPart, cp.Number)
		}
		if err != nil {
			return rec, fmt.Errorf("objects: read part: %w", err)
		}
		if strings.Trim(cp.ETag, `"`) != p.ETag {
			return rec, fmt.Errorf("%w: part %d has ETag %s", ErrInvalidPart, cp.Number, p.ETag)
		}
		if i < len(parts)-1 && p.Size < b.s.cfg.MinPartSize {
			return rec, fmt.Errorf("%w: part %d is %d bytes", ErrEntityTooSmall, cp.Number, p.Size)
		}
		raw, err := hex.DecodeString(p.ETag)
		if err != nil {
			return rec, fmt.Errorf("objects: part %d's ETag: %w", cp.Number, err)
		}
		sums.Write(raw)
		ref := partRef{Tag: p.Tag, Size: p.Size}
		if p.Chunk != rec.Chunk {
			ref.Chunk = p.Chunk
		}
		rec.Parts = append(rec.Parts, ref)
		rec.Size += p.Size
	}
	if rec.Size > MaxMultipartSize {
		return rec, ErrTooLarge
	}
	rec.ETag = fmt.Sprintf("%s-%d", hex.EncodeToString(sums.Sum(nil)), len(parts))
	rec.Modified = b.s.now().UTC().Truncate(time.Millisecond)
	return rec, nil
}

// finish ends a closed upload: drops its parts' records and the chunks
// of every tag the object does not use, then the upload's record, last,
// so that a crash before leaves it for SweepUploads to end again.
func (b *bucket) finish(ctx context.Context, uploadID string, used map[string]bool) error {
	numbers, err := b.partNumbers(ctx, uploadID)
	if err != nil {
		return err
	}
	for _, n := range numbers {
		if err := b.dropPart(ctx, uploadID, partKey(uploadID, n), used); err != nil {
			return err
		}
	}
	if len(used) == 0 {
		// Every chunk of the upload at once, of parts listed or not.
		if err := b.purge(ctx, uploadID); err != nil {
			return err
		}
	}
	if err := b.uploads.Delete(ctx, uploadID); err != nil {
		return fmt.Errorf("objects: delete upload: %w", err)
	}
	return nil
}

// dropPart drops a part's record, and its tags' chunks unless used.
func (b *bucket) dropPart(ctx context.Context, uploadID, pkey string, used map[string]bool) error {
	for range 10 {
		p, rev, err := b.part(ctx, pkey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("objects: read part: %w", err)
		}
		for _, tag := range []string{p.Tag, p.Old} {
			if tag != "" && len(used) > 0 && !used[tag] {
				if err := b.purge(ctx, uploadID+"."+tag); err != nil {
					return err
				}
			}
		}
		err = b.uploads.Delete(ctx, pkey, jetstream.LastRevision(rev))
		if err == nil {
			return nil
		}
		if !store.IsConflict(err) {
			return fmt.Errorf("objects: delete part: %w", err)
		}
	}
	return errors.New("objects: a part kept changing under an upload's end")
}

// Abort ends an upload and drops its parts; ErrNoSuchUpload when there
// is none.
func (s *Store) Abort(ctx context.Context, bucketName, key, uploadID string) error {
	b, err := s.bucket(ctx, bucketName)
	if err != nil {
		return err
	}
	return s.gone(bucketName, b, b.abort(ctx, key, uploadID))
}

func (b *bucket) abort(ctx context.Context, key, uploadID string) error {
	up, rev, err := b.upload(ctx, uploadID, key)
	if err != nil {
		return err
	}
	if !up.Closing {
		if _, err := b.setClosing(ctx, uploadID, up, rev, true); err != nil {
			return err
		}
	}
	// A Complete that crashed after writing the object keeps its parts.
	return b.finish(ctx, uploadID, b.usedTags(ctx, up.Key, uploadID))
}

// SweepUploads aborts every upload initiated before now less
// Config.UploadMaxAge, in every bucket, and returns how many; the node
// calls it now and then.
func (s *Store) SweepUploads(ctx context.Context, now time.Time) (int, error) {
	buckets, err := s.ListBuckets(ctx)
	if err != nil {
		return 0, err
	}
	swept := 0
	var errs []error
	for _, bi := range buckets {
		b, err := s.bucket(ctx, bi.Name)
		if errors.Is(err, ErrNoSuchBucket) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uploads, err := b.allUploads(ctx)
		if err != nil {
			errs = append(errs, s.gone(bi.Name, b, err))
			continue
		}
		for _, u := range uploads {
			if !u.Initiated.Before(now.Add(-s.cfg.UploadMaxAge)) {
				continue
			}
			switch err := b.abort(ctx, u.Key, u.UploadID); {
			case err == nil:
				swept++
			case !errors.Is(err, ErrNoSuchUpload):
				errs = append(errs, err)
			}
		}
	}
	return swept, errors.Join(errs...)
}
