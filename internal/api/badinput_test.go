package api_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

func tarGzOf(t *testing.T, hdrs []*tar.Header, bodies []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for i, h := range hdrs {
		h.Size = int64(len(bodies[i]))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			io.WriteString(tw, bodies[i]) //nolint:errcheck // into a buffer
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func zipSymlink(t *testing.T, name, target string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name}
	h.SetMode(os.ModeSymlink | 0o777)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, target) //nolint:errcheck // into a buffer
	zw.Close()
	return buf.Bytes()
}

// zipBomb is a small zip that inflates past the 250 MB limit: one
// compressed MiB of zeros, stored raw under 260 names.
func zipBomb(t *testing.T) []byte {
	t.Helper()
	var deflated bytes.Buffer
	fw, err := flate.NewWriter(&deflated, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	fw.Write(zeros) //nolint:errcheck // into a buffer
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 260 {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("zeros%03d", i), Method: zip.Deflate,
			CRC32: crc32.ChecksumIEEE(zeros), CompressedSize64: uint64(deflated.Len()), UncompressedSize64: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(deflated.Bytes()) //nolint:errcheck // into a buffer
	}
	zw.Close()
	return buf.Bytes()
}

func manyEntries(t *testing.T, n int) []byte {
	t.Helper()
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("f%05d", i)] = ""
	}
	return zipOf(t, files)
}

