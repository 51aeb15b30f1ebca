package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// trendBuckets is how many of the last buckets TREND draws.
const trendBuckets = 24

func newUsageCmd(g *globals) *cobra.Command {
	var (
		since, granularity string
		records            bool
		limit              int
	)
	cmd := &cobra.Command{
		Use:   "usage [NAME...]",
		Short: "Show what functions used and what it costs",
		Long: `Show each function's invocations, errors, cold starts and billed memory-time
(GB-seconds, as Lambda bills it: memory × duration rounded up to the
millisecond) since --since, and what that costs at the node's prices,
beside AWS Lambda's x86 prices. Without NAMEs, every function that ran;
the node counts an invocation within about a second of its end.

TREND draws the invocations of the last buckets (hours or days, see
--granularity; at most 24), one character each, a blank for none.

--records lists one function's invocations one by one (the node keeps them
31 days), oldest first: when each started, what triggered it, how long it
ran and what it was billed.`,
		Example: `  wisp usage
  wisp usage hello --since 36h
  wisp usage --since 30d --granularity day -o json
  wisp usage hello --records --since 10m`,
		Args: wantArgs(0, math.MaxInt),
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "7d", "how far back: a duration such as 7d or 36h, or an RFC 3339 time (with --records, default 1h)")
	fl.StringVar(&granularity, "granularity", "", "bucket by hour or day (default: hour when --since is at most 48h, else day)")
	fl.BoolVar(&records, "records", false, "list the invocations of one function NAME one by one")
	fl.IntVar(&limit, "limit", 50, "with --records: show at most this many, 1 to 10000")
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkSince(since); err != nil {
			return err
		}
		if records {
			return usageRecords(cmd, g, out, args, since, limit)
		}
		if fl.Changed("limit") {
			return usageErrorf("--limit applies to --records")
		}
		if granularity != "" && granularity != "hour" && granularity != "day" {
			return usageErrorf("--granularity %q must be hour or day", granularity)
		}
		for _, name := range args {
			if err := apitype.CheckName("function", name); err != nil {
				return &usageError{err}
			}
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		rep, err := c.Usage(cmd.Context(), client.UsageQuery{Functions: args, From: since, Granularity: granularity})
		if err != nil {
			return err
		}
		// A function named that used nothing may be a typo.
		for _, f := range rep.Functions {
			if f.Invocations == 0 {
				if _, err := c.GetFunction(cmd.Context(), f.Function); client.IsNotFound(err) {
					return err
				}
			}
		}
		return out.print(cmd.OutOrStdout(), rep, func(w io.Writer) error { return writeUsage(w, rep) })
	}
	return cmd
}

// checkSince refuses a --since the node would not read.
func checkSince(s string) error {
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return nil
	}
	if _, err := apitype.ParseSince(s); err != nil {
		return usageErrorf("--since %q is not a duration (such as 7d or 36h) or an RFC 3339 time", s)
	}
	return nil
}

// writeUsage writes a usage report as a table with a TOTAL row, then the
// span and the prices.
func writeUsage(w io.Writer, rep apitype.UsageReport) error {
	rows := make([][]string, 0, len(rep.Functions)+1)
	var totals []int64 // the invocations of every function, bucket by bucket, aligned at the end
	for _, f := range rep.Functions {
		counts := invocationsOf(f.Buckets)
		if len(counts) > len(totals) {
			totals = append(make([]int64, len(counts)-len(totals)), totals...)
		}
		for i, n := range counts {
			totals[len(totals)-len(counts)+i] += n
		}
		rows = append(rows, usageRow(f.Function, f.Usage, f.GBSeconds, f.Cost, counts))
	}
	rows = append(rows, usageRow("TOTAL", rep.Total.Usage, rep.Total.GBSeconds, rep.Total.Cost, totals))
	if err := writeTable(w, []string{"FUNCTION", "INVOCATIONS", "ERRORS", "COLD", "GB-S", "COST", "TREND"}, rows); err != nil {
		return err
	}
	trend := "invocations per " + rep.Granularity
	if n := min(len(totals), trendBuckets); n > 0 {
		trend += fmt.Sprintf(", the last %d", n)
	}
	_, err := fmt.Fprintf(w, "%s to %s by %s (TREND: %s)\nprices: %s (AWS Lambda x86: %s)\n",
		rep.From.UTC().Format(time.RFC3339), rep.To.UTC().Format(time.RFC3339), rep.Granularity, trend,
		pricesText(rep.Prices), pricesText(rep.LambdaX86))
	return err
}

