// Package registry owns functions, their versions and aliases, and the code
// artifacts they point at. It validates every change and keeps the state in
// JetStream (a KV bucket for records, an Object Store for code), so every node
// sharing the NATS sees the same registry and can watch it change.
package registry

import (
	"encoding/json"
	"time"
)

// Latest is the qualifier of a function's mutable head.
const Latest = "$LATEST"

// Function is a function's $LATEST: its config and the code it runs, as
// the registry stores it (the control API speaks apitype.Function).
type Function struct {
	Name     string            `json:"name"`
	Runtime  string            `json:"runtime"`
	Handler  string            `json:"handler,omitempty"`
	MemoryMB int               `json:"memory_mb"`
	Timeout  int               `json:"timeout"` // seconds
	Env      map[string]string `json:"env,omitempty"`
	// Concurrency is the reserved concurrency: nil means unreserved (the
	// node's limits apply), 0 means throttled.
	Concurrency  *int `json:"concurrency,omitempty"`
	MinInstances int  `json:"min_instances"`
	// KeepWarm is how many seconds an idle instance is kept before it
	// stops; 0 means the node's default.
	KeepWarm    int    `json:"keep_warm,omitempty"`
	Description string `json:"description,omitempty"`
	// URLAuth is "token" (default) or "none" (the function URL is public).
	URLAuth string `json:"url_auth"`
	// Network is "none" (default: the instance has no network but its
	// Runtime API and Wisp's API) or "host" (the host's network).
	Network string `json:"network"`
	// Reuse (wasm only) keeps an instance of the module warm between
	// calls, for modules that export a handler; by default every call
	// gets a fresh instance.
	Reuse bool `json:"reuse,omitempty"`
	// Async is how the function's events (async invocations) are retried
	// and where their outcomes go.
	Async AsyncConfig `json:"async"`
	// Schedules invoke the function on a clock.
	Schedules []Schedule `json:"schedules,omitempty"`
	// Logs bounds what is kept of the function's log.
	Logs Logs `json:"logs"`
	// Quota caps the function's usage per period; nil: no cap.
	Quota *Quota `json:"quota,omitempty"`
	// Publish are the topics the function's own token may publish to,
	// as topic patterns (see CheckTopicPattern); none by default.
	Publish    []string  `json:"publish,omitempty"`
	CodeSHA256 string    `json:"code_sha256"`
	CodeSize   int64     `json:"code_size"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Revision changes on every write; updates may name it (If-Match) to
	// refuse a stale write.
	Revision uint64 `json:"revision"`
}

// UnmarshalJSON reads a function, giving records stored before a field
// existed that field's default.
func (f *Function) UnmarshalJSON(b []byte) error {
	type plain Function // without this method
	p := plain{Async: AsyncConfig{Retries: DefaultRetries, MaxEventAge: MaxEventAge}}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = Function(p)
	return nil
}

// Config is the part of a function a caller sets. Nil fields are left as
// they are on update and take their defaults on create.
type Config struct {
	Name         string            `json:"name,omitempty"`
	Runtime      *string           `json:"runtime,omitempty"`
	Handler      *string           `json:"handler,omitempty"`
	MemoryMB     *int              `json:"memory_mb,omitempty"`
	Timeout      *int              `json:"timeout,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Concurrency  *int              `json:"concurrency,omitempty"`
	MinInstances *int              `json:"min_instances,omitempty"`
	KeepWarm     *int              `json:"keep_warm,omitempty"`
	Description  *string           `json:"description,omitempty"`
	URLAuth      *string           `json:"url_auth,omitempty"`
	Network      *string           `json:"network,omitempty"`
	Reuse        *bool             `json:"reuse,omitempty"`
	Async        *AsyncPatch       `json:"async,omitempty"`
	// Schedules, when set, replaces the function's schedules; an empty
	// list removes them all.
	Schedules *[]Schedule `json:"schedules,omitempty"`
	// Quota, when set, replaces the function's quota; one with no period
	// removes it.
	Quota *Quota `json:"quota,omitempty"`
	// Logs changes what is kept of the function's log.
	Logs *LogsPatch `json:"logs,omitempty"`
	// Publish, when set, replaces the function's publish grants; an empty
	// list removes them all.
	Publish *[]string `json:"publish,omitempty"`
	// ClearConcurrency sets Concurrency back to unreserved.
	ClearConcurrency bool `json:"clear_concurrency,omitempty"`
}

// Version is an immutable snapshot of a function, numbered 1, 2, … .
type Version struct {
	Version     int       `json:"version"`
	Function    Function  `json:"function"` // the config and code at publish time
	CreatedAt   time.Time `json:"created_at"`
	Description string    `json:"description,omitempty"`
}

