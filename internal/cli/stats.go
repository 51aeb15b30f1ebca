package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

func newStatsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats [NAME]",
		Short: "Show how functions are running on a node",
		Long: `Show each function's invocations on the node since it started, summed over
its versions, and its instances now. These are the node's own metrics (GET
/v1/stats; GET /metrics for Prometheus): in a cluster, each node counts its own.

ERRORS counts the invocations that did not succeed: function errors, timeouts
and throttles. P50 and P99 are the median and 99th percentile duration,
estimated from a histogram as Prometheus' histogram_quantile does.
INSTANCES is idle/busy; QUEUE is the callers waiting for an instance.`,
		Example: `  wisp stats
  wisp stats hello -o json`,
		Args: wantArgs(0, 1),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, fetchStats, table[apitype.FunctionStats]{
		header: []string{"FUNCTION", "INVOCATIONS", "ERRORS", "THROTTLES", "COLD STARTS",
			"P50", "P99", "INSTANCES", "QUEUE"},
		row: func(_ time.Time, s apitype.FunctionStats) []string {
			return []string{
				s.Function, strconv.FormatInt(s.Invocations, 10), strconv.FormatInt(s.Errors, 10),
				strconv.FormatInt(s.Throttles, 10), strconv.FormatInt(s.ColdStarts, 10),
				statsDuration(s.P50), statsDuration(s.P99),
				fmt.Sprintf("%d/%d", s.Idle, s.Busy), strconv.Itoa(s.Queued),
			}
		},
	})
	return cmd
}

// fetchStats is each function's stats on the node, or those of the one
// function args name.
func fetchStats(ctx context.Context, c *client.Client, args []string) ([]apitype.FunctionStats, error) {
	stats, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	if len(args) == 1 {
		name := args[0]
		stats = filterStats(stats, name)
		if len(stats) == 0 {
			// No series: a function that has not run here yet, or a typo.
			if _, err := c.GetFunction(ctx, name); err != nil {
				return nil, err
			}
			stats = []apitype.FunctionStats{{Function: name}}
		}
	}
	return stats, nil
}

func filterStats(stats []apitype.FunctionStats, name string) []apitype.FunctionStats {
	for _, s := range stats {
		if s.Function == name {
			return []apitype.FunctionStats{s}
		}
	}
	return []apitype.FunctionStats{}
}

// statsDuration is an estimated duration in milliseconds as a table shows
// it: three significant digits or so, "-" when there is none.
func statsDuration(ms *float64) string {
	switch {
	case ms == nil:
		return "-"
	case *ms < 10:
		return fmt.Sprintf("%.2fms", *ms)
	case *ms < 100:
		return fmt.Sprintf("%.1fms", *ms)
	case *ms < 1000:
		return fmt.Sprintf("%.0fms", *ms)
	case *ms < 60_000:
		return fmt.Sprintf("%.2fs", *ms/1000)
	}
	return time.Duration(*ms * float64(time.Millisecond)).Round(time.Second).String()
}
