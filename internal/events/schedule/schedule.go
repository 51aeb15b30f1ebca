// Package schedule reads function schedules, written as AWS EventBridge users
// know them, and computes when they tick. It is pure: apart from loading time
// zones it does no I/O and keeps no state, so every node that parses the same
// expression computes the same ticks.
//
// Three forms are accepted:
//
//	rate(N unit)      N >= 1; unit is minute, hour or day, singular or plural
//	cron(Min Hour DayOfMonth Month DayOfWeek Year)   EventBridge's six fields
//	Min Hour DayOfMonth Month DayOfWeek              standard five-field cron,
//	                                                 or @hourly, @daily, @weekly,
//	                                                 @monthly, @yearly, @midnight
//
// Rate ticks fall on multiples of the period counted from the Unix epoch
// (1970-01-01T00:00:00Z), not from when the schedule was created as in AWS, so
// nodes agree on them without talking to each other. The time zone does not
// move them: rate(1 day) ticks at 00:00 UTC everywhere and rate(7 days) on
// Thursdays (the epoch was one), while rate(5 hours), which does not divide a
// day, ticks at different hours from one day to the next.
//
// Cron ticks are wall-clock times in the schedule's time zone, computed by
// github.com/robfig/cron/v3, whose daylight-saving behaviour we keep: a time
// skipped when clocks go forward has no tick that day (02:30 on a spring-forward
// night in New York), and a time repeated when clocks go back ticks twice (01:30
// EDT and then 01:30 EST). The EventBridge Year field is also read in the
// schedule's time zone.
package schedule

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	// Time zones work on a machine (or container) without zoneinfo too.
	_ "time/tzdata"
	"unicode"

	"github.com/robfig/cron/v3"
)

// MaxMissed is where Missed stops counting the ticks of a cron schedule.
const MaxMissed = 100000

// maxRate bounds N in rate(N unit), keeping tick arithmetic far from overflow.
const maxRate = 1000000

// Years allowed in an EventBridge Year field, as AWS allows them.
const (
	minYear = 1970
	maxYear = 2199
)

// starBit is how robfig marks a day-of-month or day-of-week field written as
// "*": when either day field has it, a day must match both fields, otherwise
// either one (cron.SpecSchedule's dayMatches).
const starBit = 1 << 63

// A Schedule is a parsed schedule expression. It is immutable and safe for
// concurrent use.
type Schedule struct {
	expr string
	loc  *time.Location

	// period is the rate in seconds; zero for a cron schedule.
	period int64
	// spec holds a cron schedule's fields; nil for a rate schedule.
	spec *cron.SpecSchedule
	// years are the years an EventBridge cron ticks in, ascending; nil for any.
	years []int
}

// Parse reads a schedule expression in the time zone tz, an IANA name such as
// "Europe/Paris"; "" means UTC. "Local" is refused, since it differs from node
// to node, and so is a cron that can never fire (February 30). See the
// package comment for the forms accepted. Errors are one line and start with
// the expression.
func Parse(expr, tz string) (*Schedule, error) {
	s := &Schedule{expr: expr}
	if err := s.parse(strings.TrimSpace(expr)); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	loc, err := loadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	s.loc = loc
	if s.spec != nil {
		s.spec.Location = loc
		if err := s.checkFiresEver(); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", expr, err)
		}
	}
	return s, nil
}

// checkFiresEver refuses a cron schedule with no tick at all: a day of the
// month that its months never have (February 30, April 31), or, in the
// years an EventBridge cron names, never have (February 29 in 2027). The
// calendar repeats, so Next's search from any instant finds a tick if there
// is one: the longest wait for a satisfiable day and month is eight years
// (February 29 across a century's skipped leap day), inside its horizon.
// The search starts before the first year named, or at a fixed instant, so
// that whether an expression parses does not depend on the clock.
func (s *Schedule) checkFiresEver() error {
	if s.years == nil {
		if s.Next(time.Date(2000, time.January, 1, 0, 0, 0, 0, s.loc)).IsZero() {
			return errors.New("it never fires: no date has its day-of-month in its month (such as February 30)")
		}
		return nil
	}
	if s.Next(time.Date(s.years[0], time.January, 1, 0, 0, 0, 0, s.loc).Add(-time.Nanosecond)).IsZero() {
		return errors.New("it never fires: no date in the years it names has its day-of-month in its month " +
			"(such as February 30, or February 29 in years that are not leap years)")
	}
	return nil
}

