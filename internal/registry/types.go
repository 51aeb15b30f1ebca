// Package registry owns functions, their versions and aliases, and the code
// artifacts they point at. It validates every change and keeps the state in
// JetStream (a KV bucket for records, an Object Store for code), so every node
// sharing the NATS sees the same registry and can watch it change.
package registry

import (
	"encoding/json"
	"time"

	"github.com/wisp-dev/wisp/apitype"
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

// Version is an immutable snapshot of a function, numbered 1, 2, … .
type Version struct {
	Version     int       `json:"version"`
	Function    Function  `json:"function"` // the config and code at publish time
	CreatedAt   time.Time `json:"created_at"`
	Description string    `json:"description,omitempty"`
}

// The parts of a function that are the same on the wire as in the
// registry's records: what a caller sets (Config and its patches), an
// alias, and the function's sub-records. They are apitype's, so that there
// is one definition of each; Function and Version, which the registry
// stores with fields and migrations of its own, are the registry's.
type (
	Config      = apitype.Config
	AsyncPatch  = apitype.AsyncPatch
	LogsPatch   = apitype.LogsPatch
	Alias       = apitype.Alias
	AsyncConfig = apitype.AsyncConfig
	Schedule    = apitype.Schedule
	Quota       = apitype.Quota
	Logs        = apitype.Logs
)

// Quota periods and async behaviours.
const (
	PeriodHour  = apitype.PeriodHour
	PeriodDay   = apitype.PeriodDay
	PeriodMonth = apitype.PeriodMonth
	QuotaWait   = apitype.QuotaWait
	QuotaFail   = apitype.QuotaFail
)
