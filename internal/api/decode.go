package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/wisp-dev/wisp/apitype"
)

// decodeJSON reads a bounded JSON body into v: the one way the API reads a
// caller's JSON. It refuses what encoding/json lets by silently: unknown
// fields (a typo would be ignored), invalid UTF-8 (it would become U+FFFD),
// a key given twice in one object (the last would win), and a second value
// after the first. An empty body is allowed when empty is true.
func decodeJSON(r io.Reader, v any, empty bool) error {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONBody+1))
	if err != nil {
		return badRequestOrTooLarge("reading the body", err)
	}
	if len(b) > maxJSONBody {
		return apiError(apitype.TypeRequestTooLarge,
			fmt.Sprintf("a JSON body must be at most %d bytes", maxJSONBody))
	}
	if empty && len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if !utf8.Valid(b) {
		return badRequest(fmt.Sprintf("body is not valid UTF-8 (at byte %d)", invalidUTF8At(b)))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body is not valid JSON for this call: " + err.Error())
	}
	if dec.More() {
		return badRequest("body has more than one JSON value")
	}
	if err := checkDuplicateKeys(b); err != nil {
		return badRequest("body is not valid JSON for this call: " + err.Error())
	}
	return nil
}

// invalidUTF8At is the offset of the first byte of b that is not valid
// UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// checkDuplicateKeys refuses a JSON document, already known to be valid,
// in which an object has a key twice. Keys compare as decoded, so "a" and
// "\u0061" are the same key.
func checkDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return walkValue(dec, "")
}

// walkValue reads one value from dec, refusing an object with a key twice;
// path says where the value is, for the message.
func walkValue(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string) // an object's keys are strings
			if seen[key] {
				return fmt.Errorf("the key %s appears twice in %s", strconv.Quote(key), where(path))
			}
			seen[key] = true
			if err := walkValue(dec, path+"."+key); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing brace
		return err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing bracket
		return err
	}
	return nil
}

func where(path string) string {
	switch {
	case path == "":
		return "the body"
	case path[0] == '.':
		return path[1:]
	}
	return path
}
