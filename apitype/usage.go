package apitype

import "time"

// UsageRecord is one invocation's usage: its trigger, start, duration,
// billed duration (as its REPORT line gives it), memory and outcome.
type UsageRecord struct {
	Function  string `json:"function"`
	Version   string `json:"version"`
	RequestID string `json:"request_id"`
	// Trigger is what invoked it: sync (the Invoke API), url (a function
	// URL), event (an async invocation), schedule, topic, destination.
	Trigger    string    `json:"trigger"`
	Start      time.Time `json:"start"`
	DurationUs int64     `json:"duration_us"`
	BilledMs   int64     `json:"billed_ms"`
	MemoryMB   int       `json:"memory_mb"`
	Cold       bool      `json:"cold,omitempty"`
	InitUs     int64     `json:"init_us,omitempty"`
	// Outcome is success, error or timeout.
	Outcome string `json:"outcome"`
}

// GBSeconds is the record's billed memory-time in GB-seconds (MB × billed
// ms / 1024 / 1000), as the node bills it.
func (r UsageRecord) GBSeconds() float64 { return float64(int64(r.MemoryMB)*r.BilledMs) / 1024 / 1000 }

// Usage is what a set of invocations used: counts, billed
// milliseconds and memory-time (MB × billed ms).
type Usage struct {
	Invocations int64 `json:"invocations"`
	Errors      int64 `json:"errors"`
	ColdStarts  int64 `json:"cold_starts"`
	BilledMs    int64 `json:"billed_ms"`
	MBms        int64 `json:"mb_ms"`
	DurationUs  int64 `json:"duration_us"`
}

// UsageBucket is a function's usage in one hour or day, with its
// GB-seconds and cost.
type UsageBucket struct {
	Start time.Time `json:"start"`
	Usage
	GBSeconds float64 `json:"gb_seconds"`
	Cost      float64 `json:"cost"`
}

// FunctionUsage is a function's usage over a report's span, and bucket by
// bucket.
type FunctionUsage struct {
	Function string `json:"function"`
	Usage
	GBSeconds float64       `json:"gb_seconds"`
	Cost      float64       `json:"cost"`
	Buckets   []UsageBucket `json:"buckets"`
}

// Prices turn usage into cost, as Lambda prices it: dollars per request
// and per GB-second of billed memory-time.
type Prices struct {
	PerRequest  float64 `json:"per_request"`
	PerGBSecond float64 `json:"per_gb_second"`
}

// UsageReport is the answer of GET /v1/usage: the usage of each function
// over [From, To), by hour or day, its cost at the node's prices, and AWS
// Lambda's x86 prices to compare them with.
type UsageReport struct {
	Granularity string          `json:"granularity"`
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Prices      Prices          `json:"prices"`
	LambdaX86   Prices          `json:"lambda_x86_prices"`
	Functions   []FunctionUsage `json:"functions"`
	// Total is every function's usage together; its Start is From.
	Total UsageBucket `json:"total"`
}

// SpendCap is a reached quota, as the 429 of a capped call describes it
// and as the data of the wisp.cap.exceeded events on SpendCapTopic.
type SpendCap struct {
	Function string    `json:"function"`
	Scope    string    `json:"scope"` // "function" or "node"
	Limit    string    `json:"limit"` // invocations, gb_seconds or cost
	Used     float64   `json:"used"`
	Max      float64   `json:"max"`
	Period   string    `json:"period"`
	Start    time.Time `json:"period_start"`
	Until    time.Time `json:"until"` // when the next period starts
	// Async is what the quota says capped events do: wait or fail.
	Async string `json:"async,omitempty"`
}

const (
	// ReasonSpendCap is the Reason of the 429 TooManyRequestsException a
	// call gets when its function's quota, or the node's, is used up.
	ReasonSpendCap = "SpendCapExceeded"
	// SpendCapTopic is the topic a node tells a reached quota on, once per
	// period, as a CloudEvent of type wisp.cap.exceeded.
	SpendCapTopic = "spend-caps"
)

// LogRecord is one line of a function's log.
type LogRecord struct {
	Time      time.Time `json:"time"`
	Function  string    `json:"function"`
	Version   string    `json:"version"`
	Instance  string    `json:"instance,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	// Stream is where the line came from: stdout, stderr, or "platform"
	// for the START, END and REPORT lines.
	Stream  string `json:"stream,omitempty"`
	Message string `json:"message"`
}

// AccessKey is an access key pair for AWS SDKs and the AWS CLI: the id,
// and the secret only in the answer that created it.
type AccessKey struct {
	ID          string    `json:"access_key_id"`
	Secret      string    `json:"secret_access_key,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}
