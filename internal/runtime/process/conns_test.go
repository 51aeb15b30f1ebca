package process

import (
	"testing"
	"time"
)

// TestIdlePastWriteTimeout: an instance idle for longer than its servers'
// write timeout still gets its next invocation: /next, which waited all
// that time, has the whole timeout to hand it over.
func TestIdlePastWriteTimeout(t *testing.T) {
	d := newDriver(t, Config{})
	d.writeTimeout = 100 * time.Millisecond
	i := start(t, d, goSpec())
	first := invoke(t, i, "a", `{"op":"pid"}`, 3*time.Second)
	if first.ErrorType != "" {
		t.Fatalf("first invocation: %s %s", first.ErrorType, first.Payload)
	}
	// Idle, as long as the point is.
	time.Sleep(5 * d.writeTimeout)
	next := invoke(t, i, "b", `{"op":"pid"}`, 3*time.Second)
	if next.ErrorType != "" || string(next.Payload) != string(first.Payload) {
		t.Fatalf("after idling past the write timeout: %s %s, want the same process %s", next.ErrorType, next.Payload, first.Payload)
	}
}