func TestCreateRefusesBadInput(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	good := zipOf(t, helloCode)
	big := strings.Repeat("x", 4100)
	cfg := func(fields string) string {
		return `{"name":"hello","runtime":"nodejs","handler":"index.handler"` + fields + `}`
	}
	truncated := good[:len(good)/2]
	corrupt := append([]byte{}, good...)
	copy(corrupt[30:], "garbage-garbage-garbage")
	for _, tc := range []struct {
		name     string
		config   string
		code     []byte
		status   int
		errType  string
		mentions string
	}{
		{"bad name", `{"name":"Hello","runtime":"nodejs","handler":"index.handler"}`, good, 400, "InvalidParameterValueException", "name"},
		{"name too long", `{"name":"` + strings.Repeat("a", 64) + `","runtime":"nodejs","handler":"index.handler"}`, good, 400, "InvalidParameterValueException", "name"},
		{"memory too low", cfg(`,"memory_mb":127`), good, 400, "InvalidParameterValueException", "memory"},
		{"memory too high", cfg(`,"memory_mb":10241`), good, 400, "InvalidParameterValueException", "memory"},
		{"timeout zero", cfg(`,"timeout":0`), good, 400, "InvalidParameterValueException", "timeout"},
		{"timeout too long", cfg(`,"timeout":901`), good, 400, "InvalidParameterValueException", "timeout"},
		{"env key", cfg(`,"env":{"1BAD":"x"}`), good, 400, "InvalidParameterValueException", "env key"},
		{"env AWS_", cfg(`,"env":{"AWS_REGION":"x"}`), good, 400, "InvalidParameterValueException", "reserved"},
		{"env WISP_", cfg(`,"env":{"WISP_TOKEN":"x"}`), good, 400, "InvalidParameterValueException", "reserved"},
		{"env too big", cfg(`,"env":{"BIG":"` + big + `"}`), good, 400, "InvalidParameterValueException", "env"},
		{"unknown runtime", `{"name":"hello","runtime":"cobol","handler":"x.y"}`, good, 400, "InvalidParameterValueException", "runtime"},
		{"no runtime", `{"name":"hello"}`, good, 400, "InvalidParameterValueException", "runtime"},
		{"bad handler", cfg(`,"handler":"nodot"`), good, 400, "InvalidParameterValueException", "handler"},
		{"negative concurrency", cfg(`,"concurrency":-1`), good, 400, "InvalidParameterValueException", "concurrency"},
		{"bad url_auth", cfg(`,"url_auth":"open"`), good, 400, "InvalidParameterValueException", "url_auth"},
		{"unknown field", cfg(`,"memory":256`), good, 400, "InvalidParameterValueException", "unknown field"},
		{"config not json", `{name:`, good, 400, "InvalidParameterValueException", "JSON"},
		{"config not UTF-8", cfg(",\"description\":\"caf\xe9\""), good, 400, "InvalidParameterValueException", "not valid UTF-8"},
		{"config key twice", cfg(`,"memory_mb":256,"memory_mb":512`), good, 400, "InvalidParameterValueException", `the key \"memory_mb\" appears twice`},
		{"config nested key twice", cfg(`,"async":{"retries":1,"retries":0}`), good, 400, "InvalidParameterValueException", `appears twice in async`},
		{"destination to no function", cfg(`,"async":{"on_success":"function:nope"}`), good, 400, "InvalidParameterValueException", `async on_success: function \"nope\" does not exist`},
		{"destination to itself", cfg(`,"async":{"on_failure":"function:hello"}`), good, 400, "InvalidParameterValueException", "its own destination"},
		{"schedule qualifier not yet published", cfg(`,"schedules":[{"expression":"rate(1 hour)","qualifier":"1"}]`), good, 400, "InvalidParameterValueException", `version 1 of function \"hello\" does not exist`},
		{"schedule qualifier no alias", cfg(`,"schedules":[{"expression":"rate(1 hour)","qualifier":"live"}]`), good, 400, "InvalidParameterValueException", `alias \"live\" of function \"hello\" does not exist`},
		{"schedule February 30", cfg(`,"schedules":[{"expression":"cron(0 0 30 2 ? *)"}]`), good, 400, "InvalidParameterValueException", "never fires"},
		{"schedule years passed", cfg(`,"schedules":[{"expression":"cron(0 0 1 1 ? 2020)"}]`), good, 400, "InvalidParameterValueException", "never fires again"},
		{"no config", "", good, 400, "InvalidParameterValueException", "config"},
		{"no code", cfg(""), nil, 400, "InvalidParameterValueException", "code"},
		{"not an archive", cfg(""), []byte("just text"), 400, "InvalidCodeException", ""},
		{"truncated zip", cfg(""), truncated, 400, "InvalidCodeException", ""},
		{"corrupt zip", cfg(""), corrupt, 400, "InvalidCodeException", ""},
		{"dotdot entry", cfg(""), zipOf(t, map[string]string{"../evil.js": "x"}), 400, "InvalidCodeException", ".."},
		{"nested dotdot", cfg(""), zipOf(t, map[string]string{"a/../../evil.js": "x"}), 400, "InvalidCodeException", ""},
		{"absolute entry", cfg(""), zipOf(t, map[string]string{"/etc/evil": "x"}), 400, "InvalidCodeException", ""},
		{"link outside", cfg(""), zipSymlink(t, "link", "../../etc/passwd"), 400, "InvalidCodeException", "link"},
		{"absolute link", cfg(""), zipSymlink(t, "link", "/etc/passwd"), 400, "InvalidCodeException", "link"},
		{"tar link outside", cfg(""), tarGzOf(t, []*tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../x"}}, []string{""}), 400, "InvalidCodeException", ""},
		{"tar device", cfg(""), tarGzOf(t, []*tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, []string{""}), 400, "InvalidCodeException", ""},
		{"tar fifo", cfg(""), tarGzOf(t, []*tar.Header{{Name: "p", Typeflag: tar.TypeFifo}}, []string{""}), 400, "InvalidCodeException", ""},
		{"tar truncated", cfg(""), tarGzOf(t, []*tar.Header{{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}}, []string{strings.Repeat("a", 5000)})[:40], 400, "InvalidCodeException", ""},
		{"zip bomb", cfg(""), zipBomb(t), 413, "CodeTooLargeException", ""},
		{"too many entries", cfg(""), manyEntries(t, 10001), 413, "CodeTooLargeException", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.create(tc.config, tc.code)
			if r.status != tc.status || r.errType() != tc.errType {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.errType)
			}
			if !strings.Contains(string(r.body), tc.mentions) {
				t.Errorf("message %s does not mention %q", r.body, tc.mentions)
			}
			// State unchanged: no function of that name.
			if r := c.json("GET", "/v1/functions/hello", nil); r.status != http.StatusNotFound {
				t.Fatalf("a refused create left a function: %d %s", r.status, r.body)
			}
		})
	}
	if r := c.json("GET", "/v1/functions", nil); !strings.Contains(string(r.body), `"functions": []`) {
		t.Errorf("functions exist after refused creates: %s", r.body)
	}
}

