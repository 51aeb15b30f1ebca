package registry

import (
	"regexp"
	"strings"

	"github.com/wisp-dev/wisp/apitype"
)

var topicWordRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Topic patterns name the topics a function may publish to (its publish
// grants). They are the one wildcard rule of topics, as NATS has it for
// subjects: a pattern is dot-separated words, each a topic word, "*"
// (exactly one word) or, as the last word only, ">" (one or more words).
// "orders" matches orders only; "audit.*" matches audit.login but neither
// audit nor audit.login.failed; "audit.>" matches both of those last two.
const (
	// MaxPublishGrants bounds a function's publish grants.
	MaxPublishGrants = 20
	// DeadLetterPrefix is the first word of the topics the node writes a
	// function's dead letters to (dlq.NAME); no caller may publish there.
	DeadLetterPrefix = apitype.DeadLetterPrefix
)

// CheckTopicPattern checks a publish grant's pattern.
func CheckTopicPattern(p string) error {
	if len(p) > maxTopicLen {
		return invalid("topic pattern %q is longer than %d characters", p, maxTopicLen)
	}
	words := strings.Split(p, ".")
	for i, w := range words {
		switch {
		case w == "*":
		case w == ">" && i == len(words)-1:
		case w == ">":
			return invalid("topic pattern %q: > stands for the rest of the topic, so it must be the last word", p)
		case !topicWordRE.MatchString(w):
			return invalid("topic pattern %q must be dot-separated words of a-z, 0-9, - and _, or * (one word) or a last > (the rest)", p)
		}
	}
	if words[0] == DeadLetterPrefix && len(words) > 1 {
		return invalid("topic pattern %q: %s.* topics are written by the node only; no grant can give them", p, DeadLetterPrefix)
	}
	return nil
}

// TopicMatches reports whether a topic matches a pattern (see
// CheckTopicPattern); both are taken as already checked.
func TopicMatches(pattern, topic string) bool {
	pw, tw := strings.Split(pattern, "."), strings.Split(topic, ".")
	for i, w := range pw {
		if w == ">" {
			return len(tw) > i
		}
		if i >= len(tw) || (w != "*" && w != tw[i]) {
			return false
		}
	}
	return len(pw) == len(tw)
}

// IsDeadLetterTopic reports whether topic is one of the node's dead-letter
// topics (dlq.…).
func IsDeadLetterTopic(topic string) bool {
	return strings.HasPrefix(topic, DeadLetterPrefix+".")
}

// checkPublish checks a function's publish grants.
func checkPublish(grants []string) error {
	if len(grants) > MaxPublishGrants {
		return invalid("%d publish grants; at most %d", len(grants), MaxPublishGrants)
	}
	seen := map[string]bool{}
	for _, g := range grants {
		if err := CheckTopicPattern(g); err != nil {
			return err
		}
		if seen[g] {
			return invalid("publish grant %q is given twice", g)
		}
		seen[g] = true
	}
	return nil
}
