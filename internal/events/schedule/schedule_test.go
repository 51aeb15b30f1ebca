package schedule

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// at parses an RFC 3339 time; "" is the zero Time.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustParse(t *testing.T, expr, tz string) *Schedule {
	t.Helper()
	s, err := Parse(expr, tz)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNext(t *testing.T) {
	tests := []struct {
		name, expr, tz string
		from, want     string // want "" means no tick
	}{
		// rate: multiples of the period since the Unix epoch.
		{"rate aligns to the period", "rate(5 minutes)", "", "2026-03-10T10:02:30Z", "2026-03-10T10:05:00Z"},
		{"rate is strictly after", "rate(5 minutes)", "", "2026-03-10T10:05:00Z", "2026-03-10T10:10:00Z"},
		{"rate singular unit, plural count", "rate(2 minute)", "", "2026-03-10T10:00:59Z", "2026-03-10T10:02:00Z"},
		{"rate plural unit, count 1", "rate(1 minutes)", "", "2026-03-10T10:00:00.5Z", "2026-03-10T10:01:00Z"},
		{"rate hours", "rate(3 hours)", "", "2026-03-10T10:00:00Z", "2026-03-10T12:00:00Z"},
		{"rate hours not dividing a day", "rate(5 hours)", "", "2026-03-10T00:00:00Z", "2026-03-10T02:00:00Z"},
		{"rate day ignores the zone", "rate(1 day)", "America/New_York", "2026-03-10T12:00:00Z", "2026-03-11T00:00:00Z"},
		{"rate 7 days on Thursdays", "rate(7 days)", "", "2026-03-10T00:00:00Z", "2026-03-12T00:00:00Z"},
		{"rate before the epoch", "rate(5 minutes)", "", "1969-12-31T23:58:30Z", "1970-01-01T00:00:00Z"},

		// EventBridge cron, examples from the AWS docs.
		{"daily at noon", "cron(0 12 * * ? *)", "", "2026-03-10T12:00:00Z", "2026-03-11T12:00:00Z"},
		{"every 15 minutes", "cron(0/15 * * * ? *)", "", "2026-03-10T10:07:00Z", "2026-03-10T10:15:00Z"},
		{"every 15 minutes wraps the hour", "cron(0/15 * * * ? *)", "", "2026-03-10T10:45:00Z", "2026-03-10T11:00:00Z"},
		{"weekdays skip the weekend", "cron(0 18 ? * MON-FRI *)", "", "2026-03-13T18:00:00Z", "2026-03-16T18:00:00Z"},
		{"lower-case names", "cron(0 18 ? * mon-fri *)", "", "2026-03-13T18:00:00Z", "2026-03-16T18:00:00Z"},
		{"first of the month", "cron(0 8 1 * ? *)", "", "2026-03-01T08:00:00Z", "2026-04-01T08:00:00Z"},
		{"day-of-week 2 is Monday", "cron(0 9 ? * 2 *)", "", "2026-03-01T00:00:00Z", "2026-03-02T09:00:00Z"},
		{"day-of-week 1 is Sunday", "cron(0 9 ? * 1 *)", "", "2026-03-02T00:00:00Z", "2026-03-08T09:00:00Z"},
		{"day-of-week 7 is Saturday", "cron(0 9 ? * 7 *)", "", "2026-03-02T00:00:00Z", "2026-03-07T09:00:00Z"},
		{"day-of-week step", "cron(0 9 ? * 1/3 *)", "", "2026-03-02T00:00:00Z", "2026-03-04T09:00:00Z"},
		{"month names in a list", "cron(0 0 1 JAN,JUL ? *)", "", "2026-03-10T00:00:00Z", "2026-07-01T00:00:00Z"},
		{"star step", "cron(*/20 9 * * ? *)", "", "2026-03-10T09:45:00Z", "2026-03-11T09:00:00Z"},
		{"leap day", "cron(0 0 29 2 ? *)", "", "2026-03-10T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"leap day in a named leap year", "cron(0 0 29 2 ? 2027-2028)", "", "2026-03-10T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"30th of the month skips February", "cron(0 0 30 * ? *)", "", "2026-01-30T00:00:00Z", "2026-03-30T00:00:00Z"},
		{"EventBridge cron in a zone", "cron(0 9 ? * MON *)", "Europe/Paris", "2026-03-10T00:00:00Z", "2026-03-16T08:00:00Z"},

		// EventBridge years.
		{"year that has passed", "cron(0 12 * * ? 2020)", "", "2026-03-10T00:00:00Z", ""},
		{"future year jumps", "cron(0 12 * * ? 2030)", "", "2026-03-10T00:00:00Z", "2030-01-01T12:00:00Z"},
		{"year range from midnight Jan 1", "cron(0 0 1 1 ? 2027-2028)", "", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"year list skips the gap", "cron(0 12 * * ? 2026,2030)", "", "2026-12-31T12:00:00Z", "2030-01-01T12:00:00Z"},
		{"after the last year", "cron(0 12 * * ? 2026-2027)", "", "2027-12-31T12:00:00Z", ""},
		{"year read in the zone", "cron(0 0 1 1 ? 2027)", "America/New_York", "2026-06-01T00:00:00Z", "2027-01-01T05:00:00Z"},

		// Five-field cron.
		{"five fields in winter", "0 9 * * *", "America/New_York", "2026-01-15T00:00:00Z", "2026-01-15T14:00:00Z"},
		{"five fields in summer", "0 9 * * *", "America/New_York", "2026-07-15T00:00:00Z", "2026-07-15T13:00:00Z"},
		{"five fields, day of month or of week", "0 0 13 * 5", "", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"},
		{"daily descriptor", "@daily", "Asia/Tokyo", "2026-03-10T00:00:00Z", "2026-03-10T15:00:00Z"},
		{"hourly descriptor", "@hourly", "", "2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z"},
		{"leap day across 2100", "0 0 29 2 *", "", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
		{"five fields, February 30 or a Monday", "0 0 30 2 MON", "", "2026-03-10T00:00:00Z", "2027-02-01T00:00:00Z"},
		{"spring forward skips the day", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-09T06:30:00Z"},
		{"fall back ticks twice", "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.tz)
			got := s.Next(at(t, tt.from))
			want := at(t, tt.want)
			if !got.Equal(want) {
				t.Errorf("Next(%s) = %v, want %v", tt.from, got.UTC(), want)
			}
			if !got.IsZero() && got.Location() != s.Location() {
				t.Errorf("Next returned a time in %v, want %v", got.Location(), s.Location())
			}
		})
	}
}

func TestMissed(t *testing.T) {
	const now = "2026-03-10T12:00:00Z"
	days := func(n int) string {
		return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC).AddDate(0, 0, -n).Format(time.RFC3339)
	}
	tests := []struct {
		name, expr, after, now string
		wantLatest             string
		wantN                  int
	}{
		{"rate over 400 days", "rate(5 minutes)", days(400), now, now, 400 * 24 * 12},
		{"rate with unaligned ends", "rate(5 minutes)", "2026-03-10T11:50:00Z", "2026-03-10T12:03:20Z", now, 2},
		{"rate excludes after, includes now", "rate(5 minutes)", "2026-03-10T11:55:00Z", now, now, 1},
		{"rate with no tick", "rate(1 hour)", "2026-03-10T12:01:00Z", "2026-03-10T12:59:00Z", "", 0},
		{"now before after", "rate(1 minute)", now, "2026-03-10T11:00:00Z", "", 0},
		{"cron daily over ten years", "cron(0 12 * * ? *)", days(3652), now, now, 3652},
		{"cron past the cap", "cron(* * * * ? *)", days(400), "2026-03-10T12:00:30Z", now, MaxMissed},
		{"cron past the cap, unaligned now", "cron(0/15 * * * ? *)", days(4000), "2026-03-10T11:59:59Z", "2026-03-10T11:45:00Z", MaxMissed},
		{"cron whose years ended", "cron(0 12 * * ? 2020)", "2019-06-01T00:00:00Z", now, "2020-12-31T12:00:00Z", 366},
		// The zero Time is itself a tick, 0001-01-01T00:00:00Z, so years 2 to 2026.
		{"cron after the zero Time", "cron(0 0 1 1 ? *)", "", now, "2026-01-01T00:00:00Z", 2025},
		{"five fields with no tick", "0 0 1 1 *", "2026-01-01T00:00:00Z", now, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, "")
			gotLatest, gotN := s.Missed(at(t, tt.after), at(t, tt.now))
			if want := at(t, tt.wantLatest); !gotLatest.Equal(want) || gotN != tt.wantN {
				t.Errorf("Missed = %v, %d; want %v, %d", gotLatest.UTC(), gotN, want, tt.wantN)
			}
		})
	}
}