func TestUploadOver50MB(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	mustStatus(t, c.create(helloConfig, zipOf(t, helloCode)), http.StatusCreated)
	huge := make([]byte, 50<<20+1)
	r := c.do("PUT", "/v1/functions/hello/code", "application/zip", huge)
	if r.status != http.StatusRequestEntityTooLarge || r.errType() != "RequestTooLargeException" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	r = c.create(`{"name":"big","runtime":"nodejs","handler":"index.handler"}`, huge)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("create got %d %s", r.status, r.body)
	}
	mustStatus(t, c.json("GET", "/v1/functions/big", nil), http.StatusNotFound)
}

func TestUpdatesRefuseBadInputAndStaleRevisions(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	mustStatus(t, c.create(helloConfig, zipOf(t, helloCode)), http.StatusCreated)
	before := c.json("GET", "/v1/functions/hello", nil).body
	var f struct{ Revision uint64 }
	c.json("GET", "/v1/functions/hello", nil).decode(t, &f)
	stale := fmt.Sprint(f.Revision + 100)

	mustStatus(t, c.create(helloConfig, zipOf(t, helloCode)), http.StatusConflict)
	for _, tc := range []struct {
		name    string
		send    func() resp
		status  int
		errType string
	}{
		{"exists", func() resp { return c.create(helloConfig, zipOf(t, helloCode)) }, 409, "ResourceConflictException"},
		{"patch memory", func() resp { return c.json("PATCH", "/v1/functions/hello", map[string]int{"memory_mb": 1}) }, 400, "InvalidParameterValueException"},
		{"patch rename", func() resp { return c.json("PATCH", "/v1/functions/hello", map[string]string{"name": "other"}) }, 400, "InvalidParameterValueException"},
		{"patch not json", func() resp { return c.do("PATCH", "/v1/functions/hello", "application/json", []byte("{")) }, 400, "InvalidParameterValueException"},
		{"patch stale", func() resp {
			return c.json("PATCH", "/v1/functions/hello", map[string]int{"memory_mb": 256}, "If-Match", stale)
		}, 409, "PreconditionFailedException"},
		{"patch bad if-match", func() resp {
			return c.json("PATCH", "/v1/functions/hello", map[string]int{"memory_mb": 256}, "If-Match", "abc")
		}, 400, "InvalidParameterValueException"},
		{"code stale", func() resp {
			return c.do("PUT", "/v1/functions/hello/code", "application/zip", zipOf(t, map[string]string{"x.js": "1"}), "If-Match", stale)
		}, 409, "PreconditionFailedException"},
		{"code bad", func() resp {
			return c.do("PUT", "/v1/functions/hello/code", "application/zip", zipOf(t, map[string]string{"../x.js": "1"}))
		}, 400, "InvalidCodeException"},
		{"publish stale", func() resp { return c.json("POST", "/v1/functions/hello/versions", nil, "If-Match", stale) }, 409, "PreconditionFailedException"},
		{"delete stale", func() resp { return c.json("DELETE", "/v1/functions/hello", nil, "If-Match", stale) }, 409, "PreconditionFailedException"},
		{"alias to missing version", func() resp {
			return c.json("PUT", "/v1/functions/hello/aliases/live", map[string]int{"version": 7})
		}, 400, "InvalidParameterValueException"},
		{"alias all digits", func() resp {
			return c.json("PUT", "/v1/functions/hello/aliases/123", map[string]int{"version": 1})
		}, 400, "InvalidParameterValueException"},
		{"alias weight without version", func() resp {
			return c.json("PUT", "/v1/functions/hello/aliases/live", map[string]any{"version": 1, "additional_weight": 0.5})
		}, 400, "InvalidParameterValueException"},
		{"patch retries too many", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"retries":11}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch retries negative", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"retries":-1}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch max event age zero", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"max_event_age":0}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch max event age too long", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"max_event_age":21601}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch destination kind", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"on_success":"queue:x"}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch destination bad function", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"on_failure":"function:Bad"}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch destination bad topic", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"on_failure":"topic:a..b"}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch destination itself", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"on_success":"function:hello"}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch dead letter reserved", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"async":{"dead_letter":"catalog"}}`))
		}, 400, "InvalidParameterValueException"},
		{"patch schedule expression", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"schedules":[{"expression":"rate(0 minutes)"}]}`))
		}, 400, "InvalidParameterValueException"},
		{"patch schedule cron L", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"schedules":[{"expression":"cron(0 12 L * ? *)"}]}`))
		}, 400, "InvalidParameterValueException"},
		{"patch schedule timezone", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"schedules":[{"expression":"rate(5 minutes)","timezone":"Mars/Olympus"}]}`))
		}, 400, "InvalidParameterValueException"},
		{"patch schedule names twice", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"schedules":[{"name":"a","expression":"rate(5 minutes)"},{"name":"a","expression":"rate(1 hour)"}]}`))
		}, 400, "InvalidParameterValueException"},
		{"patch schedule bad qualifier", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"schedules":[{"expression":"rate(5 minutes)","qualifier":"0"}]}`))
		}, 400, "InvalidParameterValueException"},
		{"patch schedules too many", func() resp {
			return c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{"schedules":[{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"},{"expression":"rate(5 minutes)"}]}`))
		}, 400, "InvalidParameterValueException"},
		{"missing function", func() resp { return c.json("PATCH", "/v1/functions/nope", map[string]int{"memory_mb": 256}) }, 404, "ResourceNotFoundException"},
		{"missing function code", func() resp {
			return c.do("PUT", "/v1/functions/nope/code", "application/zip", zipOf(t, helloCode))
		}, 404, "ResourceNotFoundException"},
		{"missing version", func() resp { return c.json("GET", "/v1/functions/hello/versions/9", nil) }, 404, "ResourceNotFoundException"},
		{"missing route", func() resp { return c.json("GET", "/v1/nothing", nil) }, 404, "ResourceNotFoundException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.send()
			if r.status != tc.status || r.errType() != tc.errType {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.errType)
			}
			if after := c.json("GET", "/v1/functions/hello", nil).body; !bytes.Equal(after, before) {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}
	// With the right revision the same update goes through.
	mustStatus(t, c.json("PATCH", "/v1/functions/hello", map[string]int{"memory_mb": 256}, "If-Match", fmt.Sprintf("%q", fmt.Sprint(f.Revision))), http.StatusOK)
}

// twoFunctions starts a node with functions hello and other, each with
// version 1 and alias live, and returns a client and a snapshot of what a
// refused call must leave as it was.
func twoFunctions(t *testing.T) (apiClient, func() string) {
	t.Helper()
	n := startNode(t)
	c := newClient(t, n)
	for _, name := range []string{"hello", "other"} {
		mustStatus(t, c.create(`{"name":"`+name+`","runtime":"nodejs","handler":"index.handler"}`, zipOf(t, helloCode)), http.StatusCreated)
		mustStatus(t, c.json("POST", "/v1/functions/"+name+"/versions", nil), http.StatusCreated)
		mustStatus(t, c.json("PUT", "/v1/functions/"+name+"/aliases/live", map[string]int{"version": 1}), http.StatusCreated)
	}
	state := func() string {
		var b strings.Builder
		for _, p := range []string{"/v1/functions/hello", "/v1/functions/other", "/v1/functions/hello/aliases",
			"/v1/functions/other/aliases", "/v1/functions/hello/versions", "/v1/subscriptions", "/v1/events/orders"} {
			r := c.json("GET", p, nil)
			fmt.Fprintf(&b, "%s %d %s\n", p, r.status, r.body)
		}
		return b.String()
	}
	return c, state
}

type badCall struct {
	name     string
	send     func() resp
	status   int
	errType  string
	mentions string
}

// refuseAll sends each call and checks its answer and that state() is
// as before.
func refuseAll(t *testing.T, state func() string, calls []badCall) {
	t.Helper()
	before := state()
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.send()
			if r.status != tc.status || r.errType() != tc.errType {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.errType)
			}
			if !strings.Contains(string(r.body), tc.mentions) {
				t.Errorf("message %s does not mention %s", r.body, tc.mentions)
			}
			if after := state(); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}
}

