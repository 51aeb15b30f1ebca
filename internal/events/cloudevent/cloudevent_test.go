package cloudevent

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sameEvent reports whether a and b are the same event: times are the same
// instant at the same offset, everything else is equal byte for byte.
func sameEvent(a, b Event) bool {
	_, ao := a.Time.Zone()
	_, bo := b.Time.Zone()
	if !a.Time.Equal(b.Time) || ao != bo {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// sameJSON reports whether a and b hold the same JSON value, or are both empty.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var av, bv any
	return json.Unmarshal(a, &av) == nil && json.Unmarshal(b, &bv) == nil && reflect.DeepEqual(av, bv)
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

var (
	t0       = time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC)
	noWrap   = Wrap{Source: "/wisp/test", Type: "dev.wisp.test"}
	binaryCE = []string{"ce-specversion", "1.0", "ce-id", "A1", "ce-source", "/src", "ce-type", "com.example.t"}
)

func TestFromHTTP(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		body string
		w    Wrap
		want Event
	}{
		{
			name: "structured with params on the content type",
			h:    header("Content-Type", "application/cloudevents+json; charset=utf-8"),
			body: `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t","subject":"s",
				"time":"2018-04-05T17:31:00Z","datacontenttype":"application/json","data":{"a": [1, 2]}}`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Subject: "s",
				Time: t0, DataContentType: "application/json", Data: json.RawMessage(`{"a": [1, 2]}`)},
		},
		{
			name: "structured content type in another case",
			h:    header("Content-Type", "Application/CloudEvents+JSON"),
			body: `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t"}`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t"},
		},
		{
			name: "structured with data_base64",
			h:    header("Content-Type", "application/cloudevents+json"),
			body: `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t",
				"datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "application/octet-stream", DataBase64: []byte{0, 1, 2, 255}},
		},
		{
			name: "structured with extensions of each JSON kind",
			h:    header("Content-Type", "application/cloudevents+json"),
			body: `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t",
				"exstring":"v","exint":5,"exfloat":-1.5e3,"extrue":true,"exfalse":false,"exnull":null,"exempty":""}`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				Extensions: map[string]string{"exstring": "v", "exint": "5", "exfloat": "-1.5e3",
					"extrue": "true", "exfalse": "false", "exempty": ""}},
		},
		{
			name: "structured data null is absent",
			h:    header("Content-Type", "application/cloudevents+json"),
			body: `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t","subject":null,"data":null}`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t"},
		},
		{
			name: "structured string data of a non-JSON type stays a JSON string",
			h:    header("Content-Type", "application/cloudevents+json"),
			body: `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t",
				"datacontenttype":"application/xml","data":"<much wow=\"xml\"/>"}`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "application/xml", Data: json.RawMessage(`"<much wow=\"xml\"/>"`)},
		},
		{
			name: "binary with JSON data",
			h: header(append(binaryCE, "Content-Type", "application/json; charset=utf-8",
				"ce-time", "2018-04-05T19:31:00+02:00", "ce-comexampleext", "v")...),
			body: "{\"a\": 1}\n",
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				Time: time.Date(2018, 4, 5, 19, 31, 0, 0, time.FixedZone("", 2*3600)), DataContentType: "application/json; charset=utf-8",
				Extensions: map[string]string{"comexampleext": "v"}, Data: json.RawMessage(`{"a": 1}`)},
		},
		{
			name: "binary with JSON data and no content type",
			h:    header(binaryCE...),
			body: `"a string"`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Data: json.RawMessage(`"a string"`)},
		},
		{
			name: "binary with a +json content type",
			h:    header(append(binaryCE, "Content-Type", "application/vnd.example+json")...),
			body: `[1]`,
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "application/vnd.example+json", Data: json.RawMessage(`[1]`)},
		},
		{
			name: "binary with text data is base64",
			h:    header(append(binaryCE, "Content-Type", "text/plain")...),
			body: "hello",
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "text/plain", DataBase64: []byte("hello")},
		},
		{
			name: "binary with a JSON type but a body that is not JSON is base64",
			h:    header(append(binaryCE, "Content-Type", "application/json")...),
			body: "{not json",
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "application/json", DataBase64: []byte("{not json")},
		},
		{
			name: "binary with a JSON type but a body that is not UTF-8 is base64",
			h:    header(append(binaryCE, "Content-Type", "application/json")...),
			body: "{\"a\":\"\xff\"}",
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "application/json", DataBase64: []byte("{\"a\":\"\xff\"}")},
		},
		{
			name: "binary without a body has no data",
			h:    header(binaryCE...),
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t"},
		},
		{
			name: "binary percent-encoded header values",
			h:    header(append(binaryCE, "ce-subject", "%E2%82%AC", "ce-comexampleext", "Euro%20%e2%82%ac%20%F0%9F%98%80+1")...),
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Subject: "€",
				Extensions: map[string]string{"comexampleext": "Euro € 😀+1"}},
		},
		{
			name: "binary double-quoted header value",
			h:    header(append(binaryCE, "ce-subject", `"a \"b\" %25"`)...),
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Subject: `a "b" %`},
		},
		{
			name: "binary header names in any case",
			h: http.Header{"ce-specversion": {"1.0"}, "CE-ID": {"A1"}, "Ce-Source": {"/src"}, "ce-TYPE": {"com.example.t"},
				"content-type": {"text/plain"}},
			body: "x",
			want: Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
				DataContentType: "text/plain", DataBase64: []byte("x")},
		},
		{
			name: "wrapped JSON body",
			h:    header("Content-Type", "application/json"),
			body: " {\"a\":1}\n",
			w:    Wrap{ID: "W1", Source: "/wisp/test", Type: "dev.wisp.test", Now: t0},
			want: Event{SpecVersion: "1.0", ID: "W1", Source: "/wisp/test", Type: "dev.wisp.test", Time: t0,
				DataContentType: "application/json", Data: json.RawMessage(`{"a":1}`)},
		},
		{
			name: "wrapped JSON body whatever the content type",
			h:    header("Content-Type", "text/plain", "ce-id", "ignored without ce-specversion"),
			body: `[true]`,
			w:    Wrap{ID: "W1", Source: "/wisp/test", Type: "dev.wisp.test"},
			want: Event{SpecVersion: "1.0", ID: "W1", Source: "/wisp/test", Type: "dev.wisp.test",
				DataContentType: "application/json", Data: json.RawMessage(`[true]`)},
		},
		{
			name: "wrapped JSON null has no data",
			body: `null`,
			w:    Wrap{ID: "W1", Source: "/wisp/test", Type: "dev.wisp.test"},
			want: Event{SpecVersion: "1.0", ID: "W1", Source: "/wisp/test", Type: "dev.wisp.test", DataContentType: "application/json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromHTTP(tt.h, []byte(tt.body), tt.w)
			if err != nil {
				t.Fatalf("FromHTTP: %v", err)
			}
			if !sameEvent(got, tt.want) {
				t.Errorf("FromHTTP:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestFromHTTPErrors(t *testing.T) {
	structured := header("Content-Type", "application/cloudevents+json")
	tests := []struct {
		name    string
		h       http.Header
		body    string
		w       Wrap
		wantErr error
		wantMsg string // the whole message when it starts with "cloudevent:", else a part of it
	}{
		{"batch", header("Content-Type", "application/cloudevents-batch+json; charset=utf-8"), `[]`, noWrap,
			ErrUnsupported, "cloudevent: batched mode (application/cloudevents-batch+json) is not supported; send one event per request"},
		{"other event format", header("Content-Type", "application/cloudevents+avro"), "x", noWrap,
			ErrUnsupported, "event format application/cloudevents+avro is not supported"},
		{"structured not an object", structured, `[{}]`, noWrap,
			ErrInvalid, "cloudevent: structured mode: the event is not a JSON object"},
		{"structured not JSON", structured, `{"id":`, noWrap,
			ErrInvalid, "structured mode: the event is not valid JSON"},
		{"structured id twice", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","id":"A2"}`, noWrap,
			ErrInvalid, `cloudevent: structured mode: attribute "id" appears more than once`},
		{"structured type twice, once escaped", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","\u0074ype":"u"}`, noWrap,
			ErrInvalid, `cloudevent: structured mode: attribute "type" appears more than once`},
		{"structured data twice", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","data":1,"data":null}`, noWrap,
			ErrInvalid, `cloudevent: structured mode: attribute "data" appears more than once`},
		{"structured extension twice", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","ext":1,"ext":2}`, noWrap,
			ErrInvalid, `cloudevent: structured mode: attribute "ext" appears more than once`},
		{"structured attribute not UTF-8", structured, "{\"specversion\":\"1.0\",\"id\":\"A\xff\",\"source\":\"/s\",\"type\":\"t\"}", noWrap,
			ErrInvalid, "cloudevent: structured mode: the event is not valid UTF-8"},
		{"structured data not UTF-8", structured, "{\"specversion\":\"1.0\",\"id\":\"A1\",\"source\":\"/s\",\"type\":\"t\",\"data\":\"\xc3\"}", noWrap,
			ErrInvalid, "cloudevent: structured mode: the event is not valid UTF-8"},
		{"structured name not UTF-8", structured, "{\"specversion\":\"1.0\",\"id\":\"A1\",\"source\":\"/s\",\"type\":\"t\",\"\xfe\":1}", noWrap,
			ErrInvalid, "the event is not valid UTF-8"},
		{"structured extension object", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","ext":{}}`, noWrap,
			ErrInvalid, "cloudevent: structured mode: extension ext is a JSON object; extension values are strings, numbers or booleans"},
		{"structured extension array", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","ext":[1]}`, noWrap,
			ErrInvalid, "extension ext is a JSON array"},
		{"structured id a number", structured, `{"specversion":"1.0","id":5,"source":"/s","type":"t"}`, noWrap,
			ErrInvalid, "cloudevent: structured mode: id is a JSON number, not a JSON string"},
		{"structured both kinds of data", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","data":1,"data_base64":"AA=="}`, noWrap,
			ErrInvalid, "data and data_base64 are both present"},
		{"structured bad base64", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","data_base64":"!!"}`, noWrap,
			ErrInvalid, "data_base64 is not valid base64"},
		{"structured bad time", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","time":"yesterday"}`, noWrap,
			ErrInvalid, `cloudevent: structured mode: time "yesterday" is not an RFC 3339 timestamp`},
		{"structured old specversion", structured, `{"specversion":"0.3","id":"A1","source":"/s","type":"t"}`, noWrap,
			ErrInvalid, `cloudevent: structured mode: specversion is "0.3"; only "1.0" is supported`},
		{"structured bad attribute name", structured, `{"specversion":"1.0","id":"A1","source":"/s","type":"t","Bad-Name":"x"}`, noWrap,
			ErrInvalid, `attribute name "Bad-Name" is not 1 to 20 lowercase letters or digits`},
		{"structured attribute names are case-sensitive", structured, `{"specversion":"1.0","ID":"A1","source":"/s","type":"t"}`, noWrap,
			ErrInvalid, "id is missing or empty"},
		{"binary missing ce-type", header("ce-specversion", "1.0", "ce-id", "A1", "ce-source", "/s"), "", noWrap,
			ErrInvalid, "cloudevent: binary mode: ce-type header is missing"},
		{"binary empty ce-id", header("ce-specversion", "1.0", "ce-id", "", "ce-source", "/s", "ce-type", "t"), "", noWrap,
			ErrInvalid, "cloudevent: binary mode: id is missing or empty"},
		{"binary old specversion", header("ce-specversion", "0.3", "ce-id", "A1", "ce-source", "/s", "ce-type", "t"), "", noWrap,
			ErrInvalid, `binary mode: specversion is "0.3"`},
		{"binary ce-datacontenttype", header(append(binaryCE, "ce-datacontenttype", "text/plain")...), "", noWrap,
			ErrInvalid, "ce-datacontenttype header is not allowed"},
		{"binary repeated header", header(append(binaryCE, "ce-id", "A2")...), "", noWrap,
			ErrInvalid, "cloudevent: binary mode: ce-id header appears more than once"},
		{"binary bad percent-encoding", header(append(binaryCE, "ce-subject", "100%")...), "", noWrap,
			ErrInvalid, "binary mode: ce-subject header: bad percent-encoding"},
		{"binary overlong UTF-8", header(append(binaryCE, "ce-subject", "%C0%A0")...), "", noWrap,
			ErrInvalid, "not valid UTF-8 once percent-decoded"},
		{"binary control character", header(append(binaryCE, "ce-subject", "a%0Ab")...), "", noWrap,
			ErrInvalid, "binary mode: subject contains the control character U+000A"},
		{"binary bad time", header(append(binaryCE, "ce-time", "2018-04-05")...), "", noWrap,
			ErrInvalid, `cloudevent: binary mode: ce-time header: time "2018-04-05" is not an RFC 3339 timestamp`},
		{"binary bad attribute name", header(append(binaryCE, "ce-bad_name", "x")...), "", noWrap,
			ErrInvalid, `binary mode: attribute name "bad_name" is not`},
		{"binary data header", header(append(binaryCE, "ce-data", "x")...), "", noWrap,
			ErrInvalid, `binary mode: extension name "data" is reserved`},
		{"two content types", header("Content-Type", "application/json", "Content-Type", "text/plain"), `{}`, noWrap,
			ErrInvalid, "cloudevent: the Content-Type header appears more than once"},
		{"wrap body not JSON", header("Content-Type", "text/plain"), "hello", noWrap,
			ErrInvalid, "cloudevent: the request body is not JSON; send JSON, or a CloudEvent in structured mode (Content-Type: application/cloudevents+json) or binary mode (ce-* headers)"},
		{"wrap empty body", nil, "", noWrap, ErrInvalid, "the request body is not JSON"},
		{"wrap body not UTF-8", header("Content-Type", "application/json"), "{\"a\":\"\xe2\x82\"}", noWrap,
			ErrInvalid, "cloudevent: the request body is not valid UTF-8, as JSON must be"},
		{"wrap without a source", nil, "{}", Wrap{Type: "t"}, ErrInvalid, "cloudevent: wrapping a JSON body: source is missing or empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromHTTP(tt.h, []byte(tt.body), tt.w)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FromHTTP: error %v, want one wrapping %v", err, tt.wantErr)
			}
			other := ErrInvalid
			if tt.wantErr == ErrInvalid {
				other = ErrUnsupported
			}
			if errors.Is(err, other) {
				t.Errorf("FromHTTP: error %v wraps %v too", err, other)
			}
			whole := strings.HasPrefix(tt.wantMsg, "cloudevent:")
			if got := err.Error(); (whole && got != tt.wantMsg) || !strings.Contains(got, tt.wantMsg) {
				t.Errorf("FromHTTP: error %q, want %q", got, tt.wantMsg)
			}
		})
	}
}

