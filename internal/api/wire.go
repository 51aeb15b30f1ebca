package api

import (
	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/registry"
	"github.com/wisp-dev/wisp/internal/telemetry"
)

// The API speaks apitype's types; the parts below keep their own records.
// These functions are the one place the two meet, so a storage field is on
// the wire only once it is written here. Types whose fields are the same
// on both sides convert with a Go conversion, which fails to compile once
// they differ.

// each converts every element of in, keeping nil nil (JSON null) and
// empty empty (JSON []).
func each[T, U any](in []T, conv func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = conv(v)
	}
	return out
}

func wireFunction(f registry.Function) apitype.Function {
	return apitype.Function{
		Name: f.Name, Runtime: f.Runtime, Handler: f.Handler, MemoryMB: f.MemoryMB, Timeout: f.Timeout, Env: f.Env,
		Concurrency: f.Concurrency, MinInstances: f.MinInstances, KeepWarm: f.KeepWarm, Description: f.Description,
		URLAuth: f.URLAuth, Network: f.Network, Reuse: f.Reuse, Async: apitype.AsyncConfig(f.Async),
		Schedules: each(f.Schedules, wireSchedule), Logs: apitype.Logs(f.Logs), Quota: (*apitype.Quota)(f.Quota),
		Publish: f.Publish, CodeSHA256: f.CodeSHA256, CodeSize: f.CodeSize, CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt,
		Revision: f.Revision,
	}
}

func wireSchedule(s registry.Schedule) apitype.Schedule { return apitype.Schedule(s) }

func wireVersion(v registry.Version) apitype.Version {
	return apitype.Version{Version: v.Version, Function: wireFunction(v.Function), CreatedAt: v.CreatedAt, Description: v.Description}
}

func wireAlias(a registry.Alias) apitype.Alias { return apitype.Alias(a) }

// storedConfig is a caller's config as the registry takes it.
func storedConfig(c apitype.Config) registry.Config {
	cfg := registry.Config{
		Name: c.Name, Runtime: c.Runtime, Handler: c.Handler, MemoryMB: c.MemoryMB, Timeout: c.Timeout, Env: c.Env,
		Concurrency: c.Concurrency, MinInstances: c.MinInstances, KeepWarm: c.KeepWarm, Description: c.Description,
		URLAuth: c.URLAuth, Network: c.Network, Reuse: c.Reuse, Async: (*registry.AsyncPatch)(c.Async),
		Quota: (*registry.Quota)(c.Quota), Logs: (*registry.LogsPatch)(c.Logs), Publish: c.Publish,
		ClearConcurrency: c.ClearConcurrency,
	}
	if c.Schedules != nil {
		s := each(*c.Schedules, func(s apitype.Schedule) registry.Schedule { return registry.Schedule(s) })
		cfg.Schedules = &s
	}
	return cfg
}

func wireTopicEvent(e events.TopicEvent) apitype.TopicEvent { return apitype.TopicEvent(e) }

func wireTopic(t events.Topic) apitype.Topic {
	return apitype.Topic{Topic: t.Topic, Events: t.Events, LastPublished: t.LastPublished,
		Publishers:  each(t.Publishers, func(p events.Publisher) apitype.Publisher { return apitype.Publisher(p) }),
		Subscribers: each(t.Subscribers, func(s events.Subscriber) apitype.Subscriber { return apitype.Subscriber(s) })}
}

func wireSubscription(s events.Subscription) apitype.Subscription {
	return apitype.Subscription{ID: s.ID, Topic: s.Topic, Function: s.Function, Qualifier: s.Qualifier,
		Filter: apitype.Filter(s.Filter), CreatedAt: s.CreatedAt}
}

func wireScheduleInfo(s events.ScheduleInfo) apitype.ScheduleInfo {
	return apitype.ScheduleInfo{Function: s.Function, Schedule: wireSchedule(s.Schedule), Next: s.Next, LastTick: s.LastTick}
}

func wireUsageRecord(r meter.Record) apitype.UsageRecord { return apitype.UsageRecord(r) }

func wireBucket(b meter.Bucket) apitype.UsageBucket {
	return apitype.UsageBucket{Start: b.Start, Usage: apitype.Usage(b.Usage), GBSeconds: b.GBSeconds, Cost: b.Cost}
}

func wireFunctionUsage(f meter.FunctionUsage) apitype.FunctionUsage {
	return apitype.FunctionUsage{Function: f.Function, Usage: apitype.Usage(f.Usage), GBSeconds: f.GBSeconds,
		Cost: f.Cost, Buckets: each(f.Buckets, wireBucket)}
}

func wireReport(r meter.Report) apitype.UsageReport {
	return apitype.UsageReport{Granularity: r.Granularity, From: r.From, To: r.To, Prices: apitype.Prices(r.Prices),
		LambdaX86: apitype.Prices(r.LambdaX86), Functions: each(r.Functions, wireFunctionUsage), Total: wireBucket(r.Total)}
}

func wireLogRecord(r telemetry.Record) apitype.LogRecord { return apitype.LogRecord(r) }

func wireAccessKey(k auth.AccessKey) apitype.AccessKey { return apitype.AccessKey(k) }
