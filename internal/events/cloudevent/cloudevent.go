// Package cloudevent owns the CloudEvents 1.0 event as the event gateway
// sees it: reading one from an HTTP request (structured mode, binary mode,
// or a plain JSON body it wraps), checking it against the spec, writing and
// reading the structured JSON form that functions receive, and matching it
// against a subscription's filter. It does no I/O and holds no state.
package cloudevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wisp-dev/wisp/apitype"
)

const (
	// SpecVersion is the only CloudEvents version this package reads and writes.
	SpecVersion = "1.0"
	// ContentType is the media type of the structured JSON form.
	ContentType = "application/cloudevents+json"
)

var (
	// ErrInvalid is an event, request or filter that breaks the rules; the
	// gateway answers 400.
	ErrInvalid = errors.New("cloudevent: invalid event")
	// ErrUnsupported is a content mode or event format this package does not
	// read, such as a batch; the gateway answers 415.
	ErrUnsupported = errors.New("cloudevent: unsupported content mode")
)

// eventError carries a message that reads on its own
// ("cloudevent: binary mode: ce-type header is missing") while errors.Is
// still finds ErrInvalid or ErrUnsupported.
type eventError struct {
	kind error // ErrInvalid or ErrUnsupported
	msg  string
}

func (e *eventError) Error() string { return "cloudevent: " + e.msg }
func (e *eventError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &eventError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

func unsupportedf(format string, args ...any) error {
	return &eventError{kind: ErrUnsupported, msg: fmt.Sprintf(format, args...)}
}

// within puts where an error arose in front of its message.
func within(where string, err error) error {
	var ee *eventError
	if errors.As(err, &ee) {
		return &eventError{kind: ee.kind, msg: where + ": " + ee.msg}
	}
	return err
}

// Event is a CloudEvents 1.0 event. An empty string or a zero Time is an
// absent attribute; so is empty Data or DataBase64.
type Event struct {
	// Required context attributes.
	SpecVersion, ID, Source, Type string
	// Optional context attributes.
	Subject, DataContentType, DataSchema string
	Time                                 time.Time
	// Extensions holds every other context attribute, by name, as strings:
	// CloudEvents gives every attribute type a canonical string form.
	Extensions map[string]string
	// Data is the data when it is JSON: one JSON value, kept byte for byte
	// as it arrived. Structured mode keeps its "data" member here whatever
	// the datacontenttype, so data sent as a JSON string with a non-JSON
	// type (e.g. XML) is here as that JSON string.
	Data json.RawMessage
	// DataBase64 is the data when it is not JSON: the body in binary mode
	// with a non-JSON content type, or "data_base64" in structured mode.
	DataBase64 []byte
}

// coreAttrs are the context attributes the spec defines, which an
// extension may not be named after; "data" is the event's payload.
var coreAttrs = apitype.ContextAttributes

// maxNameLen is the spec's limit on attribute names.
const maxNameLen = apitype.MaxAttributeNameLen

// validName reports whether s is a legal attribute name: 1 to 20 lowercase
// ASCII letters or digits, the rule a client checks too.
func validName(s string) bool { return apitype.ValidAttributeName(s) }

// Validate checks e against the CloudEvents 1.0 rules: specversion "1.0";
// id, source and type present; attribute names of 1 to 20 lowercase letters
// or digits, extensions not named after a context attribute or "data";
// strings of valid UTF-8 without control characters; a time that RFC 3339
// can express; Data a JSON value other than null; at most one kind of data.
func (e Event) Validate() error {
	switch e.SpecVersion {
	case SpecVersion:
	case "":
		return invalidf("specversion is missing")
	default:
		return invalidf("specversion is %q; only %q is supported", e.SpecVersion, SpecVersion)
	}
	for _, a := range []struct{ name, value string }{{"id", e.ID}, {"source", e.Source}, {"type", e.Type}} {
		if a.value == "" {
			return invalidf("%s is missing or empty", a.name)
		}
	}
	for _, a := range []struct{ name, value string }{
		{"id", e.ID}, {"source", e.Source}, {"type", e.Type},
		{"subject", e.Subject}, {"datacontenttype", e.DataContentType}, {"dataschema", e.DataSchema},
	} {
		if err := checkString(a.name, a.value); err != nil {
			return err
		}
	}
	if !e.Time.IsZero() && !writableTime(e.Time) {
		return invalidf("time %s cannot be written in RFC 3339", e.Time)
	}
	if err := apitype.CheckExtensions(e.Extensions); err != nil {
		return invalidf("%s", err)
	}
	if len(e.Data) > 0 {
		if len(e.DataBase64) > 0 {
			return invalidf("data and data_base64 are both set; an event has one kind of data")
		}
		if !validJSON(e.Data) {
			return invalidf("data is not valid JSON in UTF-8")
		}
		if isJSONNull(e.Data) {
			return invalidf("data is JSON null; leave Data empty for an event without data")
		}
	}
	return nil
}

// checkString refuses what the spec bars from String values
// (apitype.CheckAttributeValue, which a client checks too).
func checkString(name, s string) error {
	if err := apitype.CheckAttributeValue(name, s); err != nil {
		return invalidf("%s", err)
	}
	return nil
}

// writableTime reports whether t survives being written in RFC 3339 and
// read back: its year is 0 to 9999 and its offset whole minutes.
func writableTime(t time.Time) bool {
	back, err := time.Parse(time.RFC3339Nano, t.Format(time.RFC3339Nano))
	return err == nil && back.Equal(t)
}

// Attr returns the context attribute called name and whether e has it:
// specversion, id, source, type, subject, datacontenttype, dataschema, time
// (in RFC 3339 with nanoseconds, in UTC, so that a prefix such as "2024-05"
// selects a month), or an extension. The data is not an attribute.
func (e Event) Attr(name string) (string, bool) {
	if p := e.stringAttr(name); p != nil {
		return *p, *p != ""
	}
	switch name {
	case "time":
		if e.Time.IsZero() {
			return "", false
		}
		return e.Time.UTC().Format(time.RFC3339Nano), true
	case "data":
		return "", false
	}
	ext, ok := e.Extensions[name]
	return ext, ok
}

// stringAttr is the field of the context attribute called name that is a
// string as it is, or nil (time, data, extensions).
func (e *Event) stringAttr(name string) *string {
	switch name {
	case "specversion":
		return &e.SpecVersion
	case "id":
		return &e.ID
	case "source":
		return &e.Source
	case "type":
		return &e.Type
	case "subject":
		return &e.Subject
	case "datacontenttype":
		return &e.DataContentType
	case "dataschema":
		return &e.DataSchema
	}
	return nil
}

// validJSON reports whether b is one JSON value in UTF-8, as JSON must be:
// json.Valid alone lets invalid bytes through.
func validJSON(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

// trimJSONSpace removes the whitespace JSON allows around a value.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

func isJSONNull(b []byte) bool { return string(trimJSONSpace(b)) == "null" }