func TestFromHTTPWrapNewID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 3 {
		e, err := FromHTTP(nil, []byte(`{}`), noWrap)
		if err != nil {
			t.Fatalf("FromHTTP: %v", err)
		}
		if !uuid.MatchString(e.ID) {
			t.Errorf("id %q is not a version 4 UUID", e.ID)
		}
		if seen[e.ID] {
			t.Errorf("id %q came twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// valid is an event that passes Validate; tests change one thing in it.
func valid() Event {
	return Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t"}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(e *Event)
		wantMsg string // empty: valid
	}{
		{"minimal", func(e *Event) {}, ""},
		{"every attribute", func(e *Event) {
			e.Subject, e.DataContentType, e.DataSchema, e.Time = "s", "application/json", "https://example.com/s", t0
			e.Extensions = map[string]string{"a1": "v", "b": ""}
			e.Data = json.RawMessage(`{"a":1}`)
		}, ""},
		{"bad specversion", func(e *Event) { e.SpecVersion = "0.3" }, `cloudevent: specversion is "0.3"; only "1.0" is supported`},
		{"no specversion", func(e *Event) { e.SpecVersion = "" }, "cloudevent: specversion is missing"},
		{"empty id", func(e *Event) { e.ID = "" }, "cloudevent: id is missing or empty"},
		{"empty source", func(e *Event) { e.Source = "" }, "cloudevent: source is missing or empty"},
		{"empty type", func(e *Event) { e.Type = "" }, "cloudevent: type is missing or empty"},
		{"bad attribute name", func(e *Event) { e.Extensions = map[string]string{"Bad-Name": "x"} },
			`cloudevent: attribute name "Bad-Name" is not 1 to 20 lowercase letters or digits`},
		{"attribute name too long", func(e *Event) { e.Extensions = map[string]string{strings.Repeat("a", 21): "x"} },
			`cloudevent: attribute name "aaaaaaaaaaaaaaaaaaaaa" is not 1 to 20 lowercase letters or digits`},
		{"empty attribute name", func(e *Event) { e.Extensions = map[string]string{"": "x"} },
			`cloudevent: attribute name "" is not 1 to 20 lowercase letters or digits`},
		{"extension named after an attribute", func(e *Event) { e.Extensions = map[string]string{"subject": "x"} },
			`cloudevent: extension name "subject" is reserved`},
		{"extension named data", func(e *Event) { e.Extensions = map[string]string{"data": "x"} },
			`cloudevent: extension name "data" is reserved`},
		{"bad time", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"cloudevent: time 10000-01-01 00:00:00 +0000 UTC cannot be written in RFC 3339"},
		{"time offset in seconds", func(e *Event) { e.Time = time.Date(2018, 1, 1, 0, 0, 0, 0, time.FixedZone("", 30)) },
			"cannot be written in RFC 3339"},
		{"control character", func(e *Event) { e.Subject = "a\nb" }, "cloudevent: subject contains the control character U+000A"},
		{"invalid UTF-8", func(e *Event) { e.Extensions = map[string]string{"x": "\xff"} }, "cloudevent: x is not valid UTF-8"},
		{"noncharacter", func(e *Event) { e.Source = "/\uffff" }, "cloudevent: source contains the noncharacter U+FFFF"},
		{"data not JSON", func(e *Event) { e.Data = json.RawMessage(`{`) }, "cloudevent: data is not valid JSON"},
		{"data not UTF-8", func(e *Event) { e.Data = json.RawMessage("\"\xff\"") }, "cloudevent: data is not valid JSON in UTF-8"},
		{"data null", func(e *Event) { e.Data = json.RawMessage(` null`) }, "cloudevent: data is JSON null; leave Data empty for an event without data"},
		{"both kinds of data", func(e *Event) { e.Data, e.DataBase64 = json.RawMessage(`1`), []byte{1} },
			"cloudevent: data and data_base64 are both set; an event has one kind of data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.change(&e)
			err := e.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: error %v, want one wrapping ErrInvalid", err)
			}
			if got := err.Error(); !strings.Contains(got, tt.wantMsg) {
				t.Errorf("Validate: error %q, want %q", got, tt.wantMsg)
			}
			if _, err := e.MarshalJSON(); !errors.Is(err, ErrInvalid) {
				t.Errorf("MarshalJSON of an invalid event: error %v, want one wrapping ErrInvalid", err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    Event
	}{
		{"minimal", valid()},
		{"every attribute and JSON data", Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
			Subject: `"quoted" \ € <&>`, DataContentType: "application/json", DataSchema: "https://example.com/s",
			Time:       time.Date(2018, 4, 5, 17, 31, 0, 123456789, time.FixedZone("", -(7*3600+30*60))),
			Extensions: map[string]string{"b": "2", "a": "true", "empty": "", "u": "\u2028"},
			Data:       json.RawMessage(`{ "a" : [1, 2], "h": "<&>" }`)},
		},
		{"binary data", Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
			DataContentType: "application/octet-stream", DataBase64: []byte{0, 0xff, 0xfe, 'x'}}},
		{"JSON string data", Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t",
			DataContentType: "text/xml", Data: json.RawMessage(`"<a/>"`)}},
		{"local time", Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Time: time.Now()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.e.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(%s): %v", b, err)
			}
			if !sameEvent(got, tt.e) {
				t.Errorf("Parse(MarshalJSON(e)):\n got %#v\nwant %#v", got, tt.e)
			}
			// Through encoding/json too, as a member of a larger document.
			// encoding/json compacts and HTML-escapes what MarshalJSON
			// returns, so there the data is the same JSON value, not the
			// same bytes.
			type envelope struct{ Event Event }
			b, err = json.Marshal(envelope{tt.e})
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var env envelope
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			got, want := env.Event, tt.e
			if !sameJSON(got.Data, want.Data) {
				t.Errorf("json round trip: data %s, want %s", got.Data, want.Data)
			}
			got.Data, want.Data = nil, nil
			if !sameEvent(got, want) {
				t.Errorf("json round trip:\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestMarshalJSON(t *testing.T) {
	e := Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Subject: "<s>",
		Time: time.Date(2018, 4, 5, 17, 31, 0, 500000000, time.UTC), Extensions: map[string]string{"zz": "1", "aa": ""},
		Data: json.RawMessage("\n{\"a\": 1}\n")}
	got, err := e.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	want := `{"specversion":"1.0","id":"A1","source":"/src","type":"com.example.t","subject":"<s>",` +
		`"time":"2018-04-05T17:31:00.5Z","aa":"","zz":"1","data":{"a": 1}}`
	if string(got) != want {
		t.Errorf("MarshalJSON:\n got %s\nwant %s", got, want)
	}
	e.Data, e.DataBase64 = nil, []byte("hi")
	got, err = e.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	if want := `"data_base64":"aGk="}`; !strings.HasSuffix(string(got), want) {
		t.Errorf("MarshalJSON: %s, want it to end in %s", got, want)
	}
}

func TestAttr(t *testing.T) {
	e := Event{SpecVersion: "1.0", ID: "A1", Source: "/src", Type: "com.example.t", Subject: "s",
		DataContentType: "application/json", DataSchema: "https://example.com/s",
		Time:       time.Date(2018, 4, 5, 19, 31, 0, 500, time.FixedZone("", 2*3600)),
		Extensions: map[string]string{"ext": "v", "empty": ""}, Data: json.RawMessage(`1`)}
	tests := []struct {
		name   string
		e      Event
		want   string
		wantOK bool
	}{
		{"specversion", e, "1.0", true},
		{"id", e, "A1", true},
		{"source", e, "/src", true},
		{"type", e, "com.example.t", true},
		{"subject", e, "s", true},
		{"datacontenttype", e, "application/json", true},
		{"dataschema", e, "https://example.com/s", true},
		{"time", e, "2018-04-05T17:31:00.0000005Z", true},
		{"ext", e, "v", true},
		{"empty", e, "", true},
		{"missing", e, "", false},
		{"data", e, "", false},
		{"subject", valid(), "", false},
		{"time", valid(), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.e.Attr(tt.name)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Attr(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	e := Event{SpecVersion: "1.0", ID: "A1", Source: "/orders/eu", Type: "com.example.order.created",
		Time: t0, Extensions: map[string]string{"tenant": "acme"}}
	tests := []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty filter", Filter{}, true},
		{"exact", Filter{Exact: map[string]string{"type": "com.example.order.created"}}, true},
		{"exact differs", Filter{Exact: map[string]string{"type": "com.example.order"}}, false},
		{"prefix", Filter{Prefix: map[string]string{"type": "com.example.order."}}, true},
		{"prefix differs", Filter{Prefix: map[string]string{"source": "/users"}}, false},
		{"exact and prefix", Filter{Exact: map[string]string{"source": "/orders/eu"}, Prefix: map[string]string{"type": "com.example."}}, true},
		{"one of two fails", Filter{Exact: map[string]string{"source": "/orders/eu", "type": "x"}}, false},
		{"extension attribute", Filter{Exact: map[string]string{"tenant": "acme"}}, true},
		{"extension attribute differs", Filter{Exact: map[string]string{"tenant": "other"}}, false},
		{"missing attribute, exact", Filter{Exact: map[string]string{"subject": "x"}}, false},
		{"missing attribute, prefix", Filter{Prefix: map[string]string{"region": "e"}}, false},
		{"time by prefix", Filter{Prefix: map[string]string{"time": "2018-04"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.f.Match(e); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	many := map[string]string{}
	for _, name := range strings.Split("a b c d e f g h i j k", " ") {
		many[name] = "x"
	}
	tests := []struct {
		name    string
		f       Filter
		wantMsg string // empty: valid
	}{
		{"empty", Filter{}, ""},
		{"ten entries", Filter{Exact: map[string]string{"a": "x", "b": "x", "c": "x", "d": "x", "e": "x"},
			Prefix: map[string]string{"a": "x", "b": "x", "c": "x", "d": "x", "e": "x"}}, ""},
		{"eleven entries", Filter{Exact: many}, "cloudevent: filter: 11 entries; at most 10"},
		{"bad name", Filter{Exact: map[string]string{"Bad-Name": "x"}},
			`cloudevent: filter: exact: attribute name "Bad-Name" is not 1 to 20 lowercase letters or digits`},
		{"data", Filter{Prefix: map[string]string{"data": "x"}}, "cloudevent: filter: prefix: data cannot be filtered, only context attributes"},
		{"empty value", Filter{Prefix: map[string]string{"type": ""}}, "cloudevent: filter: prefix: the value for type is empty"},
		{"long value", Filter{Exact: map[string]string{"type": strings.Repeat("x", 257)}},
			"cloudevent: filter: exact: the value for type is 257 bytes; at most 256"},
		{"longest value", Filter{Exact: map[string]string{"type": strings.Repeat("x", 256)}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: error %v, want one wrapping ErrInvalid", err)
			}
			if got := err.Error(); got != tt.wantMsg {
				t.Errorf("Validate: error %q, want %q", got, tt.wantMsg)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"specversion":"1.0","id":"A1","source":"/src","type":"t"}`,
		`{"specversion":"1.0","id":"A1","source":"/src","type":"t","subject":"€","time":"2018-04-05T17:31:00.5+02:00",
			"datacontenttype":"application/json","dataschema":"https://e/s","ext":5,"b":true,"n":null,"data":{"a": [1, "\u00e9"]}}`,
		`{"specversion":"1.0","id":"A1","source":"/src","type":"t","data_base64":"AAEC"}`,
		`{"specversion":"1.0","id":"A1","source":"/src","type":"t","datacontenttype":"text/xml","data":"<a/>"}`,
		`{"specversion":"1.0","id":"A1","source":"/src","type":"t","data":null,"data_base64":null}`,
		`{"specversion":"0.3"}`,
		`{"specversion":"1.0","id":"A1","source":"/src","type":"t","id":"A2"}`,
		"{\"specversion\":\"1.0\",\"id\":\"A1\",\"source\":\"/src\",\"type\":\"t\",\"data\":\"\xff\"}",
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse: error %v does not wrap ErrInvalid", err)
			}
			return
		}
		out, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a parsed event: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%s) of a marshaled event: %v", out, err)
		}
		if !sameEvent(again, e) {
			t.Fatalf("re-parsed event differs:\n got %#v\nwant %#v", again, e)
		}
		out2, err := again.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a re-parsed event: %v", err)
		}
		if string(out2) != string(out) {
			t.Fatalf("MarshalJSON differs after a round trip:\n got %s\nwant %s", out2, out)
		}
	})
}

func FuzzFromHTTP(f *testing.F) {
	f.Add("application/json", "%E2%82%AC", "5", []byte(`{"a":1}`))
	f.Add("text/plain", `"a \"b\""`, "", []byte("hello"))
	f.Add("application/cloudevents+json", "", "", []byte(`{"specversion":"1.0","id":"A1","source":"/s","type":"t"}`))
	f.Add("", "%C0%A0", "x", []byte(`null`))
	f.Add("application/json", "", "", []byte("{\"a\":\"\xff\"}"))
	f.Add("application/cloudevents+json", "", "", []byte(`{"specversion":"1.0","id":"A1","source":"/s","type":"t","type":"u"}`))
	f.Fuzz(func(t *testing.T, contentType, subject, ext string, body []byte) {
		h := header(append(binaryCE, "Content-Type", contentType, "ce-subject", subject, "ce-ext", ext)...)
		e, err := FromHTTP(h, body, noWrap)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("FromHTTP: error %v wraps neither ErrInvalid nor ErrUnsupported", err)
			}
			return
		}
		out, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of an event from FromHTTP: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%s) of a marshaled event: %v", out, err)
		}
		if !sameEvent(again, e) {
			t.Fatalf("re-parsed event differs:\n got %#v\nwant %#v", again, e)
		}
	})
}