func usageRow(name string, u apitype.Usage, gbs, cost float64, counts []int64) []string {
	return []string{name, strconv.FormatInt(u.Invocations, 10), strconv.FormatInt(u.Errors, 10),
		strconv.FormatInt(u.ColdStarts, 10), decimal(gbs), "$" + decimal(cost), sparkline(counts)}
}

func invocationsOf(buckets []apitype.UsageBucket) []int64 {
	out := make([]int64, len(buckets))
	for i, b := range buckets {
		out[i] = b.Invocations
	}
	return out
}

// sparks are the levels of a sparkline, lowest first.
var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last trendBuckets counts, one character each
// scaled to the highest, a space for none.
func sparkline(counts []int64) string {
	counts = counts[max(0, len(counts)-trendBuckets):]
	var peak int64
	for _, n := range counts {
		peak = max(peak, n)
	}
	var b strings.Builder
	for _, n := range counts {
		if n <= 0 {
			b.WriteByte(' ')
			continue
		}
		level := int(math.Ceil(float64(n)*float64(len(sparks))/float64(peak))) - 1
		b.WriteRune(sparks[min(max(level, 0), len(sparks)-1)])
	}
	return b.String()
}

// decimal is v with two decimals or, under 1, as many as show two
// significant digits (0.000042), so that small usage does not read 0.
func decimal(v float64) string {
	if v == 0 {
		return "0"
	}
	d := 2
	if v < 1 {
		d = min(max(d, int(math.Ceil(-math.Log10(v)))+1), 12)
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

// pricesText is a price table as Lambda's pricing page gives it.
func pricesText(p apitype.Prices) string {
	return "$" + price(p.PerRequest*1e6) + " per 1M requests, $" + price(p.PerGBSecond) + " per GB-s"
}

// price is a price in full, with at least cents: 0.20, 0.0000166667.
func price(v float64) string {
	// Ten significant digits hide the float error of p × 1e6.
	v, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 10, 64), 64)
	if err != nil {
		return "?"
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	for len(frac) < 2 {
		frac += "0"
	}
	return whole + "." + frac
}

func usageRecords(cmd *cobra.Command, g *globals, out *outputFlag, args []string, since string, limit int) error {
	if len(args) != 1 {
		return usageErrorf("--records lists one function's invocations: give exactly one NAME, not %d", len(args))
	}
	if cmd.Flags().Changed("granularity") {
		return usageErrorf("--granularity applies to the summary, not --records")
	}
	if limit < 1 || limit > 10000 {
		return usageErrorf("--limit %d must be 1 to 10000", limit)
	}
	if err := apitype.CheckName("function", args[0]); err != nil {
		return &usageError{err}
	}
	from := since
	if !cmd.Flags().Changed("since") {
		from = "" // the node's default: the last hour
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	recs, err := c.UsageRecords(cmd.Context(), args[0], from, limit)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		// None: a function that did not run, or a typo.
		if _, err := c.GetFunction(cmd.Context(), args[0]); client.IsNotFound(err) {
			return err
		}
	}
	err = out.print(cmd.OutOrStdout(), recs, func(w io.Writer) error { return writeRecords(w, recs) })
	if err == nil && len(recs) == limit {
		next := recs[len(recs)-1].Start.Add(time.Nanosecond).UTC().Format(time.RFC3339Nano)
		fmt.Fprintf(cmd.ErrOrStderr(), "more records may follow: --since %s\n", next) //nolint:errcheck // a terminal
	}
	return err
}

func writeRecords(w io.Writer, recs []apitype.UsageRecord) error {
	rows := make([][]string, 0, len(recs))
	for _, r := range recs {
		cold := "no"
		if r.Cold {
			cold = "yes"
		}
		rows = append(rows, []string{r.Start.UTC().Format("2006-01-02T15:04:05.000Z07:00"), r.RequestID, r.Trigger,
			fmt.Sprintf("%.2f ms", float64(r.DurationUs)/1000), fmt.Sprintf("%d ms", r.BilledMs),
			fmt.Sprintf("%d MB", r.MemoryMB), decimal(r.GBSeconds()), cold, r.Outcome})
	}
	return writeTable(w, []string{"START", "REQUEST-ID", "TRIGGER", "DURATION", "BILLED", "MEMORY", "GB-S", "COLD", "OUTCOME"}, rows)
}

// quotaFlags are the --quota flags: a function's quota (wisp deploy) or
// the node's (wisp server).
type quotaFlags struct {
	period      string
	invocations int64
	gbSeconds   float64
	cost        float64
	async       string
}

var quotaFlagNames = []string{"quota-period", "quota-invocations", "quota-gb-seconds", "quota-cost", "quota-async"}

// add defines the flags on fl; whose usage they cap is "the function's"
// or "all functions'"; async adds --quota-async.
func (q *quotaFlags) add(fl *pflag.FlagSet, whose string, async bool) {
	fl.StringVar(&q.period, "quota-period", "", "cap "+whose+" usage per hour, day or month (UTC): calls past a cap are refused (429) until the next")
	fl.Int64Var(&q.invocations, "quota-invocations", 0, "the most invocations in a --quota-period (0: no cap)")
	fl.Float64Var(&q.gbSeconds, "quota-gb-seconds", 0, "the most GB-seconds of billed memory-time in a --quota-period (0: no cap)")
	fl.Float64Var(&q.cost, "quota-cost", 0, "the most dollars, at the node's prices, in a --quota-period (0: no cap)")
	if async {
		fl.StringVar(&q.async, "quota-async", "", "what a capped function's events do: wait for the next period or fail to the failure destination (default wait)")
	}
}

// given reports whether a --quota flag is set.
func (q *quotaFlags) given(fl *pflag.FlagSet) bool {
	for _, name := range quotaFlagNames {
		if fl.Changed(name) {
			return true
		}
	}
	return false
}

// check refuses --quota values that make no quota.
func (q *quotaFlags) check(fl *pflag.FlagSet) error {
	switch q.period {
	case "":
		if fl.Changed("quota-period") {
			for _, name := range quotaFlagNames[1:] {
				if fl.Changed(name) {
					return usageErrorf("--quota-period '' removes the quota: it takes no --%s", name)
				}
			}
		}
	case apitype.PeriodHour, apitype.PeriodDay, apitype.PeriodMonth:
	default:
		return usageErrorf("--quota-period %q must be hour, day or month", q.period)
	}
	if q.invocations < 0 || q.gbSeconds < 0 || q.cost < 0 {
		return usageErrorf("the --quota maximums must not be negative")
	}
	if q.async != "" && q.async != apitype.QuotaWait && q.async != apitype.QuotaFail {
		return usageErrorf("--quota-async %q must be wait or fail", q.async)
	}
	return nil
}

// apply returns base (nil: none) with the --quota flags given set on it:
// the quota to send. An empty --quota-period makes one with no period,
// which removes a function's quota.
func (q *quotaFlags) apply(fl *pflag.FlagSet, base *apitype.Quota) (*apitype.Quota, error) {
	if fl.Changed("quota-period") && q.period == "" {
		return &apitype.Quota{}, nil
	}
	var out apitype.Quota
	if base != nil {
		out = *base
	}
	if fl.Changed("quota-period") {
		out.Period = q.period
	}
	if fl.Changed("quota-invocations") {
		out.MaxInvocations = q.invocations
	}
	if fl.Changed("quota-gb-seconds") {
		out.MaxGBSeconds = q.gbSeconds
	}
	if fl.Changed("quota-cost") {
		out.MaxCost = q.cost
	}
	if fl.Changed("quota-async") {
		out.Async = q.async
	}
	if out.Period == "" {
		return nil, usageErrorf("--quota-period (hour, day or month) is needed to set a quota")
	}
	if out.MaxInvocations == 0 && out.MaxGBSeconds == 0 && out.MaxCost == 0 {
		return nil, usageErrorf("a quota needs --quota-invocations, --quota-gb-seconds or --quota-cost (--quota-period '' removes it)")
	}
	return &out, nil
}

// quotaText is a quota on one line: "1000 invocations, 3.6 GB-s, $5 per
// day; capped events wait".
func quotaText(q *apitype.Quota) string {
	if q == nil {
		return "none"
	}
	var caps []string
	if q.MaxInvocations > 0 {
		caps = append(caps, strconv.FormatInt(q.MaxInvocations, 10)+" invocations")
	}
	if q.MaxGBSeconds > 0 {
		caps = append(caps, strconv.FormatFloat(q.MaxGBSeconds, 'f', -1, 64)+" GB-s")
	}
	if q.MaxCost > 0 {
		caps = append(caps, "$"+strconv.FormatFloat(q.MaxCost, 'f', -1, 64))
	}
	async := q.Async
	if async == "" {
		async = apitype.QuotaWait
	}
	return strings.Join(caps, ", ") + " per " + q.Period + "; capped events " + async
}
