package s3

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/wisp-dev/wisp/internal/connlimit"

	"github.com/wisp-dev/wisp/internal/objects"
	"github.com/wisp-dev/wisp/internal/s3/s3auth"
)

// maxUserMetadata is S3's bound on an object's x-amz-meta-* names and
// values together, in bytes.
const maxUserMetadata = 2 << 10

const userMetaPrefix = "x-amz-meta-"

// defaultContentType is what S3 answers for an object stored without one.
const defaultContentType = "binary/octet-stream"

func (h *handler) putObject(c *call) error {
	if e := CheckObjectKey(c.q.Key); e != nil {
		return e
	}
	meta, e := objectMeta(c.r.Header)
	if e != nil {
		return e
	}
	body, err := h.requestBody(c)
	if err != nil {
		return err
	}
	info, err := h.store(c.r.Context(), c.q.Bucket, c.q.Key, body, meta)
	if err != nil {
		return err
	}
	hd := c.w.Header()
	hd.Set("ETag", `"`+info.ETag+`"`)
	setChecksumHeaders(hd, info.Meta.Checksums)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// requestBody is the body of a PUT that stores bytes (PutObject,
// UploadPart): its length held to MaxObjectSize before any is read, its
// framing undone and its checksums verified as it is read.
func (h *handler) requestBody(c *call) (*s3auth.ChecksumReader, error) {
	size := c.r.ContentLength
	if c.sig != nil && strings.HasPrefix(c.sig.PayloadHash(), "STREAMING-") {
		// The framing tells the length; Content-Length counts the framing too.
		size = -1
		if n, err := strconv.ParseInt(c.r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil {
			size = n
		}
	} else if size < 0 {
		return nil, NewError(MissingContentLength, "")
	}
	if size > h.cfg.MaxObjectSize {
		return nil, NewError(EntityTooLarge, "")
	}
	return s3auth.NewBody(c.r, c.sig)
}

// errBodyRefused is what the store reads in place of a body's own error,
// which putBody keeps: the store ends a body at io.ErrUnexpectedEOF as it
// does at io.EOF, and a body cut short wraps io.ErrUnexpectedEOF.
var errBodyRefused = errors.New("s3: request body refused")

// putBody is an object's bytes as the store reads them: held to a size,
// ended by io.EOF only once every checksum matched, whose checksums are
// then added to sums, the map in the ObjectMeta the store writes after it
// read io.EOF. err is why the body was refused.
type putBody struct {
	cr    *s3auth.ChecksumReader
	limit int64
	sums  map[string]string
	err   error
}

func (b *putBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, errBodyRefused
	}
	n, err := b.cr.Read(p)
	if b.cr.Size() > b.limit {
		b.err = NewError(EntityTooLarge, "")
		return 0, errBodyRefused
	}
	switch {
	case err == io.EOF:
		d, _ := b.cr.Digests()
		for a, v := range d.Checksums {
			b.sums[string(a)] = v
		}
		return n, io.EOF
	case err != nil:
		b.err = err
		return n, errBodyRefused
	}
	return n, nil
}

// store writes an object from cr, with meta and the checksums cr computes
// beside those meta has; nothing is stored unless cr ended well.
func (h *handler) store(ctx context.Context, bucket, key string, cr *s3auth.ChecksumReader, meta objects.ObjectMeta) (objects.ObjectInfo, error) {
	if meta.Checksums == nil {
		meta.Checksums = map[string]string{}
	}
	return guarded(cr, h.cfg.MaxObjectSize, meta.Checksums, func(body io.Reader) (objects.ObjectInfo, error) {
		return h.cfg.Objects.Put(ctx, bucket, key, body, meta)
	})
}

// guarded runs put on cr read as a putBody held to limit, whose
// checksums are added to sums; the body's refusal wins over put's error.
func guarded[T any](cr *s3auth.ChecksumReader, limit int64, sums map[string]string, put func(io.Reader) (T, error)) (T, error) {
	body := &putBody{cr: cr, limit: limit, sums: sums}
	v, err := put(body)
	if body.err != nil {
		return v, body.err
	}
	return v, err
}

// objectMeta reads the headers S3 stores beside an object.
func objectMeta(h http.Header) (objects.ObjectMeta, *Error) {
	m := objects.ObjectMeta{
		ContentType:        h.Get("Content-Type"),
		ContentEncoding:    withoutAWSChunked(h.Get("Content-Encoding")),
		ContentDisposition: h.Get("Content-Disposition"),
		ContentLanguage:    h.Get("Content-Language"),
		CacheControl:       h.Get("Cache-Control"),
		Expires:            h.Get("Expires"),
	}
	size := 0
	for name, values := range h {
		k, ok := strings.CutPrefix(strings.ToLower(name), userMetaPrefix)
		if !ok || k == "" {
			continue
		}
		if m.User == nil {
			m.User = map[string]string{}
		}
		v := strings.Join(values, ",")
		m.User[k] = v
		size += len(k) + len(v)
	}
	if size > maxUserMetadata {
		return m, NewError(MetadataTooLarge, "")
	}
	return m, nil
}

// withoutAWSChunked drops aws-chunked from a Content-Encoding: it says
// how the request was framed, not how the object is encoded.
func withoutAWSChunked(enc string) string {
	var kept []string
	for _, e := range strings.Split(enc, ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
			kept = append(kept, e)
		}
	}
	return strings.Join(kept, ",")
}