// TestLatestUpTo drives the backward search Missed uses past its cap, which
// MaxMissed ticks would make slow to reach for sparse schedules.
func TestLatestUpTo(t *testing.T) {
	tests := []struct {
		name, expr, from, now, want string
	}{
		{"yearly tick years back", "cron(0 0 1 1 ? *)", "2000-01-01T00:00:00Z", "2026-03-10T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"no tick returns from", "cron(0 0 1 1 ? 2020)", "2020-01-01T00:00:00Z", "2026-03-10T00:00:00Z", "2020-01-01T00:00:00Z"},
		{"window larger than a Duration", "cron(0 0 1 1 ? 1970)", "", "2026-03-10T00:00:00Z", "1970-01-01T00:00:00Z"},
		{"dense ticks", "cron(* * * * ? *)", "2000-01-01T00:00:00Z", "2026-03-10T00:00:30Z", "2026-03-10T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, "")
			if got, want := s.latestUpTo(at(t, tt.from), at(t, tt.now)), at(t, tt.want); !got.Equal(want) {
				t.Errorf("latestUpTo = %v, want %v", got.UTC(), want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, expr, tz, want string
	}{
		{"empty", "", "", "empty expression"},
		{"blank", "   ", "", "empty expression"},
		{"control character", "0 0 * * *\n1", "", "control character"},
		{"unknown form", "every(5 minutes)", "", "unknown form"},
		{"rate zero", "rate(0 minutes)", "", "the rate must be 1 or more"},
		{"rate negative", "rate(-5 minutes)", "", "the rate must be 1 or more"},
		{"rate too large", "rate(99999999999999999999 minutes)", "", "at most 1000000"},
		{"rate too small for int64", "rate(-99999999999999999999 minutes)", "", "the rate must be 1 or more"},
		{"rate not a number", "rate(five minutes)", "", `the rate "five" is not a whole number`},
		{"rate weeks", "rate(5 weeks)", "", `unknown unit "weeks"`},
		{"rate without unit", "rate(5)", "", "want rate(N unit)"},
		{"rate trailing text", "rate(5 minutes) now", "", `unexpected text after ")"`},
		{"rate unclosed", "rate(5 minutes", "", `missing ")"`},
		{"cron trailing text", "cron(0 12 * * ? *)x", "", `unexpected text after ")"`},
		{"cron seven fields", "cron(0 12 * * ? * *)", "", "six fields"},
		{"cron five fields", "cron(0 12 * * ?)", "", "six fields"},
		{"cron no question mark", "cron(0 12 1 * MON *)", "", `one of day-of-month and day-of-week must be "?"`},
		{"cron L in day-of-week", "cron(15 10 ? * 6L 2022-2023)", "", `day-of-week "6L": L, W and # are not supported`},
		{"cron L in day-of-month", "cron(0 0 L * ? *)", "", "L, W and # are not supported"},
		{"cron W", "cron(0 0 15W * ? *)", "", "L, W and # are not supported"},
		{"cron hash", "cron(0 0 ? * 3#2 *)", "", "L, W and # are not supported"},
		{"cron minute 60", "cron(60 0 * * ? *)", "", `minutes "60": 60 is out of range 0-59`},
		{"cron day-of-week 0", "cron(0 0 ? * 0 *)", "", `day-of-week "0": 0 is out of range 1-7 or SUN-SAT`},
		{"cron day-of-week 8", "cron(0 0 ? * 1-8 *)", "", "8 is out of range 1-7"},
		{"cron bad month", "cron(0 0 1 FOO ? *)", "", `month "FOO": "FOO" is not a number or JAN-DEC`},
		{"cron question mark in hours", "cron(0 ? * * ? *)", "", `hours "?": "?" stands alone`},
		{"cron year before 1970", "cron(0 0 1 1 ? 1969)", "", "1969 is out of range 1970-2199"},
		{"cron year after 2199", "cron(0 0 1 1 ? 2026-2200)", "", "2200 is out of range 1970-2199"},
		{"cron step zero", "cron(0/0 * * * ? *)", "", "the step must be a whole number, 1 or more"},
		{"cron backwards range", "cron(0 0 ? * FRI-MON *)", "", "the range starts after it ends"},
		{"cron empty list item", "cron(0,,5 * * * ? *)", "", `minutes "0,,5": empty list item`},
		{"cron February 30", "cron(0 0 30 2 ? *)", "", "it never fires: no date has its day-of-month in its month"},
		{"cron February 31 any weekday", "cron(0 0 31 FEB ? *)", "", "it never fires"},
		{"cron April 31", "cron(0 12 31 4 ? *)", "", "it never fires"},
		{"cron 31st of short months", "cron(0 12 31 2,4,6,9,11 ? *)", "", "it never fires"},
		{"cron 30-31 of February", "cron(0 12 30-31 2 ? *)", "Europe/Paris", "it never fires"},
		{"cron leap day in no leap year", "cron(0 0 29 2 ? 2027)", "", "no date in the years it names"},
		{"cron leap day in 2100", "cron(0 0 29 2 ? 2100)", "", "no date in the years it names"},
		{"cron leap day in odd years", "cron(0 0 29 2 ? 2025/2)", "", "it never fires"},
		{"five fields February 30", "0 0 30 2 *", "", "it never fires"},
		{"five fields November 31", "0 0 31 NOV *", "America/New_York", "it never fires"},
		{"five fields with seconds", "0 0 12 * * *", "", "a seconds field is not supported"},
		{"five fields, four given", "0 12 * *", "", "expected exactly 5 fields"},
		{"five fields, seven given", "0 0 12 * * * *", "", "expected exactly 5 fields"},
		{"five fields out of range", "0 61 * * *", "", "above maximum"},
		{"every descriptor", "@every 5m", "", "@every is not supported"},
		{"unknown descriptor", "@fortnightly", "", "unrecognized descriptor"},
		{"TZ prefix", "TZ=UTC 0 0 * * *", "", "TZ= prefix is not supported"},
		{"bare TZ prefix", "TZ=", "", "TZ= prefix is not supported"},
		{"unknown zone", "rate(5 minutes)", "Mars/Olympus", "unknown time zone Mars/Olympus"},
		{"Local zone", "rate(5 minutes)", "Local", `"Local" differs from node to node`},
		{"zone with a newline", "rate(5 minutes)", "UTC\nx", "not a valid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.expr, tt.tz)
			if err == nil {
				t.Fatalf("Parse(%q, %q) succeeded, want an error", tt.expr, tt.tz)
			}
			msg := err.Error()
			if prefix := "schedule " + strconv.Quote(tt.expr) + ": "; !strings.HasPrefix(msg, prefix) {
				t.Errorf("error %q does not start with %q", msg, prefix)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q spans lines", msg)
			}
		})
	}

	_, err := Parse("rate(0 minutes)", "")
	if got, want := err.Error(), `schedule "rate(0 minutes)": the rate must be 1 or more`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestCheckFiresAfter(t *testing.T) {
	tests := []struct {
		name, expr, now, want string // want "" means it fires again
	}{
		{"year that has passed", "cron(0 0 1 1 ? 2020)", "2026-03-10T00:00:00Z", "it never fires again: no tick is left in its years (the last is 2020)"},
		{"last tick of this year gone", "cron(0 0 1 1 ? 2026)", "2026-03-10T00:00:00Z", "it never fires again"},
		{"years ahead", "cron(0 0 1 1 ? 2020-2027)", "2026-03-10T00:00:00Z", ""},
		{"last tick still to come", "cron(0 12 10 3 ? 2026)", "2026-03-10T11:59:59Z", ""},
		{"any year", "cron(0 0 1 1 ? *)", "2199-06-01T00:00:00Z", ""},
		{"leap day across 2100", "0 0 29 2 *", "2097-01-01T00:00:00Z", ""},
		{"rate", "rate(1 day)", "2026-03-10T00:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustParse(t, tt.expr, "").CheckFiresAfter(at(t, tt.now))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckFiresAfter: %v, want nil", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("CheckFiresAfter succeeded, want an error mentioning %q", tt.want)
			case !strings.HasPrefix(err.Error(), "schedule "+strconv.Quote(tt.expr)+": ") || !strings.Contains(err.Error(), tt.want):
				t.Errorf("CheckFiresAfter: %q, want it to start with the expression and mention %q", err, tt.want)
			}
		})
	}
}

func TestStringAndLocation(t *testing.T) {
	s := mustParse(t, " rate(5 minutes) ", "Europe/Paris")
	if got, want := s.String(), " rate(5 minutes) "; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := s.Location().String(), "Europe/Paris"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	if got := mustParse(t, "@daily", "").Location(); got != time.UTC {
		t.Errorf("Location() with no zone = %v, want UTC", got)
	}
}

func TestScheduledEvent(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 3, 10, 13, 0, 0, 500, paris) // 12:00:00 UTC and a little
	raw := ScheduledEvent("orders-nightly/2026-03-10T12:00:00Z", "orders-nightly", "eu-west-3", "123456789012", tick)

	var got struct {
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
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("event %s is not JSON: %v", raw, err)
	}
	checks := []struct{ field, got, want string }{
		{"version", got.Version, "0"},
		// sha256 of the tick id with the UUID version and variant bits set.
		{"id", got.ID, "b2d3354a-92fe-43ad-8df9-4cc8d8988cb5"},
		{"detail-type", got.DetailType, "Scheduled Event"},
		{"source", got.Source, "aws.events"},
		{"account", got.Account, "123456789012"},
		{"time", got.Time, "2026-03-10T12:00:00Z"},
		{"region", got.Region, "eu-west-3"},
		{"resources", strings.Join(got.Resources, " "), "arn:aws:events:eu-west-3:123456789012:rule/orders-nightly"},
		{"detail", string(got.Detail), "{}"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
}

func TestEventID(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]string{}
	for _, tickID := range []string{"", "a", "b", "orders/2026-03-10T12:00:00Z", "orders/2026-03-10T12:05:00Z"} {
		id := eventID(tickID)
		if !uuid4.MatchString(id) {
			t.Errorf("eventID(%q) = %q, not shaped like a version 4 UUID", tickID, id)
		}
		if again := eventID(tickID); again != id {
			t.Errorf("eventID(%q) = %q, then %q", tickID, id, again)
		}
		if other, ok := seen[id]; ok {
			t.Errorf("eventID(%q) = eventID(%q) = %q", tickID, other, id)
		}
		seen[id] = tickID
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"rate(5 minutes)", "rate(1 day)", "rate(0 hours)", "rate(5 weeks)",
		"cron(0 12 * * ? *)", "cron(0/15 * * * ? *)", "cron(0 18 ? * MON-FRI *)",
		"cron(15 10 ? * 6L 2022-2023)", "cron(0 0 1 1 ? 2026,2030/2)", "cron(0 0 30 2 ? *)", "cron(0 0 29 2 ? 2025/2)", "0 0 31 4 *",
		"0 9 * * *", "*/5 1-3 * JAN-MAR SUN", "@daily", "@every 1h", "TZ=", "CRON_TZ=UTC",
		"", "(", "rate()", "cron()", "0 0 0/99999999999999999999 * *",
	} {
		f.Add(seed)
	}
	from := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	// Before every year an EventBridge cron may name.
	epochEve := time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		for _, tz := range []string{"", "America/New_York"} {
			s, err := Parse(expr, tz)
			if err != nil {
				if msg := err.Error(); !strings.HasPrefix(msg, "schedule ") || strings.ContainsAny(msg, "\r\n") {
					t.Fatalf("Parse(%q) error %q is not one line starting with the expression", expr, msg)
				}
				continue
			}
			if s.String() != expr {
				t.Fatalf("String() = %q, want %q", s.String(), expr)
			}
			if s.Next(epochEve).IsZero() {
				t.Fatalf("%q parsed, but it never ticks after %v", expr, epochEve)
			}
			if next := s.Next(from); !next.IsZero() && !next.After(from) {
				t.Fatalf("%q: Next(%v) = %v, not after it", expr, from, next)
			}
			if latest, n := s.Missed(from.Add(-48*time.Hour), from); n < 0 || latest.After(from) || (n == 0) != latest.IsZero() {
				t.Fatalf("%q: Missed = %v, %d", expr, latest, n)
			}
		}
	})
}
