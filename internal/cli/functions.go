package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

func newLsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List functions",
		Args:  wantArgs(0, 0),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, _ []string) ([]apitype.Function, error) {
		return c.AllFunctions(ctx)
	}, table[apitype.Function]{
		header: []string{"NAME", "RUNTIME", "MEMORY", "TIMEOUT", "CODE", "UPDATED"},
		row: func(now time.Time, f apitype.Function) []string {
			name := f.Name
			if f.InsecureNoSandbox {
				name += " (UNSANDBOXED)"
			}
			return []string{name, f.Runtime, fmt.Sprintf("%d MB", f.MemoryMB), fmt.Sprintf("%ds", f.Timeout),
				shortSHA(f.CodeSHA256), age(now, f.UpdatedAt)}
		},
		warn: func(fns []apitype.Function) string {
			if slices.ContainsFunc(fns, func(f apitype.Function) bool { return f.InsecureNoSandbox }) {
				return "warning: this node runs functions without a sandbox (--insecure-no-sandbox)"
			}
			return ""
		},
	})
	return cmd
}

func newGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a function",
		Args:  wantArgs(1, 1),
	}
	out := addOutputFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		f, err := c.GetFunction(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), f, func(w io.Writer) error {
			return writeFields(w, functionFields(f, g.now()))
		})
	}
	return cmd
}

// functionFields is a function as `wisp get` prints it, keyed as in its JSON.
func functionFields(f apitype.Function, now time.Time) []field {
	concurrency := "unreserved"
	if f.Concurrency != nil {
		concurrency = strconv.Itoa(*f.Concurrency)
	}
	fields := []field{
		{"name", f.Name},
		{"runtime", f.Runtime},
		{"handler", f.Handler},
		{"memory_mb", strconv.Itoa(f.MemoryMB)},
		{"timeout", fmt.Sprintf("%ds", f.Timeout)},
		{"concurrency", concurrency},
		{"min_instances", strconv.Itoa(f.MinInstances)},
		{"keep_warm", keepWarmText(f.KeepWarm)},
		{"url_auth", f.URLAuth},
		{"network", f.Network},
		{"sandbox", sandboxText(f.InsecureNoSandbox)},
		{"description", f.Description},
	}
	if len(f.Env) == 0 {
		fields = append(fields, field{"env", ""})
	}
	for i, k := range slices.Sorted(maps.Keys(f.Env)) {
		key := "" // one variable a line, under "env:"
		if i == 0 {
			key = "env"
		}
		fields = append(fields, field{key, k + "=" + f.Env[k]})
	}
	fields = append(fields,
		field{"retries", strconv.Itoa(f.Async.Retries)},
		field{"max_event_age", (time.Duration(f.Async.MaxEventAge) * time.Second).String()},
		field{"on_success", f.Async.OnSuccess},
		field{"on_failure", f.Async.OnFailure},
		field{"dead_letter", f.DeadLetterTopic()},
	)
	if len(f.Schedules) == 0 {
		fields = append(fields, field{"schedules", ""})
	}
	for i, s := range f.Schedules {
		key := "" // one schedule a line, under "schedules:"
		if i == 0 {
			key = "schedules"
		}
		fields = append(fields, field{key, scheduleText(s)})
	}
	return append(fields,
		field{"quota", quotaText(f.Quota)},
		field{"logs", logsText(f.Logs)},
		field{"code_sha256", fullSHA(f.CodeSHA256)},
		field{"code_size", fmt.Sprintf("%d (%s)", f.CodeSize, humanBytes(f.CodeSize))},
		field{"created_at", timestamp(now, f.CreatedAt)},
		field{"updated_at", timestamp(now, f.UpdatedAt)},
		field{"revision", strconv.FormatUint(f.Revision, 10)},
	)
}

func newRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a function with its versions and aliases",
		Args:  wantArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteFunction(cmd.Context(), args[0], 0); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return err
		},
	}
}

// scheduleText is a schedule on one line:
// "schedule-1: cron(0 8 * * ? *) in Europe/Paris, catch-up, qualifier live".
func scheduleText(s apitype.Schedule) string {
	text := s.Name + ": " + s.Expression
	if s.Timezone != "" {
		text += " in " + s.Timezone
	}
	if s.CatchUp {
		text += ", catch-up"
	}
	if s.Qualifier != "" {
		text += ", qualifier " + s.Qualifier
	}
	return text
}

// logsText is what a function keeps of its log.
func logsText(l apitype.Logs) string {
	size, age := "node default", "node default"
	if l.MaxBytes != 0 {
		size = sizeText(l.MaxBytes)
	}
	if l.MaxAge != 0 {
		age = (time.Duration(l.MaxAge) * time.Second).String()
	}
	return "max_bytes " + size + ", max_age " + age
}

func keepWarmText(seconds int) string {
	if seconds == 0 {
		return "node default"
	}
	return (time.Duration(seconds) * time.Second).String()
}

func sandboxText(insecure bool) string {
	if insecure {
		return "NONE: the node runs with --insecure-no-sandbox"
	}
	return "yes"
}