func (c apiClient) patcher(path string) func(body string) func() resp {
	return func(body string) func() resp {
		return func() resp { return c.do("PATCH", path, "application/json", []byte(body)) }
	}
}

const invalidParameter = "InvalidParameterValueException"

// TestWritesNameWhatExists sends writes that name what does not exist, or
// schedules that never fire: each is a 400 that changes nothing. What does
// exist is then accepted.
func TestWritesNameWhatExists(t *testing.T) {
	c, state := twoFunctions(t)
	patch := c.patcher("/v1/functions/hello")
	const invalid = invalidParameter
	refuseAll(t, state, []badCall{
		{"destination to no function", patch(`{"async":{"on_success":"function:nope"}}`), 400, invalid, `async on_success: function \"nope\" does not exist`},
		{"destination to no version", patch(`{"async":{"on_failure":"function:other:2"}}`), 400, invalid, `async on_failure: version 2 of function \"other\" does not exist`},
		{"destination to no alias", patch(`{"async":{"on_failure":"function:other:canary"}}`), 400, invalid, `alias \"canary\" of function \"other\" does not exist`},
		{"destination to itself", patch(`{"async":{"on_success":"function:hello:live"}}`), 400, invalid, "its own destination"},
		{"schedule of no version", patch(`{"schedules":[{"expression":"rate(1 hour)","qualifier":"5"}]}`), 400, invalid, `schedule \"schedule-1\": version 5 of function \"hello\" does not exist`},
		{"schedule of no alias", patch(`{"schedules":[{"name":"a","expression":"rate(1 hour)"},{"name":"b","expression":"rate(1 hour)","qualifier":"canary"}]}`), 400, invalid, `schedule \"b\": alias \"canary\" of function \"hello\" does not exist`},
		{"schedule of another's alias only", patch(`{"schedules":[{"expression":"rate(1 hour)","qualifier":"other"}]}`), 400, invalid, "does not exist"},
		{"cron February 30", patch(`{"schedules":[{"expression":"cron(0 0 30 2 ? *)"}]}`), 400, invalid, "it never fires"},
		{"cron February 31 any weekday", patch(`{"schedules":[{"expression":"cron(0 12 31 FEB ? *)","timezone":"Europe/Paris"}]}`), 400, invalid, "it never fires"},
		{"five-field April 31", patch(`{"schedules":[{"expression":"0 0 31 4 *"}]}`), 400, invalid, "it never fires"},
		{"leap day of a common year", patch(`{"schedules":[{"expression":"cron(0 0 29 2 ? 2027)"}]}`), 400, invalid, "it never fires"},
		{"cron of years past", patch(`{"schedules":[{"expression":"cron(0 0 1 1 ? 2020)"}]}`), 400, invalid, "it never fires again"},
	})

	// What exists is accepted: versions and aliases of another function
	// or of this one, topics (made when published to), and a rare day.
	r := patch(`{"async":{"on_success":"function:other:live","on_failure":"function:other:1"},
		"schedules":[{"name":"v","expression":"rate(1 hour)","qualifier":"1"},
			{"name":"a","expression":"cron(0 0 29 2 ? *)","qualifier":"live"},
			{"name":"l","expression":"0 0 29 2 *","qualifier":"$LATEST"}]}`)()
	mustStatus(t, r, http.StatusOK)
	mustStatus(t, patch(`{"async":{"on_success":"function:other","on_failure":"topic:nobody.yet"}}`)(), http.StatusOK)
	mustStatus(t, c.create(`{"name":"third","runtime":"nodejs","handler":"index.handler","async":{"on_success":"function:hello:live"}}`,
		zipOf(t, helloCode)), http.StatusCreated)

	// A destination deleted since does not block another change.
	mustStatus(t, c.json("DELETE", "/v1/functions/other", nil), http.StatusNoContent)
	mustStatus(t, c.json("PATCH", "/v1/functions/hello", map[string]int{"memory_mb": 256}), http.StatusOK)
}

