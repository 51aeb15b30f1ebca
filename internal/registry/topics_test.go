package registry

import (
	"strings"
	"testing"
)

func TestTopicMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, topic string
		want           bool
	}{
		{"orders", "orders", true},
		{"orders", "orders.created", false},
		{"orders", "order", false},
		{"audit.*", "audit.login", true},
		{"audit.*", "audit", false},
		{"audit.*", "audit.login.failed", false},
		{"audit.>", "audit.login", true},
		{"audit.>", "audit.login.failed", true},
		{"audit.>", "audit", false},
		{"*.created", "orders.created", true},
		{"*.created", "orders.deleted", false},
		{"*", "orders", true},
		{"*", "orders.created", false},
		{">", "orders", true},
		{">", "a.b.c", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
	} {
		if got := TopicMatches(tc.pattern, tc.topic); got != tc.want {
			t.Errorf("TopicMatches(%q, %q) = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
}

func TestCheckTopicPattern(t *testing.T) {
	for _, p := range []string{"orders", "audit.*", "audit.>", "*", ">", "*.created", "a.*.c", "dlq"} {
		if err := CheckTopicPattern(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for p, want := range map[string]string{
		"":                       "dot-separated",
		"Orders":                 "dot-separated",
		"a..b":                   "dot-separated",
		"a.>.b":                  "last word",
		"a*":                     "dot-separated",
		"dlq.x":                  "written by the node",
		"dlq.*":                  "written by the node",
		"dlq.>":                  "written by the node",
		strings.Repeat("a", 201): "longer than",
	} {
		if err := CheckTopicPattern(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", p, err, want)
		}
	}
	if err := checkPublish([]string{"a", "a"}); err == nil {
		t.Error("a grant given twice was taken")
	}
	if err := checkPublish(make([]string, MaxPublishGrants+1)); err == nil {
		t.Error("too many grants were taken")
	}
}
