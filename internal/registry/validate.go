package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/events/schedule"
)

// Limits on a function's config, as Lambda sets them.
const (
	MinMemoryMB       = 128
	MaxMemoryMB       = 10240
	DefaultMemoryMB   = 128
	DefaultTimeout    = 3   // seconds
	MaxTimeout        = 900 // seconds
	MaxEnvBytes       = 4096
	MaxDescription    = 256
	MaxKeepWarm       = 7 * 24 * 3600 // seconds
	MaxConcurrency    = 10000
	MaxMinInstances   = 100
	DefaultRetries    = 2
	MaxRetries        = 10
	MinEventAge       = 60       // seconds
	MaxEventAge       = 6 * 3600 // seconds, also the default
	MaxSchedules      = 10
	maxTopicLen       = apitype.MaxTopicLen
	URLAuthToken      = "token"
	URLAuthNone       = "none"
	NetworkNone       = "none"
	NetworkHost       = "host"
	defaultBinHandler = "bootstrap"
)

// Runtimes are the runtime names a function may have.
var runtimes = map[string]bool{"provided": true, "go": true, "nodejs": true, "python": true, "wasm": true}

var (
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	digitsRE = regexp.MustCompile(`^[0-9]+$`)
)

// CheckTopic checks an event topic's name, by the rule callers check too
// (apitype.CheckTopic).
func CheckTopic(topic string) error {
	return asValidation(apitype.CheckTopic(topic))
}

// CheckQualifier checks what may follow a function name: $LATEST, a
// version number or an alias name.
func CheckQualifier(q string) error {
	if q == "" || q == Latest {
		return nil
	}
	if digitsRE.MatchString(q) {
		if n, err := strconv.Atoi(q); err != nil || n < 1 {
			return invalid("version %q is not a version", q)
		}
		return nil
	}
	return ValidName("alias", q)
}

// DeadLetterTopic is where a function's failed events go when it names no
// failure destination.
func DeadLetterTopic(f Function) string {
	if f.Async.DeadLetter != "" {
		return f.Async.DeadLetter
	}
	return DeadLetterPrefix + "." + f.Name
}

// Destination is where an async outcome goes: a function or a topic.
type Destination struct {
	Function, Qualifier string // for "function:NAME[:QUALIFIER]"
	Topic               string // for "topic:NAME"
}

// ParseDestination reads "function:NAME[:QUALIFIER]" or "topic:NAME".
func ParseDestination(s string) (Destination, error) {
	if t, ok := strings.CutPrefix(s, "topic:"); ok {
		if err := CheckTopic(t); err != nil {
			return Destination{}, err
		}
		return Destination{Topic: t}, nil
	}
	if rest, ok := strings.CutPrefix(s, "function:"); ok {
		name, q, _ := strings.Cut(rest, ":")
		if err := ValidName("function", name); err != nil {
			return Destination{}, err
		}
		if err := CheckQualifier(q); err != nil {
			return Destination{}, err
		}
		return Destination{Function: name, Qualifier: q}, nil
	}
	return Destination{}, invalid("destination %q must be function:NAME[:QUALIFIER] or topic:NAME", s)
}

// ValidationError is a refused input; the API answers 400.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// ValidName checks a function or alias name, by the rule callers check
// too (apitype.CheckName).
func ValidName(kind, name string) error {
	return asValidation(apitype.CheckName(kind, name))
}

// asValidation makes a refusal of apitype's rules a *ValidationError.
func asValidation(err error) error {
	if err == nil {
		return nil
	}
	return &ValidationError{Msg: err.Error()}
}

