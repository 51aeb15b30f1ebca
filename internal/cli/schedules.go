package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

func newSchedulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "Show the schedules that invoke functions on a clock",
		Long: `Show the schedules that invoke functions on a clock. A function's schedules
are set with wisp deploy --schedule.`,
		RunE: runGroup,
	}
	cmd.AddCommand(newSchedulesLsCmd(g))
	return cmd
}

func newSchedulesLsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls [FUNCTION]",
		Short: "List schedules, with when each fires next",
		Long: `List the schedules of a function, or of every function, with when each
fires next (in its time zone) and when it last fired.`,
		Args: wantArgs(0, 1),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, args []string) ([]apitype.ScheduleInfo, error) {
		function := ""
		if len(args) == 1 {
			function = args[0]
		}
		list, err := c.Schedules(ctx, function)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 && function != "" {
			// The node lists no schedules of a function that does not
			// exist either; say which it is.
			if _, err := c.GetFunction(ctx, function); err != nil {
				return nil, err
			}
		}
		return list, nil
	}, table[apitype.ScheduleInfo]{
		header: []string{"FUNCTION", "NAME", "EXPRESSION", "TIMEZONE", "NEXT", "LAST"},
		row: func(now time.Time, s apitype.ScheduleInfo) []string {
			return []string{target(s.Function, s.Qualifier), s.Name, s.Expression,
				orDefault(s.Timezone, "UTC"), nextText(now, s), age(now, s.LastTick)}
		},
	})
	return cmd
}

// nextText is when a schedule fires next, in its time zone, and how soon:
// "2026-11-24T08:00:00+01:00 (in 16h)".
func nextText(now time.Time, s apitype.ScheduleInfo) string {
	if s.Next.IsZero() {
		return "-"
	}
	next := s.Next
	if loc, err := time.LoadLocation(s.Timezone); err == nil {
		next = next.In(loc)
	}
	return next.Format(time.RFC3339) + " (" + until(now, s.Next) + ")"
}
