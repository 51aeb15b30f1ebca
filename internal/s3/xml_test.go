package s3

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// xmlTokens flattens a document into its elements and non-blank text, so a
// marshalled value compares with AWS's indented examples.
func xmlTokens(t *testing.T, doc []byte) []string {
	t.Helper()
	var out []string
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("bad XML %s: %v", doc, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			out = append(out, "<"+tok.Name.Space+" "+tok.Name.Local+">")
		case xml.EndElement:
			out = append(out, "</"+tok.Name.Local+">")
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				out = append(out, s)
			}
		}
	}
}

func sameXML(t *testing.T, v any, want string) {
	t.Helper()
	got, err := xml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	g, w := xmlTokens(t, got), xmlTokens(t, []byte(want))
	if strings.Join(g, "") != strings.Join(w, "") {
		t.Errorf("got  %s\nwant %s", strings.Join(g, ""), strings.Join(w, ""))
	}
}

func date(s string) Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return Time(t)
}

// The documents below are AWS's examples from the S3 API reference.

func TestListBucketResultV2(t *testing.T) {
	v := ListBucketResultV2{
		Name: "bucket", KeyCount: 1, ListTail: ListTail{MaxKeys: 1000,
			Contents: []Object{{Key: "my-image.jpg", LastModified: date("2009-10-12T17:50:30Z"),
				ETag: `"fba9dede5f27731c9771645a39863328"`, Size: 434234, StorageClass: "STANDARD"}}},
	}
	sameXML(t, v, `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Name>bucket</Name>
    <Prefix/>
    <KeyCount>1</KeyCount>
    <MaxKeys>1000</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>my-image.jpg</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
    </Contents>
</ListBucketResult>`)

	paged := ListBucketResultV2{
		Name: "bucket", NextContinuationToken: "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
		KeyCount: 2, ListTail: ListTail{MaxKeys: 2, Delimiter: "/", IsTruncated: true,
			Contents: []Object{{Key: "sample.jpg", LastModified: date("2011-02-26T01:56:20Z"),
				ETag: `"bf1d737a4d46a19f3bced6905cc8b902"`, Size: 142863, StorageClass: "STANDARD"}},
			CommonPrefixes: []CommonPrefix{{Prefix: "photos/"}}},
	}
	sameXML(t, paged, `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>2</KeyCount>
  <MaxKeys>2</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>sample.jpg</Key>
    <LastModified>2011-02-26T01:56:20.000Z</LastModified>
    <ETag>"bf1d737a4d46a19f3bced6905cc8b902"</ETag>
    <Size>142863</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>photos/</Prefix>
  </CommonPrefixes>
</ListBucketResult>`)
}

func TestListBucketResultV1(t *testing.T) {
	v := ListBucketResultV1{
		Name: "bucket", ListTail: ListTail{MaxKeys: 1000,
			Contents: []Object{{Key: "my-image.jpg", LastModified: date("2009-10-12T17:50:30Z"),
				ETag: `"fba9dede5f27731c9771645a39863328"`, Size: 434234, StorageClass: "STANDARD",
				Owner: &Owner{ID: "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", DisplayName: "mtd@amazon.com"}}}},
	}
	sameXML(t, v, `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Name>bucket</Name>
    <Prefix/>
    <Marker/>
    <MaxKeys>1000</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>my-image.jpg</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
        <Owner>
            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
            <DisplayName>mtd@amazon.com</DisplayName>
        </Owner>
    </Contents>
</ListBucketResult>`)
}

func TestListAllMyBucketsResult(t *testing.T) {
	v := ListAllMyBucketsResult{
		Owner:   Owner{ID: "bcaf1ffd86f461ca5fb16fd081034f", DisplayName: "webfile"},
		Buckets: []BucketInfo{{Name: "quotes", CreationDate: date("2006-02-03T16:45:09Z")}, {Name: "samples", CreationDate: date("2006-02-03T16:41:58Z")}},
	}
	sameXML(t, v, `<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Owner>
    <ID>bcaf1ffd86f461ca5fb16fd081034f</ID>
    <DisplayName>webfile</DisplayName>
  </Owner>
  <Buckets>
    <Bucket>
      <Name>quotes</Name>
      <CreationDate>2006-02-03T16:45:09.000Z</CreationDate>
    </Bucket>
    <Bucket>
      <Name>samples</Name>
      <CreationDate>2006-02-03T16:41:58.000Z</CreationDate>
    </Bucket>
  </Buckets>
</ListAllMyBucketsResult>`)
}