// TestBodiesReadAsSent sends bodies that encoding/json would read other
// than as sent (a key twice: the last wins; bytes that are not UTF-8: they
// become U+FFFD) to every kind of call that reads a caller's JSON: each is
// a 400 that changes nothing.
func TestBodiesReadAsSent(t *testing.T) {
	c, state := twoFunctions(t)
	patch := c.patcher("/v1/functions/hello")
	post := func(path, ctype, body string, hdr ...string) func() resp {
		return func() resp { return c.do("POST", path, ctype, []byte(body), hdr...) }
	}
	const (
		invalid = invalidParameter
		content = "InvalidRequestContentException"
		ce      = "application/cloudevents+json"
		event   = `"specversion":"1.0","id":"e1","source":"/shop","type":"order"`
	)
	refuseAll(t, state, []badCall{
		{"key twice", patch(`{"memory_mb":256,"memory_mb":512}`), 400, invalid, `the key \"memory_mb\" appears twice in the body`},
		{"key twice, once escaped", patch(`{"timeout":5,"\u0074imeout":6}`), 400, invalid, `the key \"timeout\" appears twice`},
		{"nested key twice", patch(`{"async":{"retries":1,"retries":2}}`), 400, invalid, `the key \"retries\" appears twice in async`},
		{"env key twice", patch(`{"env":{"A":"1","A":"2"}}`), 400, invalid, `the key \"A\" appears twice in env`},
		{"schedule key twice", patch(`{"schedules":[{"expression":"rate(1 hour)","expression":"rate(2 hours)"}]}`), 400, invalid, `appears twice in schedules[0]`},
		{"not UTF-8", patch("{\"description\":\"caf\xe9\"}"), 400, invalid, "not valid UTF-8 (at byte 19)"},
		{"not UTF-8 in an env key", patch("{\"env\":{\"\xff\":\"x\"}}"), 400, invalid, "not valid UTF-8"},
		{"body over 1 MiB", patch(`{"description":"` + strings.Repeat(" ", 1<<20) + `"}`), 413, "RequestTooLargeException", "at most"},
		{"alias key twice", func() resp {
			return c.do("PUT", "/v1/functions/hello/aliases/beta", "application/json", []byte(`{"version":1,"version":1}`))
		}, 400, invalid, `the key \"version\" appears twice`},
		{"alias not UTF-8", func() resp {
			return c.do("PUT", "/v1/functions/hello/aliases/beta", "application/json", []byte("{\"version\":1,\"description\":\"\xc0\"}"))
		}, 400, invalid, "not valid UTF-8"},
		{"publish not UTF-8", post("/v1/functions/hello/versions", "application/json", "{\"description\":\"\xed\xa0\x80\"}"), 400, invalid, "not valid UTF-8"},
		{"subscription key twice", post("/v1/subscriptions", "application/json", `{"topic":"orders","function":"hello","function":"other"}`), 400, invalid, `the key \"function\" appears twice`},
		{"subscription filter key twice", post("/v1/subscriptions", "application/json", `{"topic":"orders","function":"hello","exact":{"type":"a","type":"b"}}`), 400, invalid, "appears twice in exact"},
		{"subscription not UTF-8", post("/v1/subscriptions", "application/json", "{\"topic\":\"orders\",\"function\":\"hello\",\"exact\":{\"type\":\"\xff\"}}"), 400, invalid, "not valid UTF-8"},
		{"event id twice", post("/v1/events/orders", ce, `{`+event+`,"id":"e2"}`), 400, content, `attribute \"id\" appears more than once`},
		{"event type twice", post("/v1/events/orders", ce, `{`+event+`,"type":"refund"}`), 400, content, `attribute \"type\" appears more than once`},
		{"event not UTF-8", post("/v1/events/orders", ce, "{"+event+",\"subject\":\"\xff\"}"), 400, content, "not valid UTF-8"},
		{"event data not UTF-8", post("/v1/events/orders", ce, "{"+event+",\"data\":{\"a\":\"\xff\"}}"), 400, content, "not valid UTF-8"},
		{"wrapped event not UTF-8", post("/v1/events/orders", "application/json", "{\"a\":\"\xff\"}"), 400, content, "not valid UTF-8"},
		{"invoke payload not UTF-8", post("/2015-03-31/functions/hello/invocations", "application/json", "{\"a\":\"\xff\"}"), 400, content, "Could not parse request body into json"},
		{"async invoke payload not UTF-8", post("/2015-03-31/functions/hello/invocations", "application/json", "\"\xc3\"", "X-Amz-Invocation-Type", "Event"), 400, content, "Could not parse request body into json"},
	})
}

