package pool

import "time"

// The scale decisions are pure functions of the time and a pool's state,
// so they are tested without sleeping or processes.

// Limits are the rules a pool scales by.
type Limits struct {
	// Max is the most instances the pool may have at once (a function's
	// reserved concurrency); negative means no limit of its own.
	Max int
	// Min instances are kept warm, started ahead of any call.
	Min int
	// KeepWarm is how long an idle instance waits for work before it stops.
	KeepWarm time.Duration
	// MaxLifetime recycles an instance this old at its next idle moment;
	// zero means never.
	MaxLifetime time.Duration
}

// IdleState is one idle instance, as the decisions see it.
type IdleState struct {
	Started  time.Time
	LastUsed time.Time
	Dead     bool // exited while idle
}

// State is a pool at one moment. Idle is ordered least recently used first.
type State struct {
	Idle     []IdleState
	Busy     int
	Starting int
	Waiting  int
}

func (s State) instances() int { return len(s.Idle) + s.Busy + s.Starting }

// Tidy says which idle instances to stop (indexes into s.Idle) and how many
// to start so that Min are kept: dead ones go, old ones are recycled, and
// ones idle past KeepWarm stop, least recently used first, as long as Min
// remain.
func Tidy(now time.Time, s State, l Limits) (stop []int, start int) {
	left := s.instances()
	for i, in := range s.Idle {
		switch {
		case in.Dead:
		case l.MaxLifetime > 0 && now.Sub(in.Started) >= l.MaxLifetime:
		case now.Sub(in.LastUsed) >= l.KeepWarm && left > l.Min:
		default:
			continue
		}
		stop = append(stop, i)
		left--
	}
	if want := l.Min - left; want > 0 {
		start = want
	}
	return stop, capStarts(start, left, l.Max)
}

// StartsFor says how many instances to start for the callers waiting: one
// for each caller no start in flight will serve, within Max.
func StartsFor(s State, l Limits) int {
	return capStarts(s.Waiting-s.Starting, s.instances(), l.Max)
}

func capStarts(n, have, max int) int {
	if max >= 0 && have+n > max {
		n = max - have
	}
	if n < 0 {
		return 0
	}
	return n
}
