package events

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/invoke"
	"github.com/wisp-dev/wisp/internal/registry"
)

// TestRecordOfBytesNotUTF8 checks that a destination record stays an event
// the bus takes when the function answered JSON holding bytes that are not
// UTF-8: json.Valid passes them, and the record would carry them raw.
func TestRecordOfBytesNotUTF8(t *testing.T) {
	e := &Queue{cfg: QueueConfig{Now: func() time.Time { return time.Unix(0, 0) }, Region: "us-east-1", Account: "000000000000"}}
	q := queued{Async: Async{Function: "f", RequestID: "r1", Payload: []byte("{\"in\":\"\xff\"}")}}
	rec := e.record(q, registry.Function{Name: "f"}, outcome{condition: "Success", attempts: 1,
		res: &invoke.Response{Payload: []byte("{\"out\":\"\xc3\"}")}})
	if !utf8.Valid(rec) {
		t.Fatalf("record %q is not UTF-8", rec)
	}
	ev := cloudevent.Event{SpecVersion: "1.0", ID: "r1.success", Source: "wisp://functions/f", Type: "wisp.async.success", Data: rec}
	if err := ev.Validate(); err != nil {
		t.Fatalf("the record is not an event: %v", err)
	}
}
