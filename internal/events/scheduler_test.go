package events

import (
	"errors"
	"testing"
)

// A stored schedule that does not parse (one written before its kind was
// refused) is reported once, not at every check.
func TestBadScheduleReportedOnce(t *testing.T) {
	e := &Scheduler{scheds: newSchedules()}
	_, err := e.parseSchedule("cron(0 0 30 2 ? *)", "")
	if err == nil || errors.Is(err, errToldBefore) {
		t.Fatalf("first parse of Feb 30: %v", err)
	}
	for range 3 {
		if _, err := e.parseSchedule("cron(0 0 30 2 ? *)", ""); !errors.Is(err, errToldBefore) {
			t.Fatalf("a later parse of Feb 30: %v, want it told before", err)
		}
	}
	if s, err := e.parseSchedule("rate(1 minute)", ""); err != nil || s == nil {
		t.Fatalf("a good one: %v", err)
	}
}