func setChecksumHeaders(hd http.Header, sums map[string]string) {
	for a, v := range sums {
		hd.Set(s3auth.Algorithm(a).Header(), v)
	}
}

func checksumsXML(sums map[string]string) Checksums {
	return Checksums{
		ChecksumCRC32:     sums[string(s3auth.CRC32)],
		ChecksumCRC32C:    sums[string(s3auth.CRC32C)],
		ChecksumCRC64NVME: sums[string(s3auth.CRC64NVME)],
		ChecksumSHA1:      sums[string(s3auth.SHA1)],
		ChecksumSHA256:    sums[string(s3auth.SHA256)],
	}
}

// responseOverrides are the query parameters of a signed GET that set a
// header of the answer, and the header each sets.
var responseOverrides = []struct{ param, header string }{
	{"response-content-type", "Content-Type"},
	{"response-content-language", "Content-Language"},
	{"response-expires", "Expires"},
	{"response-cache-control", "Cache-Control"},
	{"response-content-disposition", "Content-Disposition"},
	{"response-content-encoding", "Content-Encoding"},
}

// getObject is GetObject and HeadObject.
func (h *handler) getObject(c *call) error {
	ctx := c.r.Context()
	head := c.q.Op == OpHeadObject
	rangeHeader := c.r.Header.Get("Range")
	var (
		rd   io.ReadCloser
		info objects.ObjectInfo
		err  error
	)
	if head || rangeHeader != "" {
		// The size first, which the range is read against.
		info, err = h.cfg.Objects.Head(ctx, c.q.Bucket, c.q.Key)
	} else {
		rd, info, err = h.cfg.Objects.Get(ctx, c.q.Bucket, c.q.Key, 0, -1)
	}
	if err != nil {
		return err
	}
	if rd != nil {
		defer rd.Close()
	}
	hd := c.w.Header()
	etag := `"` + info.ETag + `"`
	if e := ParseConditions(c.r.Header).Check(etag, info.Modified); e != nil {
		hd.Set("ETag", etag)
		hd.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
		return e
	}
	rng, partial, e := ParseRange(rangeHeader, info.Size)
	if e != nil {
		return e
	}
	if !head && rd == nil {
		if !partial {
			rng = Range{Start: 0, Length: -1}
		}
		var got objects.ObjectInfo
		rd, got, err = h.cfg.Objects.Get(ctx, c.q.Bucket, c.q.Key, rng.Start, rng.Length)
		if err != nil {
			return err
		}
		defer rd.Close()
		if got.ETag != info.ETag || !got.Modified.Equal(info.Modified) {
			return NewError(InternalError, "The object changed while it was read; retry.")
		}
	}

	setObjectHeaders(hd, info)
	if strings.EqualFold(c.r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") && !partial && len(info.Meta.Checksums) > 0 {
		setChecksumHeaders(hd, info.Meta.Checksums)
		hd.Set("X-Amz-Checksum-Type", "FULL_OBJECT")
	}
	query := c.r.URL.Query()
	for _, o := range responseOverrides {
		if v := query.Get(o.param); v != "" {
			hd.Set(o.header, v)
		}
	}
	status, length := http.StatusOK, info.Size
	if partial {
		status, length = http.StatusPartialContent, rng.Length
		hd.Set("Content-Range", rng.ContentRange(info.Size))
	}
	hd.Set("Content-Length", strconv.FormatInt(length, 10))
	// A large object may take long to leave: its answer gets the time its
	// length takes at connlimit's slowest rate, not the write timeout of a
	// small one.
	connlimit.ExtendWrite(c.w, length)
	c.w.WriteHeader(status)
	if head {
		return nil
	}
	if _, err := io.Copy(c.w, rd); err != nil {
		// The status is sent: the client sees the body end short of its length.
		h.log.Warn("s3: object not sent whole", "resource", c.q.Resource(), "request_id", c.id, "err", err)
	}
	return nil
}

