package cloudevent

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Wrap is what FromHTTP needs to make an event of a plain JSON body.
type Wrap struct {
	// ID is the new event's id; empty means a fresh random UUID.
	ID string
	// Source and Type are the new event's source and type; both are required.
	Source, Type string
	// Now is the new event's time; zero leaves the time absent.
	Now time.Time
}

// FromHTTP reads an event from an HTTP request with headers h and body,
// which the caller has already read and bounded. The Content-Type and the
// ce-* headers choose how, as the CloudEvents HTTP binding says:
//
//   - structured mode, Content-Type application/cloudevents+json (with any
//     parameters): the body is the event, read by Parse;
//   - binary mode, a ce-specversion header: the attributes come from the ce-*
//     headers, percent-decoded, the Content-Type is the datacontenttype and
//     the body the data: Data if the content type is JSON or absent and the
//     body is JSON in UTF-8, DataBase64 otherwise;
//   - batched mode, application/cloudevents-batch+json, and event formats
//     other than JSON: refused with ErrUnsupported;
//   - anything else: the body must be JSON in UTF-8, and becomes the data
//     of a new event made from w, with datacontenttype application/json.
//
// Header names match in any case. Every other error wraps ErrInvalid.
func FromHTTP(h http.Header, body []byte, w Wrap) (Event, error) {
	contentTypes, ce := scanHeaders(h)
	if len(contentTypes) > 1 {
		return Event{}, invalidf("the Content-Type header appears more than once")
	}
	var contentType string
	if len(contentTypes) == 1 {
		contentType = contentTypes[0]
	}
	mediaType := mediaTypeOf(contentType)
	switch {
	case mediaType == ContentType:
		e, err := Parse(body)
		if err != nil {
			return Event{}, within("structured mode", err)
		}
		return e, nil
	case strings.HasPrefix(mediaType, "application/cloudevents-batch"):
		return Event{}, unsupportedf("batched mode (%s) is not supported; send one event per request", mediaType)
	case strings.HasPrefix(mediaType, "application/cloudevents"):
		return Event{}, unsupportedf("event format %s is not supported; send %s or binary mode", mediaType, ContentType)
	case ce["specversion"] != nil:
		e, err := fromBinary(ce, contentType, body)
		if err != nil {
			return Event{}, within("binary mode", err)
		}
		return e, nil
	}
	return wrap(body, w)
}

// scanHeaders returns the Content-Type values and the ce-* header values by
// attribute name, matching header names in any case: a real request's
// header is canonical, one built by hand may not be.
func scanHeaders(h http.Header) (contentType []string, ce map[string][]string) {
	ce = map[string][]string{}
	for key, values := range h {
		key = strings.ToLower(key)
		switch {
		case key == "content-type":
			contentType = append(contentType, values...)
		case strings.HasPrefix(key, "ce-"):
			name := key[len("ce-"):]
			ce[name] = append(ce[name], values...)
		}
	}
	return contentType, ce
}

// mediaTypeOf returns a Content-Type's media type, lowercase, without
// parameters.
func mediaTypeOf(contentType string) string {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mediaType))
}

// isJSONType reports whether a datacontenttype declares JSON data: */json
// or */*+json, or absent, which the JSON format reads as application/json.
func isJSONType(contentType string) bool {
	if contentType == "" {
		return true
	}
	_, subtype, ok := strings.Cut(mediaTypeOf(contentType), "/")
	return ok && (subtype == "json" || strings.HasSuffix(subtype, "+json"))
}

func fromBinary(ce map[string][]string, contentType string, body []byte) (Event, error) {
	for _, name := range []string{"id", "source", "type"} {
		if ce[name] == nil {
			return Event{}, invalidf("ce-%s header is missing", name)
		}
	}
	if ce["datacontenttype"] != nil {
		return Event{}, invalidf("ce-datacontenttype header is not allowed; binary mode carries the data's type in Content-Type")
	}
	e := Event{DataContentType: contentType}
	// In name order, so that of several faults the same one is reported.
	for _, name := range slices.Sorted(maps.Keys(ce)) {
		if len(ce[name]) > 1 {
			return Event{}, invalidf("ce-%s header appears more than once", name)
		}
		v, err := decodeHeaderValue(ce[name][0])
		if err != nil {
			return Event{}, invalidf("ce-%s header: %v", name, err)
		}
		if err := setAttr(&e, name, v); err != nil {
			return Event{}, within("ce-"+name+" header", err)
		}
	}
	if len(body) > 0 {
		if data := trimJSONSpace(body); isJSONType(contentType) && validJSON(data) {
			if !isJSONNull(data) {
				e.Data = bytes.Clone(data)
			}
		} else {
			e.DataBase64 = bytes.Clone(body)
		}
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// decodeHeaderValue undoes the HTTP binding's encoding of an attribute
// value: first a double-quoted string, which older senders may use, then
// one round of percent-decoding, which must leave valid UTF-8.
func decodeHeaderValue(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' {
				if i++; i == len(v)-1 {
					return "", errors.New("quoted value ends in a backslash")
				}
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	// PathUnescape decodes %XX in any case and, unlike QueryUnescape,
	// leaves "+" alone.
	s, err := url.PathUnescape(v)
	if err != nil {
		return "", fmt.Errorf("bad percent-encoding in %q", v)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%q is not valid UTF-8 once percent-decoded", v)
	}
	return s, nil
}

func wrap(body []byte, w Wrap) (Event, error) {
	data := trimJSONSpace(body)
	if !json.Valid(data) {
		return Event{}, invalidf("the request body is not JSON; send JSON, or a CloudEvent in structured mode (Content-Type: %s) or binary mode (ce-* headers)", ContentType)
	}
	if !utf8.Valid(data) {
		return Event{}, invalidf("the request body is not valid UTF-8, as JSON must be")
	}
	e := Event{
		SpecVersion:     SpecVersion,
		ID:              w.ID,
		Source:          w.Source,
		Type:            w.Type,
		Time:            w.Now.Round(0), // a monotonic clock reading means nothing in an event
		DataContentType: "application/json",
	}
	if e.ID == "" {
		e.ID = newUUID()
	}
	if !isJSONNull(data) {
		e.Data = bytes.Clone(data)
	}
	if err := e.Validate(); err != nil {
		return Event{}, within("wrapping a JSON body", err)
	}
	return e, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:]) // never fails: crypto/rand.Read crashes the program rather than return an error
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
