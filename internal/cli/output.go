package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/client"
)

// outputFlag is the -o flag of a command that prints resources: JSON, or
// the command's text (a table or key: value lines).
type outputFlag struct {
	format  string
	choices []string // the first is the default
}

// addOutputFlag gives cmd a -o flag taking one of choices, the first being
// the default; "json" should be one of them.
func addOutputFlag(cmd *cobra.Command, choices ...string) *outputFlag {
	o := &outputFlag{format: choices[0], choices: choices}
	cmd.Flags().VarP(o, "output", "o", "output format: "+strings.Join(choices, " or "))
	return o
}

func (o *outputFlag) String() string { return o.format }
func (o *outputFlag) Type() string   { return "format" }

func (o *outputFlag) Set(s string) error {
	if !slices.Contains(o.choices, s) {
		return fmt.Errorf("must be %s", strings.Join(o.choices, " or "))
	}
	o.format = s
	return nil
}

// print writes v to w as indented JSON when -o json was asked for, and as
// text writes it otherwise.
func (o *outputFlag) print(w io.Writer, v any, text func(w io.Writer) error) error {
	if o.format != "json" {
		return text(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table is how a list of Ts prints as text: a header, then a row for each.
type table[T any] struct {
	header []string
	row    func(now time.Time, v T) []string
	// warn, if set, says what the table's reader should know about the
	// whole list, on standard error before the table; "" says nothing.
	warn func(list []T) string
}

// listRunE is the RunE of a command that lists things: it fetches them
// from the node and prints them as JSON with -o json, and as t otherwise.
func listRunE[T any](
	g *globals, out *outputFlag,
	fetch func(ctx context.Context, c *client.Client, args []string) ([]T, error),
	t table[T],
) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		list, err := fetch(cmd.Context(), c, args)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), list, func(w io.Writer) error {
			if t.warn != nil {
				if msg := t.warn(list); msg != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), msg) //nolint:errcheck // a terminal
				}
			}
			now := g.now()
			rows := make([][]string, 0, len(list))
			for _, v := range list {
				rows = append(rows, t.row(now, v))
			}
			return writeTable(w, t.header, rows)
		})
	}
}

// writeTable writes a header and rows in aligned columns.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	return writeAligned(w, 3, append([][]string{header}, rows...))
}

// field is one line of a resource printed as text.
type field struct{ key, value string }

// writeFields writes "key: value" lines with the values aligned. A field
// with no key continues the one above it.
func writeFields(w io.Writer, fields []field) error {
	rows := make([][]string, len(fields))
	for i, f := range fields {
		key := f.key
		if key != "" {
			key += ":"
		}
		rows[i] = []string{key, f.value}
	}
	return writeAligned(w, 1, rows)
}

// writeAligned writes rows of cells in columns padding spaces apart.
func writeAligned(w io.Writer, padding int, rows [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, padding, ' ', 0)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// An empty last cell leaves the padding of the one before it.
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// cell keeps a value from breaking the lines and columns it is printed in,
// and from steering the terminal (see escapeControls).
func cell(s string) string {
	return escapeControls(strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s), false)
}

// escapeControls makes text written by someone else (a function's output)
// safe to print on a terminal: every C0 control character, DEL and C1
// control character becomes a visible escape, as in a Go string literal
// (\n, \r, \t, \x1b, \u009b), and so does each byte that is not UTF-8
// (\xff). Then the text can neither start a line of its own, move the
// cursor, nor send the terminal a command (an escape sequence that
// retitles it or rewrites the screen). A backslash stays as it is: the
// escapes are to be read, not decoded. keepTab leaves tabs as they are.
func escapeControls(s string, keepTab bool) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			esc = fmt.Sprintf(`\x%02x`, s[i])
		case r == '\t' && keepTab:
		case r < 0x20 || 0x7f <= r && r <= 0x9f:
			esc = controlEscape(r)
		}
		if esc != "" {
			if b.Len() == 0 {
				b.Grow(len(s) + 8)
			}
			b.WriteString(s[done:i])
			b.WriteString(esc)
			done = i + size
		}
		i += size
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// controlEscape is how a Go string literal writes a control character.
func controlEscape(r rune) string {
	switch r {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	}
	if r < 0x80 {
		return fmt.Sprintf(`\x%02x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}

// jsonControls escapes in encoded JSON what encoding/json leaves as it is
// and a terminal may obey: DEL and the C1 control characters, as \u007f …
// \u009f. Outside strings JSON has none of them, so the JSON stays valid
// and decodes to the same values.
func jsonControls(b []byte) []byte {
	var out []byte
	done := 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if 0x7f <= r && r <= 0x9f {
			out = append(out, b[done:i]...)
			out = fmt.Appendf(out, `\u%04x`, r)
			done = i + size
		}
		i += size
	}
	if out == nil {
		return b
	}
	return append(out, b[done:]...)
}

// fullSHA is a code hash as people read it: sha256:<hex>.
func fullSHA(s string) string {
	if s == "" || strings.HasPrefix(s, "sha256:") {
		return s
	}
	return "sha256:" + s
}

// shortSHA is the first 12 hex digits of a code hash, for tables.
func shortSHA(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// age is how long before now t was, roughly: "40s ago", "5m ago", "3h ago",
// "12d ago"; a date past a year.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < 365*24*time.Hour:
		return roughly(d) + " ago"
	}
	return t.Format(time.DateOnly)
}

// until is how long after now t comes, roughly: "in 40s", "in 5m"; a date
// past a year.
func until(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	switch {
	case d < time.Second:
		return "now"
	case d < 365*24*time.Hour:
		return "in " + roughly(d)
	}
	return t.Format(time.DateOnly)
}

// roughly is d in its largest whole unit: "40s", "5m", "3h" (up to two
// days), "12d".
func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// timestamp is t in full with its age: "2026-11-23T16:00:00Z (5m ago)".
func timestamp(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339) + " (" + age(now, t) + ")"
}

// humanBytes is n in B, KB or MB (powers of 1024).
func humanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
