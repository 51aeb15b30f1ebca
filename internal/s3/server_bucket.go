package s3

import (
	"bytes"
	"io"
	"iter"
	"net/http"

	"github.com/wisp-dev/wisp/internal/objects"
	"github.com/wisp-dev/wisp/internal/s3/s3auth"
)

// owner is the owner S3 names of every bucket and object: one account.
var owner = Owner{ID: "wisp", DisplayName: "wisp"}

func (h *handler) listBuckets(c *call) error {
	buckets, err := h.cfg.Objects.ListBuckets(c.r.Context())
	if err != nil {
		return err
	}
	res := ListAllMyBucketsResult{Owner: owner, Buckets: []BucketInfo{}}
	for _, b := range buckets {
		res.Buckets = append(res.Buckets, BucketInfo{Name: b.Name, CreationDate: Time(b.Created), BucketRegion: h.cfg.Region})
	}
	return h.writeXML(c, http.StatusOK, res)
}

func (h *handler) createBucket(c *call) error {
	if e := CheckBucketName(c.q.Bucket); e != nil {
		return e
	}
	var conf CreateBucketConfiguration
	present, err := readXML(c, &conf)
	if err != nil {
		return err
	}
	if present && conf.LocationConstraint != "" && conf.LocationConstraint != h.cfg.Region {
		return NewError(InvalidLocationConstraint, "The specified location-constraint is not valid: this endpoint's region is "+h.cfg.Region+".")
	}
	if err := h.cfg.Objects.CreateBucket(c.r.Context(), c.q.Bucket); err != nil {
		return err
	}
	c.w.Header().Set("Location", "/"+c.q.Bucket)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// readXML reads a request's XML document into v, its checksums and
// signature checked first; present is false for an empty body, which
// some operations take as no document.
func readXML(c *call, v any) (present bool, err error) {
	body, err := s3auth.NewBody(c.r, c.sig)
	if err != nil {
		return false, err
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxRequestXML+1))
	if err != nil {
		return false, err
	}
	if len(data) == 0 {
		return false, nil
	}
	if e := DecodeXML(bytes.NewReader(data), v); e != nil {
		return true, e
	}
	return true, nil
}

func (h *handler) headBucket(c *call) error {
	if _, err := h.cfg.Objects.HeadBucket(c.r.Context(), c.q.Bucket); err != nil {
		return err
	}
	c.w.Header().Set("X-Amz-Bucket-Region", h.cfg.Region)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) deleteBucket(c *call) error {
	if err := h.cfg.Objects.DeleteBucket(c.r.Context(), c.q.Bucket); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) getBucketLocation(c *call) error {
	if _, err := h.cfg.Objects.HeadBucket(c.r.Context(), c.q.Bucket); err != nil {
		return err
	}
	var loc LocationConstraint
	if h.cfg.Region != "us-east-1" { // S3 names us-east-1 by no constraint
		loc.Region = h.cfg.Region
	}
	return h.writeXML(c, http.StatusOK, loc)
}

// listObjects is ListObjects and ListObjectsV2: one page of the bucket,
// grouped by ListPage over the store's walk in byte order.
func (h *handler) listObjects(c *call) error {
	v2 := c.q.Op == OpListObjectsV2
	p, e := ParseListObjectsParams(c.r.URL.Query(), v2)
	if e != nil {
		return e
	}
	page, err := ListPage(h.walk(c, p.Prefix), func(o objects.ObjectSummary) string { return o.Key },
		PageQuery{Prefix: p.Prefix, Delimiter: p.Delimiter, After: p.After, MaxKeys: p.MaxKeys})
	if err != nil {
		return err
	}
	enc := func(s string) string { return EncodeKey(p.EncodingType, s) }
	tail := ListTail{
		MaxKeys: p.MaxKeys, Delimiter: enc(p.Delimiter), EncodingType: p.EncodingType,
		IsTruncated: page.IsTruncated, Contents: []Object{},
	}
	for _, o := range page.Contents {
		obj := Object{Key: enc(o.Key), LastModified: Time(o.Modified), ETag: `"` + o.ETag + `"`, Size: o.Size, StorageClass: "STANDARD"}
		if !v2 || p.FetchOwner {
			obj.Owner = &owner
		}
		tail.Contents = append(tail.Contents, obj)
	}
	for _, cp := range page.CommonPrefixes {
		tail.CommonPrefixes = append(tail.CommonPrefixes, CommonPrefix{Prefix: enc(cp)})
	}
	if !v2 {
		res := ListBucketResultV1{Name: c.q.Bucket, Prefix: enc(p.Prefix), Marker: enc(p.Marker), ListTail: tail}
		if page.IsTruncated {
			res.NextMarker = enc(page.Next)
		}
		return h.writeXML(c, http.StatusOK, res)
	}
	res := ListBucketResultV2{
		Name: c.q.Bucket, Prefix: enc(p.Prefix), StartAfter: enc(p.StartAfter),
		ContinuationToken: p.ContinuationToken, KeyCount: page.KeyCount(), ListTail: tail,
	}
	if page.IsTruncated {
		res.NextContinuationToken = EncodeContinuationToken(page.Next)
	}
	return h.writeXML(c, http.StatusOK, res)
}

// walk is ListPage's list over the store: the keys with prefix from a key
// on, in byte order.
func (h *handler) walk(c *call, prefix string) func(from string) iter.Seq2[objects.ObjectSummary, error] {
	return func(from string) iter.Seq2[objects.ObjectSummary, error] {
		return func(yield func(objects.ObjectSummary, error) bool) {
			stopped := false
			err := h.cfg.Objects.Walk(c.r.Context(), c.q.Bucket, prefix, justBefore(from), func(o objects.ObjectSummary) bool {
				if o.Key < from {
					return true
				}
				if !yield(o, nil) {
					stopped = true
					return false
				}
				return true
			})
			if err != nil && !stopped {
				yield(objects.ObjectSummary{}, err)
			}
		}
	}
}

// justBefore returns a string below s such that no UTF-8 key lies
// between the two: Walk lists keys after a key, ListPage asks for keys
// from one. Dropping a final NUL is exact; otherwise the last byte is
// lowered and 0xff, which no UTF-8 key holds, appended. The caller still
// drops keys below s, so a key that is not UTF-8 costs only time.
func justBefore(s string) string {
	if s == "" {
		return ""
	}
	last := s[len(s)-1]
	if last == 0 {
		return s[:len(s)-1]
	}
	return s[:len(s)-1] + string([]byte{last - 1, 0xff})
}
