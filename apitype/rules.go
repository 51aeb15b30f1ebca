package apitype

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxTopicLen bounds a topic's name, and a topic pattern's.
const MaxTopicLen = 200

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// A topic is dot-separated words: orders, orders.created, dlq.resize.
	topicRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$`)
)

// ReservedTopics are words of the events API that cannot name a topic.
var ReservedTopics = map[string]bool{"catalog": true}

// CheckName checks a function or alias name (kind says which, for the
// message): [a-z][a-z0-9-]{0,62}.
func CheckName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q must match [a-z][a-z0-9-]{0,62}", kind, name)
	}
	return nil
}

// CheckTopic checks an event topic's name: dot-separated words of a-z,
// 0-9, - and _, not a reserved word.
func CheckTopic(topic string) error {
	if len(topic) > MaxTopicLen || !topicRE.MatchString(topic) {
		return fmt.Errorf("topic %q must be dot-separated words of a-z, 0-9, - and _ (at most %d characters)", topic, MaxTopicLen)
	}
	if ReservedTopics[topic] {
		return fmt.Errorf("topic %q is a reserved word", topic)
	}
	return nil
}

// ParseSince reads a duration as Go does, and also whole days ("7d"): the
// durations before now that the logs and usage calls take.
func ParseSince(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3660 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	return d, nil
}

// MaxAttributeNameLen is the CloudEvents limit on attribute names.
const MaxAttributeNameLen = 20

// ValidAttributeName reports whether s is a legal CloudEvents attribute
// name: 1 to 20 lowercase ASCII letters or digits.
func ValidAttributeName(s string) bool {
	if len(s) == 0 || len(s) > MaxAttributeNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// CheckAttributeValue refuses what CloudEvents bars from String values:
// invalid UTF-8, control characters and noncharacters. Refusing them also
// keeps header values clean when an event goes out in binary mode. name is
// the attribute's, for the message.
func CheckAttributeValue(name, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	for _, r := range s {
		switch {
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return fmt.Errorf("%s contains the control character %U", name, r)
		case (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe:
			return fmt.Errorf("%s contains the noncharacter %U", name, r)
		}
	}
	return nil
}

// ContextAttributes are the context attributes CloudEvents defines, which
// no extension may be named after (nor "data", the event's payload).
var ContextAttributes = []string{"specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time"}

// CheckExtensions checks a CloudEvent's extension attributes: names of 1 to
// 20 lowercase letters or digits, none a context attribute or "data", and
// values CheckAttributeValue allows.
func CheckExtensions(ext map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(ext)) {
		switch {
		case !ValidAttributeName(name):
			return fmt.Errorf("attribute name %q is not 1 to %d lowercase letters or digits", name, MaxAttributeNameLen)
		case name == "data" || slices.Contains(ContextAttributes, name):
			return fmt.Errorf("extension name %q is reserved", name)
		}
		if err := CheckAttributeValue(name, ext[name]); err != nil {
			return err
		}
	}
	return nil
}
