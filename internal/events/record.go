package events

import (
	"context"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
	"github.com/wisp-dev/wisp/internal/registry"
)

// maxRecordResponse bounds the request and the response a destination
// record carries, so it always fits in a message; a larger one is left
// out and its size given instead.
const maxRecordResponse = 256 << 10

// record is an event's outcome in the format of Lambda's destination
// records, so code written for Lambda destinations reads it unchanged.
func (e *Queue) record(q queued, f registry.Function, o outcome) []byte {
	type requestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	}
	type responseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
		ErrorMessage    string `json:"errorMessage,omitempty"` // ours: why it could not run
	}
	qualifier := q.Qualifier
	if qualifier == "" {
		qualifier = registry.Latest
	}
	rec := struct {
		Version             string           `json:"version"`
		Timestamp           string           `json:"timestamp"`
		RequestContext      requestContext   `json:"requestContext"`
		RequestPayload      json.RawMessage  `json:"requestPayload"`
		ResponseContext     *responseContext `json:"responseContext,omitempty"`
		RequestPayloadSize  int              `json:"requestPayloadSize,omitempty"`
		ResponsePayload     json.RawMessage  `json:"responsePayload,omitempty"`
		ResponsePayloadSize int              `json:"responsePayloadSize,omitempty"`
	}{
		Version:   "1.0",
		Timestamp: e.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: requestContext{RequestID: q.RequestID, FunctionARN: e.functionARN(q.Function, qualifier),
			Condition: o.condition, ApproximateInvokeCount: o.attempts},
		RequestPayload: jsonOrNull(q.Payload),
	}
	if len(q.Payload) > maxRecordResponse { // a record of a record: it must still fit
		rec.RequestPayload, rec.RequestPayloadSize = json.RawMessage("null"), len(q.Payload)
	}
	switch {
	case o.res != nil:
		rec.ResponseContext = &responseContext{StatusCode: 200, ExecutedVersion: o.res.Version, FunctionError: o.res.FunctionError}
		if len(o.res.Payload) > maxRecordResponse {
			rec.ResponsePayloadSize = len(o.res.Payload)
		} else {
			rec.ResponsePayload = jsonOrString(o.res.Payload)
		}
	case o.err != nil:
		rec.ResponseContext = &responseContext{StatusCode: 500, ExecutedVersion: qualifier, ErrorMessage: o.err.Error()}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		panic("events: a record does not marshal: " + err.Error()) // every part is valid JSON
	}
	return b
}

func (e *Queue) functionARN(fn, qualifier string) string {
	return arn.Function(e.cfg.Region, e.cfg.Account, fn, qualifier)
}

// jsonOrNull is a payload as JSON: an empty one is null.
func jsonOrNull(b []byte) json.RawMessage {
	if len(b) == 0 || !utf8.Valid(b) || !json.Valid(b) {
		return json.RawMessage("null")
	}
	return b
}

// jsonOrString is a response as JSON, or as a JSON string when it is not
// JSON in UTF-8 (a function may answer anything; a record with bytes that
// are not UTF-8 would be an event the bus refuses).
func jsonOrString(b []byte) json.RawMessage {
	if utf8.Valid(b) && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// publishRecord puts a destination record on a topic as a CloudEvent of
// type wisp.async.success or wisp.async.failure.
func (e *Queue) publishRecord(ctx context.Context, topic string, q queued, fn, kind string, rec []byte) error {
	ev := cloudevent.Event{SpecVersion: "1.0", ID: q.RequestID + "." + kind, Source: "wisp://functions/" + fn,
		Type: "wisp.async." + kind, Subject: q.RequestID, Time: e.cfg.Now().UTC().Truncate(time.Millisecond),
		DataContentType: "application/json", Data: rec}
	return e.cfg.Bus.PublishNode(ctx, topic, ev)
}
