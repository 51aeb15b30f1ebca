package events

import "time"

// Limits bound what the queues and the topics hold. Every size the events
// keep is here, with its default; a zero field takes the default.
type Limits struct {
	// MaxQueuedEvents and MaxQueuedBytes bound each function's queue
	// (events waiting, waiting for a retry or running) unless the
	// function sets its own (async.max_queued_events and
	// async.max_queued_bytes). Past either, a new event is refused: the
	// Invoke API answers 429, a topic's delivery goes to the function's
	// failure destination with condition EventQueueFull, a schedule's
	// tick is skipped. Defaults 100,000 events and 256 MiB.
	MaxQueuedEvents, MaxQueuedBytes int64
	// QueueHeadroomEvents and QueueHeadroomBytes are the room above a
	// queue's bound that only events already accepted use: their
	// retries, destination records and records kept to send later are
	// never refused at the bound, and a queue's stream holds at most the
	// bound plus this. Defaults 1,000 events and 64 MiB.
	QueueHeadroomEvents, QueueHeadroomBytes int64
	// TopicMaxBytes and TopicMaxAge are each topic's own retention: past
	// either, the topic's oldest events go, and only its own. Defaults
	// 64 MiB and 7 days.
	TopicMaxBytes int64
	TopicMaxAge   time.Duration
	// MaxTopics bounds the topics callers make by publishing or
	// subscribing; past it, publishing to a new topic is refused. The
	// node's own topics (dead letters, destinations, spend caps) are
	// not counted. Default 1,000.
	MaxTopics int
	// MaxBacklog bounds the events of one topic waiting to be handed to
	// its subscriptions; past it (or past half the topic's bytes),
	// publishing on the topic is refused for a while, so that no event
	// ages out before it is delivered. Default 100,000.
	MaxBacklog int64
}

// bucketBytes bounds each of the events' buckets (subscriptions, the
// catalog, the schedules' last ticks): records of a few hundred bytes,
// tens of thousands of them; a write past it is refused.
const bucketBytes = 64 << 20

// Defaults of Limits.
const (
	DefaultMaxQueuedEvents     = 100_000
	DefaultMaxQueuedBytes      = 256 << 20
	DefaultQueueHeadroomEvents = 1_000
	DefaultQueueHeadroomBytes  = 64 << 20
	DefaultTopicMaxBytes       = 64 << 20
	DefaultTopicMaxAge         = 7 * 24 * time.Hour
	DefaultMaxTopics           = 1_000
	DefaultMaxBacklog          = 100_000
)

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxQueuedEvents, DefaultMaxQueuedEvents)
	def(&l.MaxQueuedBytes, DefaultMaxQueuedBytes)
	def(&l.QueueHeadroomEvents, DefaultQueueHeadroomEvents)
	def(&l.QueueHeadroomBytes, DefaultQueueHeadroomBytes)
	def(&l.TopicMaxBytes, DefaultTopicMaxBytes)
	def(&l.MaxBacklog, DefaultMaxBacklog)
	if l.TopicMaxAge <= 0 {
		l.TopicMaxAge = DefaultTopicMaxAge
	}
	if l.MaxTopics <= 0 {
		l.MaxTopics = DefaultMaxTopics
	}
	return l
}

// queueBounds are a function's queue bounds: what new events are checked
// against, from its config or the node's defaults.
func (l Limits) queueBounds(maxEvents, maxBytes int64) (int64, int64) {
	if maxEvents <= 0 {
		maxEvents = l.MaxQueuedEvents
	}
	if maxBytes <= 0 {
		maxBytes = l.MaxQueuedBytes
	}
	return maxEvents, maxBytes
}
