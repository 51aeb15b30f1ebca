package s3

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/internal/objects"
	"github.com/wisp-dev/wisp/internal/s3/s3auth"
)

func (h *handler) createMultipartUpload(c *call) error {
	if e := CheckObjectKey(c.q.Key); e != nil {
		return e
	}
	meta, e := objectMeta(c.r.Header)
	if e != nil {
		return e
	}
	if v := c.r.Header.Get("X-Amz-Checksum-Algorithm"); v != "" {
		a, ok := s3auth.ParseAlgorithm(v)
		if !ok {
			return NewError(InvalidRequest, "Checksum algorithm provided is unsupported.")
		}
		meta.ChecksumAlgorithm = string(a)
	}
	id, err := h.cfg.Objects.CreateUpload(c.r.Context(), c.q.Bucket, c.q.Key, meta)
	if err != nil {
		return err
	}
	if meta.ChecksumAlgorithm != "" {
		c.w.Header().Set("X-Amz-Checksum-Algorithm", meta.ChecksumAlgorithm)
	}
	return h.writeXML(c, http.StatusOK, InitiateMultipartUploadResult{Bucket: c.q.Bucket, Key: c.q.Key, UploadID: id})
}

// partTarget is the upload and part number an UploadPart or
// UploadPartCopy writes.
func partTarget(c *call) (uploadID string, n int, e *Error) {
	q := c.r.URL.Query()
	n, e = ParsePartNumber(q.Get("partNumber"))
	return q.Get("uploadId"), n, e
}