func TestSmallResults(t *testing.T) {
	sameXML(t, LocationConstraint{Region: "Europe"},
		`<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">Europe</LocationConstraint>`)
	sameXML(t, LocationConstraint{},
		`<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>`)
	sameXML(t, CopyObjectResult{Copied: Copied{LastModified: date("2009-10-28T22:32:00Z"), ETag: `"9b2cf535f27731c974343645a3985328"`}},
		`<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
		   <LastModified>2009-10-28T22:32:00.000Z</LastModified>
		   <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
		 </CopyObjectResult>`)
	sameXML(t, CopyPartResult{Copied: Copied{LastModified: date("2009-10-28T22:32:00Z"), ETag: `"9b2cf535f27731c974343645a3985328"`}},
		`<CopyPartResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
		   <LastModified>2009-10-28T22:32:00.000Z</LastModified>
		   <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
		 </CopyPartResult>`)
	sameXML(t, InitiateMultipartUploadResult{Bucket: "example-bucket", Key: "example-object", UploadID: "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"},
		`<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
		   <Bucket>example-bucket</Bucket>
		   <Key>example-object</Key>
		   <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
		 </InitiateMultipartUploadResult>`)
	sameXML(t, CompleteMultipartUploadResult{Location: "http://Example-Bucket.s3.Region.amazonaws.com/Example-Object",
		Bucket: "Example-Bucket", Key: "Example-Object", ETag: `"3858f62230ac3c915f300c664312c11f-9"`},
		`<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
		   <Location>http://Example-Bucket.s3.Region.amazonaws.com/Example-Object</Location>
		   <Bucket>Example-Bucket</Bucket>
		   <Key>Example-Object</Key>
		   <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
		 </CompleteMultipartUploadResult>`)
	sameXML(t, DeleteResult{
		Deleted: []DeletedObject{{Key: "sample1.txt"}},
		Errors:  []DeleteError{{Key: "sample2.txt", Code: AccessDenied, Message: "Access Denied"}},
	}, `<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
		  <Deleted><Key>sample1.txt</Key></Deleted>
		  <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
		</DeleteResult>`)
}

func TestListPartsResult(t *testing.T) {
	v := ListPartsResult{
		Bucket: "example-bucket", Key: "example-object", UploadID: "XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA",
		Initiator:    &Owner{ID: "arn:aws:iam::111122223333:user/some-user", DisplayName: "umat-user"},
		Owner:        &Owner{ID: "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", DisplayName: "someName"},
		StorageClass: "STANDARD", PartNumberMarker: 1, NextPartNumberMarker: 3, MaxParts: 2, IsTruncated: true,
		Parts: []Part{
			{PartNumber: 2, LastModified: date("2010-11-10T20:48:34Z"), ETag: `"7778aef83f66abc1fa1e8477f296d394"`, Size: 10485760},
			{PartNumber: 3, LastModified: date("2010-11-10T20:48:33Z"), ETag: `"aaaa18db4cc2f85cedef654fccc4a4x8"`, Size: 10485760},
		},
	}
	sameXML(t, v, `<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <Initiator>
      <ID>arn:aws:iam::111122223333:user/some-user</ID>
      <DisplayName>umat-user</DisplayName>
  </Initiator>
  <Owner>
    <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    <DisplayName>someName</DisplayName>
  </Owner>
  <StorageClass>STANDARD</StorageClass>
  <PartNumberMarker>1</PartNumberMarker>
  <NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts>
  <IsTruncated>true</IsTruncated>
  <Part>
    <PartNumber>2</PartNumber>
    <LastModified>2010-11-10T20:48:34.000Z</LastModified>
    <ETag>"7778aef83f66abc1fa1e8477f296d394"</ETag>
    <Size>10485760</Size>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <LastModified>2010-11-10T20:48:33.000Z</LastModified>
    <ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag>
    <Size>10485760</Size>
  </Part>
</ListPartsResult>`)
}

func TestListMultipartUploadsResult(t *testing.T) {
	owner := &Owner{ID: "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", DisplayName: "OwnerDisplayName"}
	v := ListMultipartUploadsResult{
		Bucket: "bucket", NextKeyMarker: "my-movie.m2ts", NextUploadIDMarker: "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ",
		MaxUploads: 3, IsTruncated: true,
		Uploads: []Upload{{Key: "my-divisor", UploadID: "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw",
			Initiator: &Owner{ID: "arn:aws:iam::111122223333:user/user1", DisplayName: "user1"}, Owner: owner,
			StorageClass: "STANDARD", Initiated: date("2010-11-10T20:48:33Z")}},
	}
	sameXML(t, v, `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator>
      <ID>arn:aws:iam::111122223333:user/user1</ID>
      <DisplayName>user1</DisplayName>
    </Initiator>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>`)
}