// TestNoOpPatchKeepsRevision sends updates that change nothing: no write,
// so the revision, updated_at and ETag stay, and an If-Match read before
// them still works; a real change then bumps the revision.
func TestNoOpPatchKeepsRevision(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	code := zipOf(t, helloCode)
	mustStatus(t, c.create(`{"name":"hello","runtime":"nodejs","handler":"index.handler","memory_mb":256,
		"env":{"A":"1"},"concurrency":4,"async":{"retries":1,"on_failure":"topic:failed"},
		"schedules":[{"name":"tick","expression":"rate(1 hour)"}]}`, code), http.StatusCreated)
	type fn struct {
		Revision  uint64
		UpdatedAt string `json:"updated_at"`
		MemoryMB  int    `json:"memory_mb"`
	}
	var f0 fn
	r := c.json("GET", "/v1/functions/hello", nil)
	r.decode(t, &f0)
	before := r.body
	etag := r.header.Get("ETag")

	for _, body := range []string{
		`null`, `{}`, ` { } `, `{"async":{}}`, `{"memory_mb":256}`, `{"name":"hello","runtime":"nodejs","handler":"index.handler"}`,
		`{"env":{"A":"1"},"concurrency":4}`, `{"async":{"retries":1,"on_failure":"topic:failed","max_event_age":21600}}`,
		`{"schedules":[{"name":"tick","expression":"rate(1 hour)"}]}`,
	} {
		for range 3 {
			r := c.do("PATCH", "/v1/functions/hello", "application/json", []byte(body), "If-Match", etag)
			mustStatus(t, r, http.StatusOK)
			var f fn
			r.decode(t, &f)
			if f.Revision != f0.Revision || f.UpdatedAt != f0.UpdatedAt || r.header.Get("ETag") != etag {
				t.Fatalf("PATCH %s: revision %d at %s (ETag %s), want %d at %s (%s)", body, f.Revision, f.UpdatedAt,
					r.header.Get("ETag"), f0.Revision, f0.UpdatedAt, etag)
			}
		}
	}
	// The same code again is no write either.
	r = c.do("PUT", "/v1/functions/hello/code", "application/zip", code, "If-Match", etag)
	mustStatus(t, r, http.StatusOK)
	if after := c.json("GET", "/v1/functions/hello", nil).body; !bytes.Equal(after, before) {
		t.Fatalf("no-op updates changed the function:\n%s\n%s", before, after)
	}

	// Someone else's If-Match, read before them all, still holds.
	r = c.json("PATCH", "/v1/functions/hello", map[string]int{"memory_mb": 512}, "If-Match", etag)
	mustStatus(t, r, http.StatusOK)
	var f1 fn
	r.decode(t, &f1)
	if f1.Revision <= f0.Revision || f1.MemoryMB != 512 {
		t.Fatalf("a real change: revision %d, memory %d; want past %d, 512", f1.Revision, f1.MemoryMB, f0.Revision)
	}
	// A stale If-Match is refused even when the change is none.
	r = c.do("PATCH", "/v1/functions/hello", "application/json", []byte(`{}`), "If-Match", etag)
	if r.status != http.StatusConflict || r.errType() != "PreconditionFailedException" {
		t.Fatalf("no-op PATCH with a stale If-Match: %d %s", r.status, r.body)
	}
}