// CheckFiresAfter refuses a schedule with no tick after t, such as an
// EventBridge cron whose last year has passed; Parse, which does not read
// the clock, accepts it. The error starts with the expression, as Parse's
// do.
func (s *Schedule) CheckFiresAfter(t time.Time) error {
	if !s.Next(t).IsZero() {
		return nil
	}
	if s.years != nil {
		return fmt.Errorf("schedule %q: it never fires again: no tick is left in its years (the last is %d)", s.expr, s.years[len(s.years)-1])
	}
	return fmt.Errorf("schedule %q: it never fires again after %s", s.expr, t.UTC().Format(time.RFC3339))
}

// String returns the expression as given to Parse.
func (s *Schedule) String() string { return s.expr }

// Location returns the time zone the schedule was parsed in.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first tick strictly after t, in the schedule's time zone,
// or the zero Time if there is none (an EventBridge year list that has
// passed: Parse refuses a date that never comes, such as February 30).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.spec == nil {
		return s.nextRate(t)
	}
	return s.nextCron(t)
}

// Missed reports the ticks in (after, now]: the latest one and how many. It is
// for catching up after downtime, so its work is bounded however long ago
// after is. For a rate schedule n is exact; for a cron schedule counting stops
// at MaxMissed, so n == MaxMissed means at least that many, while latest is
// still the true latest tick. With no tick in the interval it returns the zero
// Time and 0.
func (s *Schedule) Missed(after, now time.Time) (latest time.Time, n int) {
	if !now.After(after) {
		return time.Time{}, 0
	}
	if s.spec == nil {
		return s.missedRate(after, now)
	}
	for t := after; n < MaxMissed; n++ {
		next := s.Next(t)
		if next.IsZero() || next.After(now) {
			return latest, n
		}
		latest, t = next, next
	}
	return s.latestUpTo(latest, now), n
}

func (s *Schedule) nextRate(t time.Time) time.Time {
	k := floorDiv(t.Unix(), s.period) + 1
	return time.Unix(k*s.period, 0).In(s.loc)
}

func (s *Schedule) missedRate(after, now time.Time) (time.Time, int) {
	// Ticks are whole seconds, so comparing them with the whole seconds of
	// after and now (rounded down) is exact.
	first := floorDiv(after.Unix(), s.period) + 1
	last := floorDiv(now.Unix(), s.period)
	if last < first {
		return time.Time{}, 0
	}
	return time.Unix(last*s.period, 0).In(s.loc), int(last - first + 1)
}

func (s *Schedule) nextCron(t time.Time) time.Time {
	t = t.In(s.loc)
	for {
		if s.years != nil {
			i, _ := slices.BinarySearch(s.years, t.Year())
			if i == len(s.years) {
				return time.Time{}
			}
			if y := s.years[i]; y > t.Year() {
				// Jump to the allowed year; its first instant may be a tick,
				// so start just before it.
				t = time.Date(y, time.January, 1, 0, 0, 0, 0, s.loc).Add(-time.Nanosecond)
			}
		}
		next := s.specNext(t)
		if next.IsZero() || s.years == nil {
			return next
		}
		if _, ok := slices.BinarySearch(s.years, next.Year()); ok {
			return next
		}
		t = next
	}
}

// specNext is robfig's Next, retried once. robfig gives up when it finds no
// tick through the fifth calendar year after t, but a satisfiable schedule can
// go eight years without one (February 29 from 2096 to 2104), so one more
// window of the same size tells a distant tick from one that never comes.
func (s *Schedule) specNext(t time.Time) time.Time {
	if next := s.spec.Next(t); !next.IsZero() {
		return next
	}
	t = time.Date(t.Year()+6, time.January, 1, 0, 0, 0, 0, s.loc).Add(-time.Nanosecond)
	return s.spec.Next(t)
}

// latestUpTo returns the latest tick in (from, now], or from if there is none.
// robfig cannot step backwards, so it walks forward through windows ending at
// now, doubling them until one holds a tick or reaches back to from.
func (s *Schedule) latestUpTo(from, now time.Time) time.Time {
	span := now.Sub(from)
	for w := time.Hour; ; w *= 2 {
		start := now.Add(-w)
		whole := w >= span || w > math.MaxInt64/2
		if whole {
			start = from
		}
		latest, found := from, false
		for t := s.Next(start); !t.IsZero() && !t.After(now); t = s.Next(t) {
			latest, found = t, true
		}
		if found || whole {
			return latest
		}
	}
}