// apply sets cfg's fields on f, filling defaults for a new function, and
// checks the result.
func apply(f *Function, cfg Config, create bool) error {
	if create {
		if err := ValidName("function", cfg.Name); err != nil {
			return err
		}
		f.Name = cfg.Name
		f.MemoryMB, f.Timeout, f.URLAuth, f.Network = DefaultMemoryMB, DefaultTimeout, URLAuthToken, NetworkNone
		f.Async = AsyncConfig{Retries: DefaultRetries, MaxEventAge: MaxEventAge}
		if cfg.Runtime == nil {
			return invalid("runtime is required (one of provided, go, nodejs, python, wasm)")
		}
	} else if cfg.Name != "" && cfg.Name != f.Name {
		return invalid("a function cannot be renamed (%q to %q)", f.Name, cfg.Name)
	}
	if cfg.Runtime != nil {
		f.Runtime = *cfg.Runtime
	}
	if cfg.Handler != nil {
		f.Handler = *cfg.Handler
	}
	if cfg.MemoryMB != nil {
		f.MemoryMB = *cfg.MemoryMB
	}
	if cfg.Timeout != nil {
		f.Timeout = *cfg.Timeout
	}
	if cfg.Env != nil {
		f.Env = cfg.Env
	}
	if cfg.Concurrency != nil {
		c := *cfg.Concurrency
		f.Concurrency = &c
	}
	if cfg.ClearConcurrency {
		f.Concurrency = nil
	}
	if cfg.MinInstances != nil {
		f.MinInstances = *cfg.MinInstances
	}
	if cfg.KeepWarm != nil {
		f.KeepWarm = *cfg.KeepWarm
	}
	if cfg.Description != nil {
		f.Description = *cfg.Description
	}
	if cfg.URLAuth != nil {
		f.URLAuth = *cfg.URLAuth
	}
	if cfg.Network != nil {
		f.Network = *cfg.Network
	}
	if cfg.Reuse != nil {
		f.Reuse = *cfg.Reuse
	}
	if p := cfg.Async; p != nil {
		setIf(&f.Async.Retries, p.Retries)
		setIf(&f.Async.MaxEventAge, p.MaxEventAge)
		setIf(&f.Async.OnSuccess, p.OnSuccess)
		setIf(&f.Async.OnFailure, p.OnFailure)
		setIf(&f.Async.DeadLetter, p.DeadLetter)
		setIf(&f.Async.MaxQueuedEvents, p.MaxQueuedEvents)
		setIf(&f.Async.MaxQueuedBytes, p.MaxQueuedBytes)
	}
	if cfg.Publish != nil {
		f.Publish = nil
		if len(*cfg.Publish) > 0 {
			f.Publish = append([]string(nil), *cfg.Publish...)
		}
	}
	if p := cfg.Logs; p != nil {
		setIf(&f.Logs.MaxBytes, p.MaxBytes)
		setIf(&f.Logs.MaxAge, p.MaxAge)
	}
	if cfg.Quota != nil {
		f.Quota = nil
		if cfg.Quota.Period != "" {
			q := *cfg.Quota
			f.Quota = &q
		}
	}
	if cfg.Schedules != nil {
		f.Schedules = append([]Schedule(nil), *cfg.Schedules...)
		for i := range f.Schedules {
			if f.Schedules[i].Name == "" {
				f.Schedules[i].Name = "schedule-" + strconv.Itoa(i+1)
			}
		}
	}
	if f.Handler == "" && (f.Runtime == "provided" || f.Runtime == "go") {
		f.Handler = defaultBinHandler
	}
	return check(f)
}

