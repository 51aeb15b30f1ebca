package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// logTime is how `wisp logs` prints a record's time: UTC, to the millisecond.
const logTime = "2006-01-02T15:04:05.000Z07:00"

func newLogsCmd(g *globals) *cobra.Command {
	var opt client.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show a function's logs",
		Long: `Show a function's log records, oldest first: what it wrote to stdout and
stderr, and the START, END and REPORT lines of each invocation. Logs are kept
for a while after the function is deleted.

Each line is the record's time (UTC), its request id and its message.
Control characters in a message (escape sequences, carriage returns, tabs,
newlines within it) are shown escaped, as \x1b, \r, \t or \n, so that a
function's output can neither steer the terminal nor turn one record into
lines of its own, such as a forged REPORT line; --raw prints messages as
they were written. -o json prints the records as JSON, one a line.

--since is a duration back from now (10m, 2h, 7d) or an RFC 3339 time. By
default every record kept is shown, or with --follow the last hour's.`,
		Example: `  wisp logs hello
  wisp logs hello -f
  wisp logs hello --since 10m --request-id 8f507cfc-1b2a-4697-b07a-ac58fc914c95`,
		Args: wantArgs(1, 1),
	}
	cmd.Flags().BoolVarP(&opt.Follow, "follow", "f", false, "keep printing new records until interrupted (Ctrl-C)")
	cmd.Flags().StringVar(&opt.Since, "since", "", "show records from this long ago (10m, 2h, 7d) or this RFC 3339 time on")
	cmd.Flags().StringVar(&opt.RequestID, "request-id", "", "show only the records of this invocation")
	var raw bool
	cmd.Flags().BoolVar(&raw, "raw", false, "print messages as they were written, control characters and all (only for a terminal that can take them)")
	out := addOutputFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if raw && out.format == "json" {
			return usageErrorf("--raw is for text output, not -o json")
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		err = c.Logs(cmd.Context(), args[0], opt, func(r apitype.LogRecord) error {
			if out.format == "json" {
				buf.Reset()
				if err := enc.Encode(r); err != nil {
					return err
				}
				_, err := w.Write(jsonControls(buf.Bytes()))
				return err
			}
			_, err := fmt.Fprintln(w, logLine(r, raw))
			return err
		})
		if opt.Follow && errors.Is(err, context.Canceled) {
			return nil // following ends when the user says so
		}
		return err
	}
	return cmd
}

// logLine is a record as `wisp logs` prints it:
// "2026-11-23T16:00:00.123Z  <request id or ->  <message>", without the
// line ends that end the message. Unless raw, the message's control
// characters are escaped; the node's own lines keep their tabs, which
// separate their fields as in Lambda's.
func logLine(r apitype.LogRecord, raw bool) string {
	ts, rid := "-", r.RequestID
	if !r.Time.IsZero() {
		ts = r.Time.UTC().Format(logTime)
	}
	if rid == "" {
		rid = "-"
	}
	msg := strings.TrimRight(r.Message, "\r\n")
	if !raw {
		rid = escapeControls(rid, false)
		msg = escapeControls(msg, r.Stream == platformStream)
	}
	return ts + "  " + rid + "  " + msg
}

// platformStream is the stream of the node's own log lines.
const platformStream = "platform"