// Alias names a version of a function, optionally with a second version that
// takes AdditionalWeight (0 to 1) of the calls.
type Alias struct {
	Name              string    `json:"name"`
	Function          string    `json:"function"`
	Version           int       `json:"version"`
	AdditionalVersion int       `json:"additional_version,omitempty"`
	AdditionalWeight  float64   `json:"additional_weight,omitempty"`
	Description       string    `json:"description,omitempty"`
	UpdatedAt         time.Time `json:"updated_at"`
	Revision          uint64    `json:"revision"`
}

// AsyncConfig is a function's handling of events, as Lambda's event invoke
// config: how often a failed event is retried, how old it may get, and where
// its outcome goes. A destination is "function:NAME[:QUALIFIER]" (an event
// to that function) or "topic:NAME" (an event on that topic).
type AsyncConfig struct {
	// Retries is how many times a failed event is tried again (0 to 10).
	Retries int `json:"retries"`
	// MaxEventAge is how many seconds an event may wait, retries
	// included, before it counts as failed.
	MaxEventAge int    `json:"max_event_age"`
	OnSuccess   string `json:"on_success,omitempty"`
	OnFailure   string `json:"on_failure,omitempty"`
	// DeadLetter is the topic a failed event goes to when OnFailure is
	// not set; default "dlq.<function>". A failed event always goes
	// somewhere.
	DeadLetter string `json:"dead_letter,omitempty"`
	// MaxQueuedEvents and MaxQueuedBytes bound the function's queue:
	// past either, a new event is refused (the Invoke API answers 429,
	// a topic's delivery fails with condition EventQueueFull). 0 means
	// the node's default.
	MaxQueuedEvents int64 `json:"max_queued_events,omitempty"`
	MaxQueuedBytes  int64 `json:"max_queued_bytes,omitempty"`
}

// AsyncPatch changes an AsyncConfig: nil fields stay, an empty string
// clears a destination.
type AsyncPatch struct {
	Retries     *int    `json:"retries,omitempty"`
	MaxEventAge *int    `json:"max_event_age,omitempty"`
	OnSuccess   *string `json:"on_success,omitempty"`
	OnFailure   *string `json:"on_failure,omitempty"`
	DeadLetter  *string `json:"dead_letter,omitempty"`
	// MaxQueuedEvents and MaxQueuedBytes set the queue's bounds; 0 is
	// the node's default.
	MaxQueuedEvents *int64 `json:"max_queued_events,omitempty"`
	MaxQueuedBytes  *int64 `json:"max_queued_bytes,omitempty"`
}

// Schedule invokes a function on a clock: Expression is rate(…), an
// EventBridge cron(…) or a five-field cron, read in Timezone (default UTC).
type Schedule struct {
	// Name tells a function's schedules apart; default "schedule-N".
	Name       string `json:"name"`
	Expression string `json:"expression"`
	Timezone   string `json:"timezone,omitempty"`
	// CatchUp fires once for the ticks missed while no node ran;
	// without it they are skipped.
	CatchUp bool `json:"catch_up,omitempty"`
	// Qualifier is what the schedule invokes; default $LATEST.
	Qualifier string `json:"qualifier,omitempty"`
}

// Quota caps usage in each period (an hour, a day or a month, UTC): at
// most MaxInvocations calls, MaxGBSeconds of billed memory-time, MaxCost
// under the node's prices; a zero field is no cap. A capped function's
// calls are refused (429, SpendCapExceeded) until the next period.
type Quota struct {
	Period         string  `json:"period"`
	MaxInvocations int64   `json:"max_invocations,omitempty"`
	MaxGBSeconds   float64 `json:"max_gb_seconds,omitempty"`
	MaxCost        float64 `json:"max_cost,omitempty"`
	// Async is what a capped function's events do: "wait" (the default)
	// for the next period, or "fail" to the failure destination.
	Async string `json:"async,omitempty"`
}

// Quota periods and async behaviours.
const (
	PeriodHour  = "hour"
	PeriodDay   = "day"
	PeriodMonth = "month"
	QuotaWait   = "wait"
	QuotaFail   = "fail"
)

// Logs bounds what is kept of a function's log, which has a stream of its
// own: once it holds MaxBytes the oldest records go first, and no record
// is kept past MaxAge seconds. A zero field means the node's default
// (64 MiB, 7 days unless the node says otherwise).
type Logs struct {
	MaxBytes int64 `json:"max_bytes,omitempty"`
	MaxAge   int   `json:"max_age,omitempty"` // seconds
}

// LogsPatch changes a function's Logs: nil fields stay, 0 sets the
// node's default back.
type LogsPatch struct {
	MaxBytes *int64 `json:"max_bytes,omitempty"`
	MaxAge   *int   `json:"max_age,omitempty"`
}