func (h *handler) uploadPart(c *call) error {
	uploadID, n, e := partTarget(c)
	if e != nil {
		return e
	}
	body, err := h.requestBody(c)
	if err != nil {
		return err
	}
	sums := map[string]string{}
	part, err := h.putPart(c, uploadID, n, body, sums)
	if err != nil {
		return err
	}
	hd := c.w.Header()
	hd.Set("ETag", `"`+part.ETag+`"`)
	setChecksumHeaders(hd, sums)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// putPart stores part n from body, adding body's checksums to sums.
func (h *handler) putPart(c *call, uploadID string, n int, body *s3auth.ChecksumReader, sums map[string]string) (objects.PartInfo, error) {
	return guarded(body, h.cfg.MaxObjectSize, sums, func(r io.Reader) (objects.PartInfo, error) {
		return h.cfg.Objects.PutPart(c.r.Context(), c.q.Bucket, c.q.Key, uploadID, n, r)
	})
}

func (h *handler) uploadPartCopy(c *call) error {
	ctx := c.r.Context()
	hd := c.r.Header
	uploadID, n, e := partTarget(c)
	if e != nil {
		return e
	}
	srcBucket, srcKey, e := parseCopySource(hd.Get("X-Amz-Copy-Source"))
	if e != nil {
		return e
	}
	first, last, e := parseCopySourceRange(hd.Get("X-Amz-Copy-Source-Range"))
	if e != nil {
		return e
	}
	length := int64(-1)
	if last >= 0 {
		length = last - first + 1
	}
	rd, src, err := h.cfg.Objects.Get(ctx, srcBucket, srcKey, first, length)
	if errors.Is(err, objects.ErrInvalidRange) || err == nil && last >= src.Size {
		if rd != nil {
			rd.Close()
		}
		return NewError(InvalidArgument, "Range specified is not valid for source object of size: "+strconv.FormatInt(src.Size, 10))
	}
	if err != nil {
		return err
	}
	defer rd.Close()
	if e := ParseCopySourceConditions(hd).Check(`"`+src.ETag+`"`, src.Modified); e != nil {
		return e
	}
	cr, err := s3auth.NewChecksumReader(rd, s3auth.Expect{}, nil)
	if err != nil {
		return err
	}
	sums := map[string]string{}
	part, err := h.putPart(c, uploadID, n, cr, sums)
	if err != nil {
		return err
	}
	return h.writeXML(c, http.StatusOK, CopyPartResult{Copied: Copied{
		LastModified: Time(part.Modified), ETag: `"` + part.ETag + `"`, Checksums: checksumsXML(sums),
	}})
}

// parseCopySourceRange reads x-amz-copy-source-range, which S3 takes
// only as bytes=first-last; last is -1 when there is none (the whole
// source).
func parseCopySourceRange(v string) (first, last int64, e *Error) {
	if v == "" {
		return 0, -1, nil
	}
	bad := NewError(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
	spec, ok := strings.CutPrefix(v, "bytes=")
	a, b, found := strings.Cut(spec, "-")
	if !ok || !found {
		return 0, 0, bad
	}
	first, ferr := strconv.ParseInt(a, 10, 64)
	last, lerr := strconv.ParseInt(b, 10, 64)
	if ferr != nil || lerr != nil || first < 0 || last < first {
		return 0, 0, bad
	}
	return first, last, nil
}

func (h *handler) completeMultipartUpload(c *call) error {
	var req CompleteMultipartUpload
	present, err := readXML(c, &req)
	if err != nil {
		return err
	}
	if !present || len(req.Parts) == 0 {
		return NewError(MalformedXML, "")
	}
	parts := make([]objects.CompletedPart, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = objects.CompletedPart{Number: p.PartNumber, ETag: p.ETag}
	}
	info, err := h.cfg.Objects.Complete(c.r.Context(), c.q.Bucket, c.q.Key, c.r.URL.Query().Get("uploadId"), parts)
	if err != nil {
		return err
	}
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return h.writeXML(c, http.StatusOK, CompleteMultipartUploadResult{
		Location: scheme + "://" + c.r.Host + c.r.URL.EscapedPath(),
		Bucket:   c.q.Bucket, Key: c.q.Key, ETag: `"` + info.ETag + `"`,
	})
}

func (h *handler) abortMultipartUpload(c *call) error {
	if err := h.cfg.Objects.Abort(c.r.Context(), c.q.Bucket, c.q.Key, c.r.URL.Query().Get("uploadId")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listParts(c *call) error {
	p, e := ParseListPartsParams(c.r.URL.Query())
	if e != nil {
		return e
	}
	uploadID := c.r.URL.Query().Get("uploadId")
	parts, truncated, err := h.cfg.Objects.ListParts(c.r.Context(), c.q.Bucket, c.q.Key, uploadID, p.PartNumberMarker, p.MaxParts)
	if err != nil {
		return err
	}
	res := ListPartsResult{
		Bucket: c.q.Bucket, Key: c.q.Key, UploadID: uploadID, Initiator: &owner, Owner: &owner,
		StorageClass: "STANDARD", PartNumberMarker: p.PartNumberMarker, MaxParts: p.MaxParts, IsTruncated: truncated,
	}
	for _, part := range parts {
		res.Parts = append(res.Parts, Part{PartNumber: part.Number, LastModified: Time(part.Modified), ETag: `"` + part.ETag + `"`, Size: part.Size})
		res.NextPartNumberMarker = part.Number
	}
	return h.writeXML(c, http.StatusOK, res)
}

func (h *handler) listMultipartUploads(c *call) error {
	p, e := ParseListUploadsParams(c.r.URL.Query())
	if e != nil {
		return e
	}
	// The store reads every upload's record for any page, so the
	// grouping by delimiter is done here over all of them.
	all, _, err := h.cfg.Objects.ListUploads(c.r.Context(), c.q.Bucket, p.Prefix, p.KeyMarker, p.UploadIDMarker, math.MaxInt)
	if err != nil {
		return err
	}
	enc := func(s string) string { return EncodeKey(p.EncodingType, s) }
	res := ListMultipartUploadsResult{
		Bucket: c.q.Bucket, KeyMarker: enc(p.KeyMarker), UploadIDMarker: p.UploadIDMarker, Delimiter: enc(p.Delimiter),
		Prefix: enc(p.Prefix), EncodingType: p.EncodingType, MaxUploads: p.MaxUploads,
	}
	var lastPrefix string
	for _, u := range all {
		var cp string
		if p.Delimiter != "" {
			if i := strings.Index(u.Key[len(p.Prefix):], p.Delimiter); i >= 0 {
				cp = u.Key[:len(p.Prefix)+i+len(p.Delimiter)]
			}
		}
		if cp != "" && (cp == lastPrefix || cp <= p.KeyMarker) {
			continue // rolled up already, on this page or an earlier one
		}
		if len(res.Uploads)+len(res.CommonPrefixes) == p.MaxUploads {
			res.IsTruncated = true
			break
		}
		if cp != "" {
			lastPrefix = cp
			res.CommonPrefixes = append(res.CommonPrefixes, CommonPrefix{Prefix: enc(cp)})
			res.NextKeyMarker, res.NextUploadIDMarker = enc(cp), ""
			continue
		}
		res.Uploads = append(res.Uploads, Upload{
			Key: enc(u.Key), UploadID: u.UploadID, Initiator: &owner, Owner: &owner,
			StorageClass: "STANDARD", Initiated: Time(u.Initiated),
		})
		res.NextKeyMarker, res.NextUploadIDMarker = enc(u.Key), u.UploadID
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = "", ""
	}
	return h.writeXML(c, http.StatusOK, res)
}