// setObjectHeaders sets the headers GetObject and HeadObject describe an
// object with.
func setObjectHeaders(hd http.Header, info objects.ObjectInfo) {
	m := info.Meta
	hd.Set("ETag", `"`+info.ETag+`"`)
	hd.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("Content-Type", m.ContentType)
	if m.ContentType == "" {
		hd.Set("Content-Type", defaultContentType)
	}
	for header, v := range map[string]string{
		"Content-Encoding": m.ContentEncoding, "Content-Disposition": m.ContentDisposition,
		"Content-Language": m.ContentLanguage, "Cache-Control": m.CacheControl, "Expires": m.Expires,
	} {
		if v != "" {
			hd.Set(header, v)
		}
	}
	for k, v := range m.User {
		hd[http.CanonicalHeaderKey(userMetaPrefix+k)] = []string{v}
	}
}

// deleteObject answers 204 for a key that is not there too, as S3 does.
func (h *handler) deleteObject(c *call) error {
	err := h.cfg.Objects.Delete(c.r.Context(), c.q.Bucket, c.q.Key)
	if err != nil && !errors.Is(err, objects.ErrNoSuchKey) {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteParallel is how many keys of one DeleteObjects are deleted at once.
const deleteParallel = 8

func (h *handler) deleteObjects(c *call) error {
	if !hasBodyDigest(c.r.Header) {
		return NewError(InvalidRequest, "Missing required header for this request: Content-MD5")
	}
	ctx := c.r.Context()
	if _, err := h.cfg.Objects.HeadBucket(ctx, c.q.Bucket); err != nil {
		return err
	}
	var del Delete
	present, err := readXML(c, &del)
	if err != nil {
		return err
	}
	if !present || len(del.Objects) == 0 || len(del.Objects) > MaxListKeys {
		return NewError(MalformedXML, "")
	}
	errs := make([]error, len(del.Objects))
	var wg sync.WaitGroup
	sem := make(chan struct{}, deleteParallel)
	for i, o := range del.Objects {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if e := CheckObjectKey(o.Key); e != nil {
				errs[i] = e
				return
			}
			if err := h.cfg.Objects.Delete(ctx, c.q.Bucket, o.Key); err != nil && !errors.Is(err, objects.ErrNoSuchKey) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	res := DeleteResult{}
	for i, o := range del.Objects {
		if errs[i] == nil {
			if !del.Quiet {
				res.Deleted = append(res.Deleted, DeletedObject{Key: o.Key})
			}
			continue
		}
		e := toError(errs[i])
		if e.Code == InternalError {
			h.log.Error("s3: delete failed", "bucket", c.q.Bucket, "key", o.Key, "request_id", c.id, "err", e.cause)
		}
		res.Errors = append(res.Errors, DeleteError{Key: o.Key, Code: e.Code, Message: e.Message})
	}
	return h.writeXML(c, http.StatusOK, res)
}

// hasBodyDigest tells whether a request sends a digest of its body, which
// S3 requires of DeleteObjects.
func hasBodyDigest(hd http.Header) bool {
	if hd.Get("Content-MD5") != "" || hd.Get("X-Amz-Trailer") != "" {
		return true
	}
	for _, a := range s3auth.Algorithms {
		if hd.Get(a.Header()) != "" {
			return true
		}
	}
	return false
}

func (h *handler) copyObject(c *call) error {
	ctx := c.r.Context()
	hd := c.r.Header
	if e := CheckObjectKey(c.q.Key); e != nil {
		return e
	}
	srcBucket, srcKey, e := parseCopySource(hd.Get("X-Amz-Copy-Source"))
	if e != nil {
		return e
	}
	directive := strings.ToUpper(hd.Get("X-Amz-Metadata-Directive"))
	switch directive {
	case "", "COPY", "REPLACE":
	default:
		return NewError(InvalidArgument, "Unknown metadata directive.")
	}
	if srcBucket == c.q.Bucket && srcKey == c.q.Key && directive != "REPLACE" {
		return NewError(InvalidRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
	}
	var compute []s3auth.Algorithm
	if v := hd.Get("X-Amz-Checksum-Algorithm"); v != "" {
		a, ok := s3auth.ParseAlgorithm(v)
		if !ok {
			return NewError(InvalidRequest, "Checksum algorithm provided is unsupported.")
		}
		compute = append(compute, a)
	}

	rd, src, err := h.cfg.Objects.Get(ctx, srcBucket, srcKey, 0, -1)
	if err != nil {
		return err
	}
	defer rd.Close()
	if e := ParseCopySourceConditions(hd).Check(`"`+src.ETag+`"`, src.Modified); e != nil {
		return e
	}
	meta := src.Meta
	if directive == "REPLACE" {
		if meta, e = objectMeta(hd); e != nil {
			return e
		}
	}
	meta.User = maps.Clone(meta.User)
	// The bytes are the source's, and so are its checksums, unless the
	// request asks for another.
	meta.Checksums = maps.Clone(src.Meta.Checksums)
	if len(compute) > 0 {
		meta.Checksums = nil
	}
	cr, err := s3auth.NewChecksumReader(rd, s3auth.Expect{Compute: compute}, nil)
	if err != nil {
		return err
	}
	info, err := h.store(ctx, c.q.Bucket, c.q.Key, cr, meta)
	if err != nil {
		return err
	}
	return h.writeXML(c, http.StatusOK, CopyObjectResult{Copied: Copied{
		LastModified: Time(info.Modified), ETag: `"` + info.ETag + `"`, Checksums: checksumsXML(info.Meta.Checksums),
	}})
}

// parseCopySource reads x-amz-copy-source: bucket/key, URL-encoded, with
// or without a leading slash, and no version but "null" (unversioned).
func parseCopySource(v string) (bucket, key string, e *Error) {
	path, query, _ := strings.Cut(v, "?")
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil || len(q) != 1 || !q.Has("versionId") {
			return "", "", NewError(InvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
		}
		if q.Get("versionId") != "null" {
			return "", "", NewError(NotImplemented, "Object versions are not implemented.")
		}
	}
	path, err := url.PathUnescape(path)
	if err != nil {
		return "", "", NewError(InvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	}
	bucket, key, _ = strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if bucket == "" || key == "" {
		return "", "", NewError(InvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	}
	return bucket, key, nil
}
