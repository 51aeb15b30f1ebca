package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// scheduledEvent is EventBridge's "Scheduled Event", field for field.
type scheduledEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// ScheduledEvent returns the JSON event a tick of the rule delivers, shaped
// like EventBridge's "Scheduled Event" so that handlers written for AWS read
// it unchanged. tickID names the tick (say, the rule and the tick's time); the
// event's id is derived from it alone, so every node that fires the same tick
// sends the same id and a handler can drop duplicates. time is the tick in UTC
// to the second, as AWS writes it.
func ScheduledEvent(tickID, rule, region, account string, tick time.Time) []byte {
	event, err := json.Marshal(scheduledEvent{
		Version:    "0",
		ID:         eventID(tickID),
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		Account:    account,
		Time:       tick.UTC().Format("2006-01-02T15:04:05Z"),
		Region:     region,
		Resources:  []string{"arn:aws:events:" + region + ":" + account + ":rule/" + rule},
		Detail:     json.RawMessage("{}"),
	})
	if err != nil {
		// Strings, a string slice and a constant raw message always marshal.
		panic("schedule: marshal scheduled event: " + err.Error())
	}
	return event
}

// eventID formats the first 16 bytes of tickID's SHA-256 as a version 4 UUID,
// the shape AWS event ids have, with the version and variant bits set.
func eventID(tickID string) string {
	sum := sha256.Sum256([]byte(tickID))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
