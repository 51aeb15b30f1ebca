package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/apitype"
)

// PublishOptions are a published event's CloudEvents attributes. When all
// are empty the node makes the event (a new id, a source naming the
// caller, type "wisp.event"); otherwise the event is sent in the HTTP
// binding's binary mode and Source and Type are required.
type PublishOptions struct {
	Type, Source, Subject string
	// ID is the event's id; empty means a new random UUID. An event with
	// the source and id of one published in the last two minutes is
	// stored once.
	ID string
	// Extensions are more attributes, by name (1 to 20 lowercase letters
	// or digits); not wisppublisher, which only the node sets.
	Extensions map[string]string
}

func (o PublishOptions) empty() bool {
	return o.Type == "" && o.Source == "" && o.Subject == "" && o.ID == "" && len(o.Extensions) == 0
}

func topicPath(topic string) string {
	return "/v1/events/" + url.PathEscape(topic)
}

// PublishEvent publishes data (JSON; empty for an event without data) on
// a topic, and returns once the node has stored it. Every subscription
// whose filter the event passes delivers it to its function.
func (c *Client) PublishEvent(ctx context.Context, topic string, data []byte, opt PublishOptions) (apitype.PublishResult, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = nil
	} else if !json.Valid(data) {
		return apitype.PublishResult{}, errors.New("client: an event's data must be JSON")
	}
	r := request{method: http.MethodPost, path: topicPath(topic)}
	if opt.empty() {
		if data == nil {
			data = []byte("null") // the node wraps it into an event without data
		}
	} else {
		h, err := binaryHeaders(opt)
		if err != nil {
			return apitype.PublishResult{}, err
		}
		r.header = h
	}
	if data != nil {
		r.body, r.size, r.contentType = bytes.NewReader(data), int64(len(data)), "application/json"
	}
	var res apitype.PublishResult
	_, err := c.call(ctx, r, &res)
	return res, err
}

// binaryHeaders are the ce-* headers of an event sent in the CloudEvents
// HTTP binding's binary mode, checked by the rules the node checks too.
func binaryHeaders(opt PublishOptions) (http.Header, error) {
	if opt.ID == "" {
		opt.ID = newUUID()
	}
	if err := checkAttributes(opt); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	h := http.Header{}
	set := func(name, value string) {
		if value != "" {
			h.Set("Ce-"+name, headerValue(value))
		}
	}
	set("specversion", specVersion)
	set("id", opt.ID)
	set("source", opt.Source)
	set("type", opt.Type)
	set("subject", opt.Subject)
	for name, value := range opt.Extensions {
		// Set even when empty: an empty extension is still an attribute.
		h.Set("Ce-"+name, headerValue(value))
	}
	return h, nil
}

// specVersion is the CloudEvents version the node reads.
const specVersion = "1.0"

// checkAttributes checks an event's attributes as the node will: id,
// source and type present, values and extensions CloudEvents allows.
func checkAttributes(opt PublishOptions) error {
	for _, a := range []struct{ name, value string }{{"id", opt.ID}, {"source", opt.Source}, {"type", opt.Type}} {
		if a.value == "" {
			return fmt.Errorf("%s is missing or empty", a.name)
		}
	}
	for _, a := range []struct{ name, value string }{{"id", opt.ID}, {"source", opt.Source}, {"type", opt.Type}, {"subject", opt.Subject}} {
		if err := apitype.CheckAttributeValue(a.name, a.value); err != nil {
			return err
		}
	}
	return apitype.CheckExtensions(opt.Extensions)
}

// headerValue percent-encodes an attribute value for its ce-* header, as
// the CloudEvents HTTP binding asks: space, '"', '%' and every byte
// outside printable ASCII.
func headerValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ReadEvents returns up to limit (0: the node's default) events of a
// topic, oldest first, from those stored after sequence number after (0:
// from the first kept); each topic numbers its own events. Each topic keeps
// its events 7 days or 64 MiB by default. A TopicEvent's Principal is who
// published it, as the event's wisppublisher attribute says.
func (c *Client) ReadEvents(ctx context.Context, topic string, after uint64, limit int) ([]apitype.TopicEvent, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Events []apitype.TopicEvent `json:"events"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: topicPath(topic), query: q}, &out); err != nil {
		return nil, err
	}
	if out.Events == nil {
		out.Events = []apitype.TopicEvent{}
	}
	return out.Events, nil
}

// Catalog returns every topic published on or subscribed to, by name.
// Publishers are counted as they publish and merged into the catalog about
// every second.
func (c *Client) Catalog(ctx context.Context) ([]apitype.Topic, error) {
	var out struct {
		Topics []apitype.Topic `json:"topics"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/events/catalog"}, &out); err != nil {
		return nil, err
	}
	if out.Topics == nil {
		out.Topics = []apitype.Topic{}
	}
	return out.Topics, nil
}

// Subscribe delivers the events of s.Topic that pass s.Filter to
// s.Function (at s.Qualifier), which must exist. Only those fields are
// sent; the node answers with the subscription's id and creation time.
func (c *Client) Subscribe(ctx context.Context, s apitype.Subscription) (apitype.Subscription, error) {
	body := struct {
		Topic     string `json:"topic"`
		Function  string `json:"function"`
		Qualifier string `json:"qualifier,omitempty"`
		apitype.Filter
	}{s.Topic, s.Function, s.Qualifier, s.Filter}
	var out apitype.Subscription
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/subscriptions", json: body}, &out)
	return out, err
}

// Unsubscribe deletes a subscription. An unknown id is an error for which
// IsNotFound is true.
func (c *Client) Unsubscribe(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/subscriptions/" + url.PathEscape(id)}, nil)
	return err
}

// Subscriptions returns the subscriptions of a topic and of a function
// (empty: any), by topic, then id.
func (c *Client) Subscriptions(ctx context.Context, topic, function string) ([]apitype.Subscription, error) {
	q := url.Values{}
	if topic != "" {
		q.Set("topic", topic)
	}
	if function != "" {
		q.Set("function", function)
	}
	var out struct {
		Subscriptions []apitype.Subscription `json:"subscriptions"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/subscriptions", query: q}, &out); err != nil {
		return nil, err
	}
	if out.Subscriptions == nil {
		out.Subscriptions = []apitype.Subscription{}
	}
	return out.Subscriptions, nil
}

// Schedules returns the schedules of a function, or of every function
// when function is empty, with when each fires next.
func (c *Client) Schedules(ctx context.Context, function string) ([]apitype.ScheduleInfo, error) {
	q := url.Values{}
	if function != "" {
		q.Set("function", function)
	}
	var out struct {
		Schedules []apitype.ScheduleInfo `json:"schedules"`
	}
	if _, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/schedules", query: q}, &out); err != nil {
		return nil, err
	}
	if out.Schedules == nil {
		out.Schedules = []apitype.ScheduleInfo{}
	}
	return out.Schedules, nil
}
