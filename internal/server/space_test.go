package server

import (
	"testing"

	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/store"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// The stores' limits follow the space there is: a node with room gets
// the defaults (1 TiB gives them all), one on a small disk limits that fit it, and what the
// config sets stays.
func TestLimitsFollowSpace(t *testing.T) {
	big := limitsFor(Config{}, store.Space{Bytes: 1 << 40})
	if big.logs.DefaultMaxBytes != telemetry.DefaultLogMaxBytes || big.events.MaxQueuedBytes != events.DefaultMaxQueuedBytes ||
		big.events.TopicMaxBytes != events.DefaultTopicMaxBytes {
		t.Errorf("limits with 80 GiB of room: %+v", big)
	}
	external := limitsFor(Config{}, store.Space{})
	if external.logs.DefaultMaxBytes != big.logs.DefaultMaxBytes || external.events != big.events ||
		external.registry != big.registry || external.usageBytes != big.usageBytes {
		t.Errorf("limits with the space not known: %+v, want the defaults %+v", external, big)
	}
	const space = 230 << 20 // a 256 MB disk, less its reserve
	small := limitsFor(Config{}, store.Space{Bytes: space})
	sum := small.logs.DefaultMaxBytes + small.events.MaxQueuedBytes + small.events.QueueHeadroomBytes +
		small.events.TopicMaxBytes + small.usageBytes + small.registry.RecordBytes + small.registry.CodeBytes
	if sum > space {
		t.Errorf("the limits of one function, one topic and the node's buckets on %d MB: %d MB in all", space>>20, sum>>20)
	}
	if small.logs.DefaultMaxBytes < 1<<20 || small.logs.DefaultMaxBytes > 8<<20 {
		t.Errorf("a function's log on a 256 MB disk: %d bytes", small.logs.DefaultMaxBytes)
	}
	set := limitsFor(Config{Logs: telemetry.LogsConfig{DefaultMaxBytes: 5 << 20}}, store.Space{Bytes: space})
	if set.logs.DefaultMaxBytes != 5<<20 {
		t.Errorf("a log size set by the config: %d", set.logs.DefaultMaxBytes)
	}
}
