package s3

import (
	"errors"
	"iter"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestParseListObjectsParams(t *testing.T) {
	token := EncodeContinuationToken("photos/b.jpg")
	tests := []struct {
		name  string
		query string
		v2    bool
		want  ListObjectsParams
		err   ErrorCode
	}{
		{"defaults", "", true, ListObjectsParams{V2: true, MaxKeys: 1000}, ""},
		{"v1 marker", "marker=m&prefix=p/&delimiter=/&max-keys=5", false,
			ListObjectsParams{Prefix: "p/", Delimiter: "/", MaxKeys: 5, Marker: "m", After: "m"}, ""},
		{"start-after", "list-type=2&start-after=k&fetch-owner=true", true,
			ListObjectsParams{V2: true, MaxKeys: 1000, StartAfter: "k", FetchOwner: true, After: "k"}, ""},
		{"token beats start-after", "start-after=a&continuation-token=" + url.QueryEscape(token), true,
			ListObjectsParams{V2: true, MaxKeys: 1000, StartAfter: "a", ContinuationToken: token, After: "photos/b.jpg"}, ""},
		{"max-keys 0", "max-keys=0", true, ListObjectsParams{V2: true}, ""},
		{"max-keys above 1000 is cut", "max-keys=5000", true, ListObjectsParams{V2: true, MaxKeys: 1000}, ""},
		{"encoding-type url", "encoding-type=url", true, ListObjectsParams{V2: true, MaxKeys: 1000, EncodingType: "url"}, ""},
		{"max-keys negative", "max-keys=-1", true, ListObjectsParams{}, InvalidArgument},
		{"max-keys not a number", "max-keys=ten", true, ListObjectsParams{}, InvalidArgument},
		{"max-keys overflows", "max-keys=99999999999", true, ListObjectsParams{}, InvalidArgument},
		{"encoding-type unknown", "encoding-type=base64", false, ListObjectsParams{}, InvalidArgument},
		{"token garbage", "continuation-token=nonsense!", true, ListObjectsParams{}, InvalidArgument},
		{"token tampered", "continuation-token=" + tamper(token), true, ListObjectsParams{}, InvalidArgument},
		{"token empty", "continuation-token=", true, ListObjectsParams{}, InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, e := ParseListObjectsParams(q, tt.v2)
			if tt.err != "" {
				if e == nil || e.Code != tt.err {
					t.Fatalf("got %+v, %v; want %s", got, e, tt.err)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func tamper(token string) string {
	b := []byte(token)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestOtherListParams(t *testing.T) {
	q := url.Values{"max-uploads": {"2"}, "key-marker": {"k"}, "upload-id-marker": {"u"}, "prefix": {"p"}, "delimiter": {"/"}}
	u, e := ParseListUploadsParams(q)
	if e != nil || u != (ListUploadsParams{Prefix: "p", Delimiter: "/", MaxUploads: 2, KeyMarker: "k", UploadIDMarker: "u"}) {
		t.Errorf("uploads: %+v %v", u, e)
	}
	if _, e := ParseListUploadsParams(url.Values{"max-uploads": {"x"}}); e == nil || e.Code != InvalidArgument {
		t.Errorf("bad max-uploads: %v", e)
	}
	p, e := ParseListPartsParams(url.Values{"max-parts": {"3"}, "part-number-marker": {"7"}})
	if e != nil || p != (ListPartsParams{MaxParts: 3, PartNumberMarker: 7}) {
		t.Errorf("parts: %+v %v", p, e)
	}
	if _, e := ParseListPartsParams(url.Values{"part-number-marker": {"-1"}}); e == nil {
		t.Error("negative part-number-marker accepted")
	}
	for s, want := range map[string]int{"1": 1, "10000": 10000, "0": 0, "10001": 0, "x": 0, "": 0} {
		got, e := ParsePartNumber(s)
		if (want == 0) != (e != nil) || got != want {
			t.Errorf("part number %q: %d %v", s, got, e)
		}
	}
}

func TestContinuationTokenRoundTrip(t *testing.T) {
	for _, key := range []string{"", "a", "photos/2006/", "文件\x00\xff"} {
		got, ok := DecodeContinuationToken(EncodeContinuationToken(key))
		if !ok || got != key {
			t.Errorf("%q: got %q %v", key, got, ok)
		}
	}
}

func TestEncodeKey(t *testing.T) {
	if got := EncodeKey("url", "a b/ć&+"); got != "a+b%2F%C4%87%26%2B" {
		t.Errorf("url: %q", got)
	}
	if got := EncodeKey("", "a b"); got != "a b" {
		t.Errorf("none: %q", got)
	}
}

// sortedKeys is a lister over keys held in memory; reads counts the keys
// it yielded, to show rolled-up keys are skipped, not read.
type sortedKeys struct {
	keys  []string
	reads int
	fail  bool
}

func newSortedKeys(keys ...string) *sortedKeys {
	s := &sortedKeys{keys: slices.Clone(keys)}
	sort.Strings(s.keys)
	return s
}

func (s *sortedKeys) list(from string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		i := sort.SearchStrings(s.keys, from)
		for ; i < len(s.keys); i++ {
			s.reads++
			if s.fail {
				yield("", errors.New("storage down"))
				return
			}
			if !yield(s.keys[i], nil) {
				return
			}
		}
	}
}

func identity(k string) string { return k }

func TestListPage(t *testing.T) {
	keys := newSortedKeys(
		"a.txt",
		"photos/2006/january/sample.jpg",
		"photos/2006/february/sample2.jpg",
		"photos/2006/february/sample3.jpg",
		"photos/2007/x.jpg",
		"photos/index.html",
		"videos/a.mp4",
		"videos/b.mp4",
		"z.txt",
	)
	tests := []struct {
		name      string
		q         PageQuery
		contents  []string
		prefixes  []string
		truncated bool
		next      string
	}{
		{"everything", PageQuery{MaxKeys: 1000}, keys.keys, nil, false, ""},
		{"top level", PageQuery{Delimiter: "/", MaxKeys: 1000},
			[]string{"a.txt", "z.txt"}, []string{"photos/", "videos/"}, false, ""},
		{"nested prefix", PageQuery{Prefix: "photos/2006/", Delimiter: "/", MaxKeys: 1000},
			nil, []string{"photos/2006/february/", "photos/2006/january/"}, false, ""},
		{"prefix without delimiter", PageQuery{Prefix: "photos/2006/f", MaxKeys: 1000},
			[]string{"photos/2006/february/sample2.jpg", "photos/2006/february/sample3.jpg"}, nil, false, ""},
		{"second level", PageQuery{Prefix: "photos/", Delimiter: "/", MaxKeys: 1000},
			[]string{"photos/index.html"}, []string{"photos/2006/", "photos/2007/"}, false, ""},
		{"a common prefix counts once", PageQuery{Delimiter: "/", MaxKeys: 2},
			[]string{"a.txt"}, []string{"photos/"}, true, "photos/"},
		{"cut after a key", PageQuery{Delimiter: "/", MaxKeys: 1},
			[]string{"a.txt"}, nil, true, "a.txt"},
		{"resume after a common prefix skips its keys", PageQuery{Delimiter: "/", After: "photos/", MaxKeys: 1},
			nil, []string{"videos/"}, true, "videos/"},
		{"resume after a key inside a common prefix", PageQuery{Delimiter: "/", After: "photos/2006/january/sample.jpg", MaxKeys: 10},
			[]string{"z.txt"}, []string{"videos/"}, false, ""},
		{"resume after the last", PageQuery{Delimiter: "/", After: "videos/", MaxKeys: 10},
			[]string{"z.txt"}, nil, false, ""},
		{"after before the prefix", PageQuery{Prefix: "videos/", After: "a", MaxKeys: 10},
			[]string{"videos/a.mp4", "videos/b.mp4"}, nil, false, ""},
		{"exact fit is not truncated", PageQuery{Prefix: "videos/", MaxKeys: 2},
			[]string{"videos/a.mp4", "videos/b.mp4"}, nil, false, ""},
		{"max-keys 0", PageQuery{MaxKeys: 0}, nil, nil, false, ""},
		{"multi-character delimiter", PageQuery{Delimiter: "/2006/", MaxKeys: 10},
			[]string{"a.txt", "photos/2007/x.jpg", "photos/index.html", "videos/a.mp4", "videos/b.mp4", "z.txt"}, []string{"photos/2006/"}, false, ""},
		{"no match", PageQuery{Prefix: "nothing/", MaxKeys: 10}, nil, nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := ListPage(keys.list, identity, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(page.Contents, tt.contents) || !slices.Equal(page.CommonPrefixes, tt.prefixes) {
				t.Errorf("contents %q prefixes %q\nwant     %q prefixes %q", page.Contents, page.CommonPrefixes, tt.contents, tt.prefixes)
			}
			if page.IsTruncated != tt.truncated || page.Next != tt.next {
				t.Errorf("truncated %v next %q, want %v %q", page.IsTruncated, page.Next, tt.truncated, tt.next)
			}
			if page.KeyCount() != len(tt.contents)+len(tt.prefixes) {
				t.Errorf("key count %d", page.KeyCount())
			}
		})
	}
}

// TestListPagePaging pages through a listing one item at a time, with and
// without a delimiter, and finds every key or common prefix once.
func TestListPagePaging(t *testing.T) {
	var all []string
	for _, d := range []string{"a", "b", "c"} {
		for i := range 50 {
			all = append(all, d+"/"+strings.Repeat("x", i))
		}
		all = append(all, d)
	}
	keys := newSortedKeys(all...)
	for _, tt := range []struct {
		delimiter string
		want      []string
		maxKeys   int
	}{
		{"/", []string{"a", "a/", "b", "b/", "c", "c/"}, 1},
		{"", keys.keys, 7},
	} {
		var got []string
		q := PageQuery{Delimiter: tt.delimiter, MaxKeys: tt.maxKeys}
		keys.reads = 0
		for range 1000 {
			page, err := ListPage(keys.list, identity, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page.Contents...)
			got = append(got, page.CommonPrefixes...)
			if !page.IsTruncated {
				break
			}
			after, ok := DecodeContinuationToken(EncodeContinuationToken(page.Next))
			if !ok {
				t.Fatal("token did not decode")
			}
			q.After = after
		}
		sort.Strings(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("delimiter %q: got %q\nwant %q", tt.delimiter, got, tt.want)
		}
		if tt.delimiter == "/" && keys.reads > 3*len(tt.want) {
			t.Errorf("read %d keys for %d items: rolled-up keys were scanned", keys.reads, len(tt.want))
		}
	}
}

func TestListPageError(t *testing.T) {
	keys := newSortedKeys("a", "b")
	keys.fail = true
	if _, err := ListPage(keys.list, identity, PageQuery{MaxKeys: 10}); err == nil {
		t.Error("storage error was dropped")
	}
}

func TestPrefixEnd(t *testing.T) {
	for p, want := range map[string]string{"a/": "a0", "ab": "ac", "a\xff": "b", "\xff\xff": ""} {
		got, ok := prefixEnd(p)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", p, got, ok, want)
		}
	}
}
