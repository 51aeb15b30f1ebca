package apitype

import (
	"encoding/json"
	"time"
)

// PublisherAttribute is the CloudEvents extension attribute the node sets
// on every event it stores, saying who published it: admin, function:NAME
// or node. It is the one attribute of an event a subscriber can trust (a
// source is whatever the publisher said), and filters can match it like
// any other. No publisher may set it: an event that carries it is refused.
const PublisherAttribute = "wisppublisher"

// TopicEvent is an event read back from a topic: its sequence number, when
// it was stored, who published it and the CloudEvent as JSON.
type TopicEvent struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"` // when it was stored
	Principal string          `json:"principal,omitempty"`
	Event     json.RawMessage `json:"event"`
}

// Topic is what the catalog knows of a topic: who publishes on it and who
// listens.
type Topic struct {
	Topic         string       `json:"topic"`
	Events        uint64       `json:"events"` // accepted since the topic was first seen
	LastPublished time.Time    `json:"last_published,omitzero"`
	Publishers    []Publisher  `json:"publishers"`
	Subscribers   []Subscriber `json:"subscribers"`
}

// Publisher is one source seen publishing on a topic, and as whom.
type Publisher struct {
	Source    string    `json:"source"`
	Principal string    `json:"principal"`
	Events    uint64    `json:"events"`
	LastSeen  time.Time `json:"last_seen"`
}

// Subscriber is a subscription, as the catalog lists it.
type Subscriber struct {
	ID        string `json:"id"`
	Function  string `json:"function"`
	Qualifier string `json:"qualifier,omitempty"`
}

// Subscription delivers a topic's events that pass its filter to a
// function, as events with the function's retries and destinations.
type Subscription struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Function  string `json:"function"`
	Qualifier string `json:"qualifier,omitempty"`
	Filter
	CreatedAt time.Time `json:"created_at"`
}

// Filter selects events by their context attributes: an event matches
// when every Exact attribute equals its value and every Prefix attribute
// starts with its value; an attribute the event lacks never matches. The
// empty filter matches every event.
type Filter struct {
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
}

// ScheduleInfo is a schedule as listed: its function, its config and when
// it fires next.
type ScheduleInfo struct {
	Function string `json:"function"`
	Schedule
	Next     time.Time `json:"next,omitzero"`
	LastTick time.Time `json:"last_tick,omitzero"` // the last tick fired
}

// PublishResult is a published event: its id and source as the node
// stored them, and its topic.
type PublishResult struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Topic  string `json:"topic"`
}