func (s *Schedule) parse(text string) error {
	if text == "" {
		return errors.New("empty expression")
	}
	if strings.ContainsFunc(text, func(r rune) bool { return !unicode.IsPrint(r) && r != '\t' }) {
		return errors.New("the expression contains a control character")
	}
	switch {
	case strings.HasPrefix(text, "rate("):
		body, err := inParens(text, "rate(")
		if err != nil {
			return err
		}
		return s.parseRate(body)
	case strings.HasPrefix(text, "cron("):
		body, err := inParens(text, "cron(")
		if err != nil {
			return err
		}
		return s.parseEventBridgeCron(body)
	case strings.ContainsAny(text, "()"):
		return errors.New("unknown form; want rate(N unit), cron(six fields) or a five-field cron")
	default:
		return s.parseCron(text)
	}
}

// inParens returns what lies between prefix, which ends in "(", and the ")"
// that must end text.
func inParens(text, prefix string) (string, error) {
	body := text[len(prefix):]
	i := strings.IndexByte(body, ')')
	if i < 0 {
		return "", errors.New(`missing ")"`)
	}
	if i != len(body)-1 {
		return "", fmt.Errorf(`unexpected text after ")": %q`, body[i+1:])
	}
	return body[:i], nil
}

func (s *Schedule) parseRate(body string) error {
	const usage = "want rate(N unit), such as rate(5 minutes)"
	fields := strings.Fields(body)
	if len(fields) != 2 {
		return errors.New(usage)
	}
	// Out of range, ParseInt returns the nearest int64, which the checks
	// below refuse as they should.
	n, err := strconv.ParseInt(fields[0], 10, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return fmt.Errorf("the rate %q is not a whole number; %s", fields[0], usage)
	case n < 1:
		return errors.New("the rate must be 1 or more")
	case n > maxRate:
		return fmt.Errorf("the rate must be at most %d", maxRate)
	}
	var unit int64
	switch fields[1] {
	case "minute", "minutes":
		unit = 60
	case "hour", "hours":
		unit = 60 * 60
	case "day", "days":
		unit = 24 * 60 * 60
	default:
		return fmt.Errorf("unknown unit %q; want minutes, hours or days", fields[1])
	}
	s.period = n * unit
	return nil
}

func (s *Schedule) parseEventBridgeCron(body string) error {
	fields := strings.Fields(body)
	if len(fields) != 6 {
		return fmt.Errorf("cron() takes six fields (minutes hours day-of-month month day-of-week year), got %d", len(fields))
	}
	if fields[2] != "?" && fields[4] != "?" {
		return errors.New(`one of day-of-month and day-of-week must be "?"`)
	}
	spec := &cron.SpecSchedule{Second: 1 << 0}
	var err error
	if spec.Minute, err = minutesField.bits(fields[0]); err != nil {
		return err
	}
	if spec.Hour, err = hoursField.bits(fields[1]); err != nil {
		return err
	}
	if spec.Dom, err = dayOfMonthField.bits(fields[2]); err != nil {
		return err
	}
	if spec.Month, err = monthField.bits(fields[3]); err != nil {
		return err
	}
	if spec.Dow, err = dayOfWeekField.bits(fields[4]); err != nil {
		return err
	}
	if fields[5] != "*" {
		if s.years, err = yearField.values(fields[5]); err != nil {
			return err
		}
	}
	s.spec = spec
	return nil
}

