// Package cli is the wisp command line. `wisp server` runs a node; every
// other command is a thin client of a node's control API through package
// client. Flags and the environment are read here and nowhere else.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wisp-dev/wisp/client"
)

// defaultURL is where a node started with no flags serves.
const defaultURL = "http://127.0.0.1:8080"

// NewRootCmd returns the wisp command with all its subcommands, reading the
// process's environment.
func NewRootCmd() *cobra.Command {
	return newRootCmd(os.Environ(), time.Now)
}

// Execute runs root on the process's arguments. SIGINT cancels the commands'
// context (a second one kills wisp). On error it prints one line to stderr
// and returns the error, so main only has to exit.
func Execute(root *cobra.Command) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop)
	return execute(ctx, root)
}

func execute(ctx context.Context, root *cobra.Command) error {
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		fmt.Fprintln(root.ErrOrStderr(), "wisp: "+errorLine(cmd, err))
	}
	return err
}

// globals is what the client commands share: the root's persistent flags and
// the environment.
type globals struct {
	url   string // --url
	token string // --token
	flags *pflag.FlagSet

	env []string         // KEY=value, as os.Environ
	now func() time.Time // for ages in tables
}

// getenv is os.Getenv over g.env.
func (g *globals) getenv(key string) string {
	for i := len(g.env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(g.env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

func newRootCmd(env []string, now func() time.Time) *cobra.Command {
	root := &cobra.Command{
		Use:   "wisp",
		Short: "Wisp is a self-hosted serverless platform in one binary",
		Long: `Wisp is a self-hosted serverless platform in one binary.

'wisp server' runs a node; the other commands talk to a node's control API
at --url (env WISP_URL) with --token (env WISP_TOKEN; by default the admin
token the local node wrote to ` + filepath.Join(dataDirFrom((&globals{env: env}).getenv), "admin.token") + `).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g := &globals{flags: root.PersistentFlags(), env: env, now: now}
	g.flags.StringVar(&g.url, "url", defaultURL, "the node's control API (env WISP_URL)")
	g.flags.StringVar(&g.token, "token", "", "the API token (env WISP_TOKEN; default: the local node's admin token)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{err}
	})
	root.AddCommand(
		newServerCmd(g),
		newDeployCmd(g),
		newLsCmd(g),
		newGetCmd(g),
		newRmCmd(g),
		newPublishCmd(g),
		newVersionsCmd(g),
		newAliasCmd(g),
		newLogsCmd(g),
		newKeysCmd(g),
		newInvokeCmd(g),
		newStatsCmd(g),
		newUsageCmd(g),
		newEventsCmd(g),
		newSchedulesCmd(g),
	)
	return root
}

// baseURL is --url, else $WISP_URL, else the default; "host:port" means
// http://host:port.
func (g *globals) baseURL() string {
	u := g.url
	if !g.flags.Changed("url") {
		if e := g.getenv("WISP_URL"); e != "" {
			u = e
		}
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u
}

// apiToken is --token, else $WISP_TOKEN, else the admin token a local node
// wrote to its data dir. It is read only by commands that call the API.
func (g *globals) apiToken() (string, error) {
	if g.flags.Changed("token") {
		return g.token, nil
	}
	if t := g.getenv("WISP_TOKEN"); t != "" {
		return t, nil
	}
	path := filepath.Join(dataDirFrom(g.getenv), "admin.token")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no API token: pass --token or set WISP_TOKEN (%s does not exist; 'wisp server' writes it on first start)", path)
	}
	if err != nil {
		return "", fmt.Errorf("reading the API token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// client returns a client of the node at baseURL with the API token.
func (g *globals) client() (*client.Client, error) {
	token, err := g.apiToken()
	if err != nil {
		return nil, err
	}
	return client.New(g.baseURL(), token), nil
}

// dataDirFrom is where a node keeps its state unless told otherwise:
// $XDG_DATA_HOME/wisp, else ~/.local/share/wisp.
func dataDirFrom(getenv func(string) string) string {
	// The XDG spec says to ignore a relative XDG_DATA_HOME.
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "wisp")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".local", "share", "wisp")
	}
	// No home directory (a bare container, say): the working directory.
	return ".wisp"
}

// usageError is a command line that does not say what to do: a bad flag,
// the wrong arguments.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// wantArgs accepts least to most positional arguments, and otherwise names
// the ones the command's Use line wants.
func wantArgs(least, most int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= least && len(args) <= most {
			return nil
		}
		want := strings.Join(strings.Fields(cmd.Use)[1:], " ")
		if want == "" {
			want = "none"
		}
		s := "s"
		if len(args) == 1 {
			s = ""
		}
		return usageErrorf("got %d argument%s, want %s", len(args), s, want)
	}
}

// runGroup is the RunE of a command that groups subcommands: runnable, so
// that a mistyped subcommand is an error, not help.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// errorLine is err as the one line wisp prints for it.
func errorLine(cmd *cobra.Command, err error) string {
	msg := err.Error()
	var apiErr *client.Error
	var urlErr *url.Error
	var usageErr *usageError
	switch {
	case errors.Is(err, context.Canceled):
		msg = "interrupted"
	case errors.As(err, &apiErr):
		// The message first, then the type (or the status) to look up.
		what := apiErr.Type
		if what == "" {
			what = fmt.Sprintf("HTTP %d", apiErr.Status)
		}
		if apiErr.Reason != "" {
			what += ", " + apiErr.Reason
		}
		msg = strings.Replace(msg, apiErr.Error(), apiErr.Message+" ("+what+")", 1)
	case errors.As(err, &urlErr) && errors.Is(err, syscall.ECONNREFUSED):
		node := urlErr.URL
		if u, perr := url.Parse(urlErr.URL); perr == nil {
			node = u.Scheme + "://" + u.Host
		}
		msg = fmt.Sprintf("no node answers at %s (connection refused): start one with 'wisp server', or pass --url", node)
	case errors.As(err, &usageErr) || strings.HasPrefix(msg, "unknown command "):
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	return oneLine(msg)
}

// oneLine joins the lines of s, such as cobra's suggestions, into one.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}
