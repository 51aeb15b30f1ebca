package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/client"
)

func newInvokeCmd(g *globals) *cobra.Command {
	var (
		data, file, qualifier string
		showLog, async        bool
	)
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Invoke a function and print its answer",
		Long: `Invoke a function synchronously and print its answer. The event is --data
(JSON), or the contents of --file ("-" reads standard input), or null.
A function error prints the error document and exits non-zero.

With --async the event is queued (at most 256 KB) and its request id
printed once the node has stored it; the function runs later, with its
retries and destinations (see wisp deploy --help). 'wisp logs NAME
--request-id ID' shows how it went.`,
		Example: `  wisp invoke hello --data '{"name":"you"}'
  wisp invoke hello --async --file event.json`,
		Args: wantArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data != "" && file != "" {
				return &usageError{errors.New("give --data or --file, not both")}
			}
			if async && showLog {
				return &usageError{errors.New("--log is for synchronous invocations, not --async")}
			}
			payload := []byte(data)
			var err error
			switch file {
			case "":
			case "-":
				if payload, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 6<<20+1)); err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
			default:
				if payload, err = os.ReadFile(file); err != nil {
					return err
				}
			}
			if len(bytes.TrimSpace(payload)) > 0 && !json.Valid(payload) {
				return &usageError{errors.New("the event is not valid JSON")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if async {
				id, err := c.InvokeAsync(cmd.Context(), args[0], payload, qualifier)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), id)
				return err
			}
			res, err := c.Invoke(cmd.Context(), args[0], payload, client.InvokeOptions{Qualifier: qualifier, Tail: showLog})
			if err != nil {
				return err
			}
			if showLog {
				cmd.ErrOrStderr().Write(res.LogTail) //nolint:errcheck // best effort, like any terminal output
			}
			out := cmd.OutOrStdout()
			if _, err := out.Write(res.Payload); err != nil {
				return err
			}
			if len(res.Payload) > 0 && res.Payload[len(res.Payload)-1] != '\n' {
				fmt.Fprintln(out) //nolint:errcheck // as above
			}
			if res.FunctionError != "" {
				var doc struct {
					Type string `json:"errorType"`
				}
				json.Unmarshal(res.Payload, &doc) //nolint:errcheck // an error document without a type still fails below
				return fmt.Errorf("function error (%s) %s, version %s, request %s", res.FunctionError, doc.Type, res.ExecutedVersion, res.RequestID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "", "the event, as JSON")
	f.StringVarP(&file, "file", "f", "", `read the event from this file ("-" for standard input)`)
	f.StringVarP(&qualifier, "qualifier", "q", "", "a version number or alias (default $LATEST)")
	f.BoolVar(&showLog, "log", false, "print the last 4 KB of the invocation's log on stderr")
	f.BoolVar(&async, "async", false, "queue the event and print its request id instead of waiting for the answer")
	return cmd
}
