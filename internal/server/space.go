package server

import (
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/store"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// storeLimits are the bounds of the node's streams and buckets that
// follow the space its data dir's disk has.
type storeLimits struct {
	logs     telemetry.LogsConfig
	events   events.Limits
	registry registry.Limits
	// usageBytes bounds the usage records' stream.
	usageBytes int64
}

// The shares of the store's space each bound takes (space/share), and
// their floors and ceilings. The ceilings are the defaults of a node with
// room (4 GiB of space and more gives every one of them); below that they
// shrink together, so that a node on a 256 MB disk starts, with small
// limits, rather than refusing to or filling its disk. A bound is per
// function or per topic where it says so: those are not reserved up
// front, and the store refuses writes at its reserve if they all fill.
var spaceShares = struct {
	logs, queue, headroom, topic, usage, records, code share
}{
	logs:     share{64, 1 << 20, telemetry.DefaultLogMaxBytes},     // per function
	queue:    share{16, 1 << 20, events.DefaultMaxQueuedBytes},     // per function
	headroom: share{64, 1 << 20, events.DefaultQueueHeadroomBytes}, // per function
	topic:    share{64, 1 << 20, events.DefaultTopicMaxBytes},      // per topic
	usage:    share{8, 16 << 20, 8 << 30},                          // 31 days of records
	records:  share{64, 4 << 20, registry.DefaultRecordBytes},      // functions, versions, aliases
	code:     share{4, 32 << 20, registry.DefaultCodeBytes},        // code archives
}

type share struct{ div, lo, hi int64 }

func (s share) of(sp store.Space) int64 { return sp.Share(s.div, s.lo, s.hi) }

// smallSpace is the space under which the node says its limits are
// scaled down.
const smallSpace = 4 << 30

// sizeLimits fills what cfg leaves at zero from the space the store has,
// and says so when that is little.
func (n *Node) sizeLimits(cfg Config) storeLimits {
	sp := n.store.Space()
	lim := limitsFor(cfg, sp)
	if sp.Bytes > 0 && sp.Bytes < smallSpace {
		n.log.Warn("the data dir's disk is small: the store's limits are scaled down to fit it",
			"space", store.FormatBytes(sp.Bytes), "free", store.FormatBytes(sp.Free), "reserve", store.FormatBytes(sp.Reserve),
			"log_per_function", store.FormatBytes(lim.logs.DefaultMaxBytes),
			"queue_per_function", store.FormatBytes(lim.events.MaxQueuedBytes),
			"topic", store.FormatBytes(lim.events.TopicMaxBytes),
			"usage_records", store.FormatBytes(lim.usageBytes),
			"code", store.FormatBytes(lim.registry.CodeBytes))
	}
	return lim
}

// limitsFor is cfg's limits, those it leaves at zero sized from sp.
func limitsFor(cfg Config, sp store.Space) storeLimits {
	fill := func(v *int64, s share) {
		if *v <= 0 {
			*v = s.of(sp)
		}
	}
	lim := storeLimits{logs: cfg.Logs, events: cfg.EventLimits}
	fill(&lim.logs.DefaultMaxBytes, spaceShares.logs)
	fill(&lim.events.MaxQueuedBytes, spaceShares.queue)
	fill(&lim.events.QueueHeadroomBytes, spaceShares.headroom)
	fill(&lim.events.TopicMaxBytes, spaceShares.topic)
	fill(&lim.usageBytes, spaceShares.usage)
	fill(&lim.registry.RecordBytes, spaceShares.records)
	fill(&lim.registry.CodeBytes, spaceShares.code)
	return lim
}