func check(f *Function) error {
	if !runtimes[f.Runtime] {
		return invalid("unknown runtime %q (one of provided, go, nodejs, python, wasm)", f.Runtime)
	}
	if err := checkHandler(f.Runtime, f.Handler); err != nil {
		return err
	}
	if f.MemoryMB < MinMemoryMB || f.MemoryMB > MaxMemoryMB {
		return invalid("memory_mb %d is out of range (%d to %d)", f.MemoryMB, MinMemoryMB, MaxMemoryMB)
	}
	if f.Timeout < 1 || f.Timeout > MaxTimeout {
		return invalid("timeout %d is out of range (1 to %d seconds)", f.Timeout, MaxTimeout)
	}
	if err := checkEnv(f.Env); err != nil {
		return err
	}
	if f.Concurrency != nil && (*f.Concurrency < 0 || *f.Concurrency > MaxConcurrency) {
		return invalid("concurrency %d is out of range (0 to %d)", *f.Concurrency, MaxConcurrency)
	}
	if f.KeepWarm < 0 || f.KeepWarm > MaxKeepWarm {
		return invalid("keep_warm %d is out of range (0 for the node's default, up to %d seconds)", f.KeepWarm, MaxKeepWarm)
	}
	if f.MinInstances < 0 || f.MinInstances > MaxMinInstances {
		return invalid("min_instances %d is out of range (0 to %d)", f.MinInstances, MaxMinInstances)
	}
	if f.Concurrency != nil && f.MinInstances > *f.Concurrency {
		return invalid("min_instances %d is over the reserved concurrency %d", f.MinInstances, *f.Concurrency)
	}
	if len(f.Description) > MaxDescription {
		return invalid("description is longer than %d characters", MaxDescription)
	}
	if f.Reuse && f.Runtime != "wasm" {
		return invalid("reuse is for runtime wasm only")
	}
	if f.Network == "" {
		f.Network = NetworkNone // records made before the field
	}
	if f.Network != NetworkNone && f.Network != NetworkHost {
		return invalid("network %q must be %q or %q", f.Network, NetworkNone, NetworkHost)
	}
	if f.URLAuth != URLAuthToken && f.URLAuth != URLAuthNone {
		return invalid("url_auth %q must be %q or %q", f.URLAuth, URLAuthToken, URLAuthNone)
	}
	if err := checkAsync(f); err != nil {
		return err
	}
	if err := checkLogs(f.Logs); err != nil {
		return err
	}
	if err := checkPublishAndQueue(f); err != nil {
		return err
	}
	if f.Quota != nil {
		if err := CheckQuota(*f.Quota); err != nil {
			return err
		}
	}
	return checkSchedules(f.Schedules)
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func checkAsync(f *Function) error {
	a := &f.Async
	if a.Retries < 0 || a.Retries > MaxRetries {
		return invalid("async retries %d is out of range (0 to %d)", a.Retries, MaxRetries)
	}
	if a.MaxEventAge < MinEventAge || a.MaxEventAge > MaxEventAge {
		return invalid("async max_event_age %d is out of range (%d to %d seconds)", a.MaxEventAge, MinEventAge, MaxEventAge)
	}
	for what, d := range map[string]string{"on_success": a.OnSuccess, "on_failure": a.OnFailure} {
		if d == "" {
			continue
		}
		dest, err := ParseDestination(d)
		if err != nil {
			return invalid("async %s: %v", what, err)
		}
		if dest.Function == f.Name {
			return invalid("async %s: a function cannot be its own destination (it would loop)", what)
		}
	}
	if a.DeadLetter != "" {
		if err := CheckTopic(a.DeadLetter); err != nil {
			return invalid("async dead_letter: %v", err)
		}
	}
	return nil
}

// checkNamed checks, at the time of a write, what the write names that
// must exist: the function (and version or alias) of a destination it
// sets, the version or alias each schedule it sets invokes; and that the
// schedules it sets still fire. f is the function as the write leaves it.
// Only what cfg sets is checked, so that a destination deleted since, or a
// schedule whose last year has passed, does not block another change. A
// topic needs no checking: publishing to it makes it.
func (r *Registry) checkNamed(ctx context.Context, f Function, cfg Config) error {
	if p := cfg.Async; p != nil {
		for _, d := range []struct {
			what string
			set  *string
		}{{"on_success", p.OnSuccess}, {"on_failure", p.OnFailure}} {
			if d.set == nil || *d.set == "" {
				continue
			}
			dest, err := ParseDestination(*d.set)
			if err != nil {
				return invalid("async %s: %v", d.what, err)
			}
			if dest.Function == "" || dest.Function == f.Name {
				continue // a topic, or the function itself, which check refuses as a loop
			}
			if err := r.checkExists(ctx, dest.Function, dest.Qualifier, true); err != nil {
				return within("async "+d.what, err)
			}
		}
	}
	if cfg.Schedules == nil {
		return nil
	}
	now := r.now()
	for _, s := range f.Schedules {
		sched, err := schedule.Parse(s.Expression, s.Timezone)
		if err != nil {
			return invalid("%v", err)
		}
		if err := sched.CheckFiresAfter(now); err != nil {
			return invalid("%v", err)
		}
		if err := r.checkExists(ctx, f.Name, s.Qualifier, false); err != nil {
			return within("schedule "+strconv.Quote(s.Name), err)
		}
	}
	return nil
}

// checkExists says whether function fn (when function is true) and its
// qualifier q exist: what does not is a ValidationError naming it; a
// failure to read the registry is passed on as it is.
func (r *Registry) checkExists(ctx context.Context, fn, q string, function bool) error {
	if function {
		if _, err := r.Get(ctx, fn); errors.Is(err, ErrNotFound) {
			return invalid("function %q does not exist", fn)
		} else if err != nil {
			return err
		}
	}
	if q == "" || q == Latest {
		return nil
	}
	if digitsRE.MatchString(q) {
		n, err := strconv.Atoi(q)
		if err != nil {
			return invalid("version %q is not a version", q)
		}
		if _, err := r.GetVersion(ctx, fn, n); errors.Is(err, ErrNotFound) {
			return invalid("version %d of function %q does not exist", n, fn)
		} else if err != nil {
			return err
		}
		return nil
	}
	if _, err := r.GetAlias(ctx, fn, q); errors.Is(err, ErrNotFound) {
		return invalid("alias %q of function %q does not exist", q, fn)
	} else if err != nil {
		return err
	}
	return nil
}

// within puts where a refusal arose in front of its message; other errors
// pass as they are.
func within(where string, err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return invalid("%s: %s", where, ve.Msg)
	}
	return err
}