// wasmCommand is the smallest WASI command: an empty _start.
const wasmCommand = "\x00asm\x01\x00\x00\x00" +
	"\x01\x04\x01\x60\x00\x00" + // type 0: func()
	"\x03\x02\x01\x00" + // function 0 of type 0
	"\x07\x0a\x01\x06_start\x00\x00" + // export it as _start
	"\x0a\x04\x01\x02\x00\x0b" // its body: end

// TestPatchChecksWasmCode makes sure a PATCH cannot point a wasm function
// at a file that is not a module it could run: changing the handler, or
// the runtime to wasm, runs the check deploy runs.
func TestPatchChecksWasmCode(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n)
	files := map[string]string{"main.wasm": wasmCommand, "also.wasm": wasmCommand, "junk.wasm": "not a module",
		"env.wasm": "\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x02\x0b\x01\x03env\x03foo\x00\x00", // imports env.foo
		"index.js": helloCode["index.js"]}
	mustStatus(t, c.create(`{"name":"wasm","runtime":"wasm","handler":"main.wasm"}`, zipOf(t, files)), http.StatusCreated)
	mustStatus(t, c.create(`{"name":"node","runtime":"nodejs","handler":"index.handler"}`, zipOf(t, files)), http.StatusCreated)
	state := func() string {
		return string(c.json("GET", "/v1/functions/wasm", nil).body) + string(c.json("GET", "/v1/functions/node", nil).body)
	}
	before := state()
	for _, tc := range []struct {
		name, fn, body, mentions string
	}{
		{"handler not a module", "wasm", `{"handler":"junk.wasm"}`, "not a WebAssembly module"},
		{"handler not WASI", "wasm", `{"handler":"env.wasm"}`, "env.foo"},
		{"handler not in the code", "wasm", `{"handler":"gone.wasm"}`, "names no module"},
		{"runtime to wasm, handler not a module", "node", `{"runtime":"wasm","handler":"junk.wasm"}`, "not a WebAssembly module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("PATCH", "/v1/functions/"+tc.fn, "application/json", []byte(tc.body))
			if r.status != http.StatusBadRequest || r.errType() != "InvalidCodeException" {
				t.Fatalf("got %d %s, want 400 InvalidCodeException", r.status, r.body)
			}
			if !strings.Contains(string(r.body), tc.mentions) {
				t.Errorf("message %s does not mention %q", r.body, tc.mentions)
			}
			if after := state(); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}
	mustStatus(t, c.do("PATCH", "/v1/functions/wasm", "application/json", []byte(`{"handler":"also.wasm","memory_mb":256}`)), http.StatusOK)
	mustStatus(t, c.do("PATCH", "/v1/functions/node", "application/json", []byte(`{"runtime":"wasm","handler":"main.wasm"}`)), http.StatusOK)
}
