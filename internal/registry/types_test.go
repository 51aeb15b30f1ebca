package registry

import (
	"encoding/json"
	"testing"
)

// A function stored before async config existed reads with its defaults;
// one stored with it keeps its own.
func TestFunctionDefaultsOnRead(t *testing.T) {
	var old Function
	if err := json.Unmarshal([]byte(`{"name":"a","runtime":"go","memory_mb":128,"timeout":3}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Async.Retries != DefaultRetries || old.Async.MaxEventAge != MaxEventAge || old.Name != "a" {
		t.Errorf("an old record reads as %+v", old)
	}
	var set Function
	if err := json.Unmarshal([]byte(`{"name":"b","async":{"retries":0,"max_event_age":60}}`), &set); err != nil {
		t.Fatal(err)
	}
	if set.Async.Retries != 0 || set.Async.MaxEventAge != 60 {
		t.Errorf("a record with async reads as %+v", set.Async)
	}
}