func (s *Schedule) parseCron(text string) error {
	switch {
	case strings.HasPrefix(text, "TZ=") || strings.HasPrefix(text, "CRON_TZ="):
		return errors.New("a TZ= prefix is not supported; give the time zone separately")
	case strings.HasPrefix(text, "@every"):
		return errors.New("@every is not supported; use rate(N unit)")
	case len(strings.Fields(text)) == 6:
		return errors.New("a seconds field is not supported; EventBridge's six fields are written cron(...)")
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	parsed, err := parser.Parse(text)
	if err != nil {
		return err
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return fmt.Errorf("unsupported cron schedule %T", parsed)
	}
	s.spec = spec
	return nil
}

func loadLocation(tz string) (*time.Location, error) {
	switch {
	case tz == "":
		return time.UTC, nil
	case tz == "Local":
		return nil, errors.New(`time zone "Local" differs from node to node; name a zone such as "Europe/Paris"`)
	case strings.ContainsFunc(tz, func(r rune) bool { return !unicode.IsPrint(r) }):
		return nil, fmt.Errorf("time zone %q is not a valid name", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone: %w", err)
	}
	return loc, nil
}

// A field describes one EventBridge cron field.
type field struct {
	name     string
	min, max int
	// names[i], if any, stands for the value min+i.
	names []string
	// bit is where value min goes in robfig's bit set.
	bit int
	// day marks the day fields, where "?" means any day.
	day bool
}

var (
	minutesField    = field{name: "minutes", min: 0, max: 59}
	hoursField      = field{name: "hours", min: 0, max: 23}
	dayOfMonthField = field{name: "day-of-month", min: 1, max: 31, bit: 1, day: true}
	monthField      = field{name: "month", min: 1, max: 12, bit: 1,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	// EventBridge counts days of the week 1-7 from Sunday; robfig, like
	// time.Weekday, 0-6.
	dayOfWeekField = field{name: "day-of-week", min: 1, max: 7, bit: 0, day: true,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
	yearField = field{name: "year", min: minYear, max: maxYear}
)

// bits returns the field's values as robfig's bit set.
func (f field) bits(text string) (uint64, error) {
	if f.day && text == "?" {
		text = "*"
	}
	values, err := f.values(text)
	if err != nil {
		return 0, err
	}
	var bits uint64
	if text == "*" {
		bits = starBit
	}
	for _, v := range values {
		bits |= 1 << (v - f.min + f.bit)
	}
	return bits, nil
}

// values returns, ascending, the values that text, a list of "*", "N", "A-B",
// each optionally followed by "/STEP", selects. "N/STEP" means N to the
// field's maximum.
func (f field) values(text string) ([]int, error) {
	in := make([]bool, f.max-f.min+1)
	for item := range strings.SplitSeq(text, ",") {
		if item == "" {
			return nil, fmt.Errorf("%s %q: empty list item", f.name, text)
		}
		if err := f.mark(in, item); err != nil {
			return nil, err
		}
	}
	var values []int
	for i, ok := range in {
		if ok {
			values = append(values, f.min+i)
		}
	}
	return values, nil
}

func (f field) mark(in []bool, item string) error {
	span, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 {
			return fmt.Errorf("%s %q: the step must be a whole number, 1 or more", f.name, item)
		}
		// A step past the range selects only its start; clamping keeps v
		// below from overflowing.
		step = min(n, f.max-f.min+1)
	}
	lo, hi := f.min, f.max
	if span != "*" {
		loText, hiText, isRange := strings.Cut(span, "-")
		var err error
		if lo, err = f.value(loText); err != nil {
			return fmt.Errorf("%s %q: %w", f.name, item, err)
		}
		switch {
		case isRange:
			if hi, err = f.value(hiText); err != nil {
				return fmt.Errorf("%s %q: %w", f.name, item, err)
			}
			if lo > hi {
				return fmt.Errorf("%s %q: the range starts after it ends", f.name, item)
			}
		case !hasStep:
			hi = lo
		}
	}
	for v := lo; v <= hi; v += step {
		in[v-f.min] = true
	}
	return nil
}

func (f field) value(text string) (int, error) {
	for i, name := range f.names {
		if strings.EqualFold(name, text) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(text)
	switch {
	case err == nil:
	case text == "?":
		return 0, errors.New(`"?" stands alone, and only in day-of-month or day-of-week`)
	case strings.ContainsAny(strings.ToUpper(text), "LW#"):
		return 0, errors.New("L, W and # are not supported")
	default:
		return 0, fmt.Errorf("%q is not a number%s", text, f.nameHint())
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d%s", v, f.min, f.max, f.nameHint())
	}
	return v, nil
}

func (f field) nameHint() string {
	if f.names == nil {
		return ""
	}
	return fmt.Sprintf(" or %s-%s", f.names[0], f.names[len(f.names)-1])
}

// floorDiv is a / b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