// Bounds a function may set on its queue; the node's defaults apply
// below them.
const (
	MaxQueuedEventsLimit = 10_000_000
	MaxQueuedBytesLimit  = 64 << 30
	// MinQueuedBytes is the largest event (256 KB), so that one always fits.
	MinQueuedBytes = 256 << 10
)

// checkPublishAndQueue checks what a function may publish and how much it
// may have queued.
func checkPublishAndQueue(f *Function) error {
	if err := checkPublish(f.Publish); err != nil {
		return err
	}
	if n := f.Async.MaxQueuedEvents; n < 0 || n > MaxQueuedEventsLimit {
		return invalid("async max_queued_events %d is out of range (0 for the node's default, up to %d)", n, MaxQueuedEventsLimit)
	}
	if n := f.Async.MaxQueuedBytes; n != 0 && (n < MinQueuedBytes || n > MaxQueuedBytesLimit) {
		return invalid("async max_queued_bytes %d is out of range (0 for the node's default, or %d to %d)", n, MinQueuedBytes, int64(MaxQueuedBytesLimit))
	}
	return nil
}

var scheduleNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func checkSchedules(ss []Schedule) error {
	if len(ss) > MaxSchedules {
		return invalid("%d schedules; at most %d", len(ss), MaxSchedules)
	}
	seen := map[string]bool{}
	for _, s := range ss {
		if !scheduleNameRE.MatchString(s.Name) {
			return invalid("schedule name %q must match [a-z0-9][a-z0-9-]{0,62}", s.Name)
		}
		if seen[s.Name] {
			return invalid("schedule name %q is used twice", s.Name)
		}
		seen[s.Name] = true
		if _, err := schedule.Parse(s.Expression, s.Timezone); err != nil {
			return invalid("%v", err)
		}
		if err := CheckQualifier(s.Qualifier); err != nil {
			return invalid("schedule %q: %v", s.Name, err)
		}
	}
	return nil
}

func checkHandler(runtime, h string) error {
	switch runtime {
	case "wasm":
		if !strings.HasSuffix(h, ".wasm") {
			return invalid("handler %q must name the module's .wasm file for runtime wasm", h)
		}
	case "nodejs", "python":
		// file.export / module.function, the module part a path in the code.
		i := strings.LastIndex(h, ".")
		if i <= 0 || i == len(h)-1 {
			return invalid("handler %q must be module.function for runtime %s", h, runtime)
		}
	}
	if len(h) > 128 || strings.ContainsAny(h, "\x00\n") || strings.Contains(h, "..") || strings.HasPrefix(h, "/") {
		return invalid("handler %q is not a valid handler", h)
	}
	return nil
}