func TestCORSConfiguration(t *testing.T) {
	body := `<CORSConfiguration>
 <CORSRule>
   <AllowedOrigin>http://www.example.com</AllowedOrigin>
   <AllowedMethod>PUT</AllowedMethod>
   <AllowedMethod>POST</AllowedMethod>
   <AllowedMethod>DELETE</AllowedMethod>
   <AllowedHeader>*</AllowedHeader>
   <MaxAgeSeconds>3000</MaxAgeSeconds>
   <ExposeHeader>x-amz-server-side-encryption</ExposeHeader>
 </CORSRule>
 <CORSRule>
   <AllowedOrigin>*</AllowedOrigin>
   <AllowedMethod>GET</AllowedMethod>
 </CORSRule>
</CORSConfiguration>`
	var c CORSConfiguration
	if e := DecodeXML(strings.NewReader(body), &c); e != nil {
		t.Fatal(e)
	}
	if e := c.Validate(); e != nil {
		t.Fatal(e)
	}
	if len(c.Rules) != 2 || *c.Rules[0].MaxAgeSeconds != 3000 || len(c.Rules[0].AllowedMethods) != 3 {
		t.Fatalf("decoded %+v", c)
	}
	sameXML(t, c, strings.Replace(body, "<CORSConfiguration>", `<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`, 1))

	// A body in S3's namespace decodes the same.
	var ns CORSConfiguration
	if e := DecodeXML(strings.NewReader(`<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`), &ns); e != nil || len(ns.Rules) != 1 {
		t.Fatalf("namespaced body: %v %+v", e, ns)
	}

	for _, tt := range []struct {
		name, origin, method string
		headers              []string
		want                 bool
	}{
		{"first rule", "http://www.example.com", "PUT", []string{"Content-Type", "x-amz-date"}, true},
		{"second rule by wildcard", "https://other.example", "GET", nil, true},
		{"method no rule allows", "https://other.example", "PUT", nil, false},
	} {
		if _, got := c.Match(tt.origin, tt.method, tt.headers); got != tt.want {
			t.Errorf("%s: match %v, want %v", tt.name, got, tt.want)
		}
	}
	headerRule := CORSConfiguration{Rules: []CORSRule{{AllowedOrigins: []string{"https://*.example.com"}, AllowedMethods: []string{"GET"}, AllowedHeaders: []string{"x-amz-*"}}}}
	if _, ok := headerRule.Match("https://app.example.com", "GET", []string{"X-Amz-Date"}); !ok {
		t.Error("wildcard origin and header did not match")
	}
	if _, ok := headerRule.Match("https://app.example.com", "GET", []string{"Authorization"}); ok {
		t.Error("a header no rule allows matched")
	}

	invalid := map[string]CORSConfiguration{
		"no rules":         {},
		"no origin":        {Rules: []CORSRule{{AllowedMethods: []string{"GET"}}}},
		"no method":        {Rules: []CORSRule{{AllowedOrigins: []string{"*"}}}},
		"unknown method":   {Rules: []CORSRule{{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"PATCH"}}}},
		"two wildcards":    {Rules: []CORSRule{{AllowedOrigins: []string{"*.*"}, AllowedMethods: []string{"GET"}}}},
		"too many rules":   {Rules: make([]CORSRule, 101)},
		"header wildcards": {Rules: []CORSRule{{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}, AllowedHeaders: []string{"a*b*"}}}},
	}
	for name, c := range invalid {
		if e := c.Validate(); e == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeRequests(t *testing.T) {
	var d Delete
	if e := DecodeXML(strings.NewReader(`<Delete>
  <Quiet>true</Quiet>
  <Object><Key>sample1.txt</Key></Object>
  <Object><Key>sample2.txt</Key><VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId></Object>
</Delete>`), &d); e != nil {
		t.Fatal(e)
	}
	if !d.Quiet || len(d.Objects) != 2 || d.Objects[1].Key != "sample2.txt" || d.Objects[1].VersionID == "" {
		t.Errorf("Delete: %+v", d)
	}

	var c CompleteMultipartUpload
	if e := DecodeXML(strings.NewReader(`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>
  <Part><PartNumber>2</PartNumber><ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag></Part>
</CompleteMultipartUpload>`), &c); e != nil {
		t.Fatal(e)
	}
	if len(c.Parts) != 2 || c.Parts[0].PartNumber != 1 || c.Parts[0].ChecksumCRC32 != "AAAAAA==" || c.Parts[1].ETag != `"0c78aef83f66abc1fa1e8477f296d394"` {
		t.Errorf("CompleteMultipartUpload: %+v", c)
	}

	for name, body := range map[string]string{
		"empty":        "",
		"not XML":      "{}",
		"wrong root":   "<Deletes><Object><Key>k</Key></Object></Deletes>",
		"unterminated": "<Delete><Object>",
		"too long":     "<Delete>" + strings.Repeat(" ", MaxRequestXML) + "</Delete>",
	} {
		var d Delete
		if e := DecodeXML(strings.NewReader(body), &d); e == nil || e.Code != MalformedXML {
			t.Errorf("%s: got %v, want MalformedXML", name, e)
		}
	}
}

func TestWriteXML(t *testing.T) {
	w := httptest.NewRecorder()
	if err := WriteXML(w, 200, LocationConstraint{Region: "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	want := xml.Header + `<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-1</LocationConstraint>`
	if w.Body.String() != want || w.Header().Get("Content-Type") != "application/xml" {
		t.Errorf("got %q %q", w.Header().Get("Content-Type"), w.Body.String())
	}
}

func TestTime(t *testing.T) {
	local := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	b, err := Time(local).MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "2024-03-01T11:00:00.123Z" {
		t.Errorf("got %s", b)
	}
	var back Time
	if err := back.UnmarshalText(b); err != nil || !time.Time(back).Equal(local.Truncate(time.Millisecond)) {
		t.Errorf("round trip: %v %v", time.Time(back), err)
	}
}
