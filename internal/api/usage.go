package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/meter"
	"github.com/wisp-dev/wisp/internal/registry"
)

// Usage serves /v1/usage.
type Usage interface {
	Usage(ctx context.Context, q meter.Query) ([]meter.FunctionUsage, error)
	Records(ctx context.Context, function string, from time.Time, limit int) ([]meter.Record, error)
	Prices() meter.Prices
}

func (a *api) usageOn() (Usage, error) {
	if a.usage == nil {
		return nil, &Error{http.StatusNotImplemented, apitype.TypeService, "metering is not enabled on this node"}
	}
	return a.usage, nil
}

// timeParam reads an RFC 3339 time, or a duration before now ("7d", "36h").
func timeParam(q string, now time.Time, name string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, q); err == nil {
		return t, nil
	}
	d, err := apitype.ParseSince(q)
	if err != nil {
		return time.Time{}, badRequest(fmt.Sprintf("%s %q must be an RFC 3339 time or a duration such as 7d or 36h", name, q))
	}
	return now.Add(-d), nil
}

func (a *api) getUsage(w http.ResponseWriter, r *http.Request) error {
	u, err := a.usageOn()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	now := a.now()
	rep := meter.Report{To: now, Granularity: q.Get("granularity")}
	if s := q.Get("to"); s != "" {
		if rep.To, err = timeParam(s, now, "to"); err != nil {
			return err
		}
	}
	rep.From = rep.To.Add(-7 * 24 * time.Hour)
	if s := q.Get("from"); s != "" {
		if rep.From, err = timeParam(s, now, "from"); err != nil {
			return err
		}
	}
	if rep.Granularity == "" {
		rep.Granularity = meter.Day
		if rep.To.Sub(rep.From) <= 48*time.Hour {
			rep.Granularity = meter.Hour
		}
	}
	var fns []string
	for _, v := range q["function"] {
		for _, fn := range strings.Split(v, ",") {
			if err := registry.ValidName("function", fn); err != nil {
				return err
			}
			if !slices.Contains(fns, fn) {
				fns = append(fns, fn)
			}
		}
	}
	if rep.Functions, err = u.Usage(r.Context(), meter.Query{Functions: fns, From: rep.From, To: rep.To, Granularity: rep.Granularity}); err != nil {
		return badRequest(err.Error())
	}
	// The buckets start on whole hours or days: so does the report.
	rep.From = meter.BucketStart(rep.Granularity, rep.From)
	rep.Prices, rep.LambdaX86 = u.Prices(), meter.LambdaX86
	rep.From, rep.To = rep.From.UTC(), rep.To.UTC()
	rep.Total.Start = rep.From
	for _, f := range rep.Functions {
		rep.Total.Usage = rep.Total.Usage.Plus(f.Usage)
	}
	rep.Total.GBSeconds, rep.Total.Cost = rep.Total.Usage.GBSeconds(), rep.Prices.Cost(rep.Total.Usage)
	writeJSON(w, http.StatusOK, wireReport(rep))
	return nil
}

func (a *api) usageRecords(w http.ResponseWriter, r *http.Request) error {
	u, err := a.usageOn()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	fn := q.Get("function")
	if err := registry.ValidName("function", fn); err != nil {
		return err
	}
	from := a.now().Add(-time.Hour)
	if s := q.Get("from"); s != "" {
		if from, err = timeParam(s, a.now(), "from"); err != nil {
			return err
		}
	}
	limit := defaultPage
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 10*maxPage {
			return badRequest(fmt.Sprintf("limit %q must be 1 to %d", s, 10*maxPage))
		}
	}
	recs, err := u.Records(r.Context(), fn, from, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": each(recs, wireUsageRecord)})
	return nil
}