func checkEnv(env map[string]string) error {
	size := 0
	for k, v := range env {
		if !envKeyRE.MatchString(k) {
			return invalid("env key %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if u := strings.ToUpper(k); strings.HasPrefix(u, "AWS_") || strings.HasPrefix(u, "WISP_") ||
			strings.HasPrefix(u, "LAMBDA_") || u == "_HANDLER" || u == "_X_AMZN_TRACE_ID" {
			return invalid("env key %q is reserved (AWS_, LAMBDA_, WISP_, _HANDLER and _X_AMZN_TRACE_ID belong to the platform)", k)
		}
		if strings.ContainsRune(v, 0) {
			return invalid("env value of %q holds a NUL byte", k)
		}
		size += len(k) + len(v)
	}
	if size > MaxEnvBytes {
		return invalid("env is %d bytes; at most %d", size, MaxEnvBytes)
	}
	return nil
}

// checkAlias validates an alias's name and weights (not whether its
// versions exist).
func checkAlias(a Alias) error {
	// A name starts with a letter, so no alias reads as a version.
	if err := ValidName("alias", a.Name); err != nil {
		return err
	}
	if a.Version < 1 {
		return invalid("alias version must be a published version (1 or more)")
	}
	if a.AdditionalWeight < 0 || a.AdditionalWeight > 1 {
		return invalid("additional_weight %v must be between 0 and 1", a.AdditionalWeight)
	}
	if a.AdditionalVersion == 0 && a.AdditionalWeight != 0 {
		return invalid("additional_weight needs an additional_version")
	}
	if a.AdditionalVersion != 0 && a.AdditionalVersion == a.Version {
		return invalid("additional_version must differ from version")
	}
	if a.AdditionalVersion < 0 {
		return invalid("additional_version %d is not a version", a.AdditionalVersion)
	}
	if len(a.Description) > MaxDescription {
		return invalid("description is longer than %d characters", MaxDescription)
	}
	return nil
}

// CheckQuota checks a function's or the node's quota.
func CheckQuota(q Quota) error {
	if q.Period != PeriodHour && q.Period != PeriodDay && q.Period != PeriodMonth {
		return invalid("quota period %q must be %s, %s or %s", q.Period, PeriodHour, PeriodDay, PeriodMonth)
	}
	if q.MaxInvocations < 0 || q.MaxGBSeconds < 0 || q.MaxCost < 0 {
		return invalid("quota maximums must not be negative")
	}
	if q.MaxInvocations == 0 && q.MaxGBSeconds == 0 && q.MaxCost == 0 {
		return invalid("a quota needs max_invocations, max_gb_seconds or max_cost")
	}
	if q.Async != "" && q.Async != QuotaWait && q.Async != QuotaFail {
		return invalid("quota async %q must be %q or %q", q.Async, QuotaWait, QuotaFail)
	}
	return nil
}

// Bounds of a function's log settings (Logs); 0 means the node's default.
const (
	MinLogBytes = 1 << 20
	MaxLogBytes = 64 << 30
	MinLogAge   = 3600            // seconds
	MaxLogAge   = 366 * 24 * 3600 // seconds
)

func checkLogs(l Logs) error {
	if l.MaxBytes != 0 && (l.MaxBytes < MinLogBytes || l.MaxBytes > MaxLogBytes) {
		return invalid("logs max_bytes %d is out of range (0 for the node's default, %d (1 MiB) to %d (64 GiB))",
			l.MaxBytes, MinLogBytes, int64(MaxLogBytes))
	}
	if l.MaxAge != 0 && (l.MaxAge < MinLogAge || l.MaxAge > MaxLogAge) {
		return invalid("logs max_age %d is out of range (0 for the node's default, %d (1 hour) to %d seconds (366 days))",
			l.MaxAge, MinLogAge, MaxLogAge)
	}
	return nil
}
