package cloudevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"
)

// MarshalJSON writes e in the structured JSON form: the context attributes
// as top-level members (specversion, id, source, type, subject,
// datacontenttype, dataschema, time, then extensions by name), then "data"
// or "data_base64". It refuses an event that fails Validate, so Parse reads
// back whatever it writes as the same event: Time the same instant at the
// same offset, Data the same bytes less any whitespace around the value
// (which events from Parse and FromHTTP never have).
func (e Event) MarshalJSON() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	b := []byte{'{'}
	member := func(name, value string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = appendJSONString(b, value)
	}
	var t string
	if !e.Time.IsZero() {
		t = e.Time.Format(time.RFC3339Nano)
	}
	// A context attribute set to "" is absent; an extension set to "" is not.
	for _, a := range []struct{ name, value string }{
		{"specversion", e.SpecVersion}, {"id", e.ID}, {"source", e.Source}, {"type", e.Type},
		{"subject", e.Subject}, {"datacontenttype", e.DataContentType}, {"dataschema", e.DataSchema},
		{"time", t},
	} {
		if a.value != "" {
			member(a.name, a.value)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.Extensions)) {
		member(name, e.Extensions[name])
	}
	switch {
	case len(e.Data) > 0:
		b = append(b, `,"data":`...)
		b = append(b, trimJSONSpace(e.Data)...)
	case len(e.DataBase64) > 0:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.DataBase64)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string. Validate has already refused
// invalid UTF-8 and control characters; escaping them anyway keeps the
// output JSON whatever s holds.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// Parse reads an event in the structured JSON form and validates it.
// Members other than the spec's attributes, "data" and "data_base64" are
// extensions; their JSON numbers and booleans become their text ("5",
// "true"), objects and arrays are refused. A member that is JSON null is
// absent, "data" included. Parse refuses what encoding/json would let by
// silently: bytes that are not UTF-8 (they would become U+FFFD) and a
// member given twice (the last would win, so that two readers could see
// two events).
func Parse(b []byte) (Event, error) {
	if t := trimJSONSpace(b); len(t) == 0 || t[0] != '{' {
		return Event{}, invalidf("the event is not a JSON object")
	}
	if !utf8.Valid(b) {
		return Event{}, invalidf("the event is not valid UTF-8")
	}
	members, err := objectMembers(b)
	if err != nil {
		return Event{}, err
	}
	var e Event
	if members["data"] != nil && !isJSONNull(members["data"]) &&
		members["data_base64"] != nil && !isJSONNull(members["data_base64"]) {
		return Event{}, invalidf("data and data_base64 are both present; an event has one kind of data")
	}
	// In name order, so that of several faults the same one is reported.
	for _, name := range slices.Sorted(maps.Keys(members)) {
		raw := members[name]
		if isJSONNull(raw) {
			continue
		}
		switch name {
		case "data":
			e.Data = raw
		case "data_base64":
			s, err := jsonString(name, raw)
			if err != nil {
				return Event{}, err
			}
			data, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return Event{}, invalidf("data_base64 is not valid base64: %v", err)
			}
			if len(data) > 0 {
				e.DataBase64 = data
			}
		default:
			v, err := attrValue(name, raw)
			if err != nil {
				return Event{}, err
			}
			if err := setAttr(&e, name, v); err != nil {
				return Event{}, err
			}
		}
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// objectMembers reads the members of the JSON object b, refusing one
// named twice. Names compare as decoded: "id" and "\u0069d" are one.
func objectMembers(b []byte) (map[string]json.RawMessage, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, invalidf("the event is not valid JSON: %v", err)
	}
	// b is a valid object: walking its top level cannot fail.
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, invalidf("the event is not valid JSON: %v", err)
	}
	seen := make(map[string]bool, len(members))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalidf("the event is not valid JSON: %v", err)
		}
		name, _ := tok.(string) // an object's keys are strings
		if seen[name] {
			return nil, invalidf("attribute %q appears more than once", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, invalidf("the event is not valid JSON: %v", err)
		}
	}
	return members, nil
}

// UnmarshalJSON reads the structured JSON form as Parse does, so an Event
// inside a larger JSON document decodes correctly.
func (e *Event) UnmarshalJSON(b []byte) error {
	if isJSONNull(b) {
		return nil // as encoding/json does for null
	}
	ev, err := Parse(b)
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// attrValue turns a member's JSON value into its attribute string: the
// spec's attributes must be JSON strings; an extension may also be a number
// or boolean, kept as its JSON text.
func attrValue(name string, raw json.RawMessage) (string, error) {
	raw = trimJSONSpace(raw)
	if slices.Contains(coreAttrs, name) {
		return jsonString(name, raw)
	}
	switch raw[0] { // not empty: the document is valid JSON
	case '"':
		return jsonString(name, raw)
	case '{', '[':
		return "", invalidf("extension %s is %s; extension values are strings, numbers or booleans", name, jsonKind(raw))
	}
	return string(raw), nil // a number, true or false
}

func jsonString(name string, raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidf("%s is %s, not a JSON string", name, jsonKind(raw))
	}
	return s, nil
}

// jsonKind names the kind of a valid JSON value, for error messages.
func jsonKind(raw json.RawMessage) string {
	switch raw = trimJSONSpace(raw); raw[0] {
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case 't', 'f':
		return "a JSON boolean"
	case '"':
		return "a JSON string"
	}
	return "a JSON number"
}

// setAttr sets the attribute called name from its string form, as both
// content modes carry it.
func setAttr(e *Event, name, value string) error {
	if p := e.stringAttr(name); p != nil {
		*p = value
		return nil
	}
	if name == "time" {
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return invalidf("time %q is not an RFC 3339 timestamp", value)
		}
		e.Time = t
		return nil
	}
	if e.Extensions == nil {
		e.Extensions = map[string]string{}
	}
	e.Extensions[name] = value
	return nil
}
