package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

// maxEventData bounds the data read from standard input: the node refuses
// larger events anyway.
const maxEventData = 256 << 10

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Publish events on topics, read them back, and subscribe functions to them",
		Long: `Publish events on topics, read them back, and subscribe functions to them.

An event is a CloudEvent published on a topic (dot-separated words such as
orders.created). Each subscription of the topic whose filter the event passes
delivers it to a function as an async invocation, with the function's
retries and destinations. Each topic keeps its own events, 7 days or 64 MiB
by default (wisp server --topic-max-age, --topic-max-bytes): a flood on one
topic ages out only that topic's oldest events.

Every stored event carries the attribute wisppublisher, set by the node:
admin, function:NAME or node. No publisher can set it, so a subscription can
trust it (wisp events subscribe --publisher) where a source is whatever the
publisher said. Functions publish only to the topics their config grants
(wisp deploy --publish); dlq.* and the topics the node sends outcomes to are
written by the node only.`,
		RunE: runGroup,
	}
	cmd.AddCommand(newEventsPublishCmd(g), newEventsReadCmd(g), newEventsSubscribeCmd(g),
		newEventsUnsubscribeCmd(g), newEventsLsCmd(g), newEventsCatalogCmd(g))
	return cmd
}

// publisherAttribute is the attribute the node sets on every event to say
// who published it (events.PublisherAttribute).
const publisherAttribute = "wisppublisher"

// Attributes the CLI gives an event that has some but not these, as the
// node does an event it makes of plain JSON.
const (
	defaultEventSource = "wisp://api"
	defaultEventType   = "wisp.event"
)

func newEventsPublishCmd(g *globals) *cobra.Command {
	var (
		opt  client.PublishOptions
		exts []string
	)
	cmd := &cobra.Command{
		Use:   "publish TOPIC [JSON|-]",
		Short: "Publish an event on a topic and print its id",
		Long: `Publish an event on a topic and print its id once the node has stored it.
The event's data is the JSON argument, or standard input with "-", or none.

Without attribute flags the node makes the event: a new id, source
` + defaultEventSource + `, type ` + defaultEventType + `. With any of them the event is sent with
those attributes (CloudEvents binary mode); --source and --type then default
to the same values and --id to a new UUID. An event with the source and id of
one published in the last two minutes is stored once.`,
		Example: `  wisp events publish orders '{"id":42}'
  wisp events publish orders.created --type com.example.order.created --source /shop --subject eu/42 - < order.json`,
		Args: wantArgs(1, 2),
	}
	fl := cmd.Flags()
	fl.StringVar(&opt.Type, "type", "", "the event's type (default "+defaultEventType+")")
	fl.StringVar(&opt.Source, "source", "", "the event's source (default "+defaultEventSource+")")
	fl.StringVar(&opt.Subject, "subject", "", "the event's subject")
	fl.StringVar(&opt.ID, "id", "", "the event's id (default: a new UUID)")
	fl.StringArrayVar(&exts, "ext", nil, "an extension attribute NAME=VALUE (lowercase letters and digits); repeatable")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var data []byte
		if len(args) == 2 {
			data = []byte(args[1])
			if args[1] == "-" {
				var err error
				if data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxEventData+1)); err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
			}
		}
		if len(bytes.TrimSpace(data)) > 0 && !json.Valid(data) {
			return usageErrorf("the event's data is not valid JSON")
		}
		if len(exts) > 0 {
			opt.Extensions = map[string]string{}
			if err := parsePairs("--ext", exts, opt.Extensions); err != nil {
				return err
			}
		}
		if slices.ContainsFunc([]string{"type", "source", "subject", "id", "ext"}, cmd.Flags().Changed) {
			opt.Source = orDefault(opt.Source, defaultEventSource)
			opt.Type = orDefault(opt.Type, defaultEventType)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		res, err := c.PublishEvent(cmd.Context(), args[0], data, opt)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), res.ID)
		return err
	}
	return cmd
}

// orDefault is s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parsePairs adds the NAME=VALUE pairs of a repeated flag to m, refusing a
// name given twice.
func parsePairs(flag string, pairs []string, m map[string]string) error {
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErrorf("%s %q is not NAME=VALUE", flag, kv)
		}
		if _, dup := m[k]; dup {
			return usageErrorf("%s: %s is given twice", flag, k)
		}
		m[k] = v
	}
	return nil
}

func newEventsReadCmd(g *globals) *cobra.Command {
	var (
		after uint64
		limit int
	)
	cmd := &cobra.Command{
		Use:   "read TOPIC",
		Short: "Show the events of a topic, oldest first",
		Long: `Show the events a topic keeps, oldest first, --limit at a time from those
after the sequence number --after (each topic numbers its own events).
PUBLISHER is who published each: admin, function:NAME or node. -o json shows
each event in full, as the node stored it.`,
		Example: `  wisp events read dlq.hello
  wisp events read orders --after 120 --limit 10 -o json`,
		Args: wantArgs(1, 1),
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "show the events after this sequence number")
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many events, 1 to 1000")
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if limit < 1 {
			return usageErrorf("--limit %d is not a positive number", limit)
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		evs, err := c.ReadEvents(cmd.Context(), args[0], after, limit)
		if err != nil {
			return err
		}
		err = out.print(cmd.OutOrStdout(), evs, func(w io.Writer) error {
			rows := make([][]string, 0, len(evs))
			for _, e := range evs {
				var ce struct {
					ID, Source, Type, Subject string
					Data                      json.RawMessage
					DataBase64                string `json:"data_base64"`
				}
				if err := json.Unmarshal(e.Event, &ce); err != nil {
					return fmt.Errorf("event %d: %w", e.Seq, err)
				}
				data := "-"
				if len(ce.Data) > 0 {
					var b bytes.Buffer
					if json.Compact(&b, ce.Data) == nil {
						data = b.String()
					}
				} else if ce.DataBase64 != "" {
					data = "base64:" + ce.DataBase64
				}
				rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339),
					orDefault(e.Principal, "-"), ce.Source, ce.Type, orDefault(ce.Subject, "-"), ce.ID, shorten(data, 60)})
			}
			return writeTable(w, []string{"SEQ", "TIME", "PUBLISHER", "SOURCE", "TYPE", "SUBJECT", "ID", "DATA"}, rows)
		})
		if err == nil && len(evs) == limit {
			fmt.Fprintf(cmd.ErrOrStderr(), "more events may follow: --after %d\n", evs[len(evs)-1].Seq) //nolint:errcheck // a terminal
		}
		return err
	}
	return cmd
}

// shorten cuts s to at most n characters, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func newEventsSubscribeCmd(g *globals) *cobra.Command {
	var (
		typ, source, subject, publisher string
		exact, prefix                   []string
	)
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC FUNCTION[:QUALIFIER]",
		Short: "Deliver a topic's events to a function",
		Long: `Deliver the events of a topic that pass a filter to a function (at a version
or alias, default $LATEST), as async invocations: the function gets the
CloudEvent as its event, with its retries and destinations.

The filter matches context attributes: --filter NAME=VALUE wants the
attribute equal to the value, --prefix NAME=VALUE wants it to start with it;
--type, --source, --subject and --publisher are --filter type=…, source=…,
subject=… and wisppublisher=…. The publisher (admin, function:NAME or node)
is set by the node on every event, so it cannot be forged as a source can.
Without a filter every event of the topic is delivered.

Subscriptions are made and deleted with the admin token only; a function's
own token cannot subscribe.`,
		Example: `  wisp events subscribe orders ship
  wisp events subscribe orders ship:live --type com.example.order.created --prefix subject=eu/
  wisp events subscribe orders billing --publisher function:shop`,
		Args: wantArgs(2, 2),
	}
	fl := cmd.Flags()
	fl.StringVar(&typ, "type", "", "deliver only events of this type")
	fl.StringVar(&source, "source", "", "deliver only events from this source")
	fl.StringVar(&subject, "subject", "", "deliver only events of this subject")
	fl.StringVar(&publisher, "publisher", "", "deliver only events this principal published: admin, function:NAME or node")
	fl.StringArrayVar(&exact, "filter", nil, "deliver only events whose attribute NAME is VALUE (NAME=VALUE); repeatable")
	fl.StringArrayVar(&prefix, "prefix", nil, "deliver only events whose attribute NAME starts with VALUE (NAME=VALUE); repeatable")
	out := addOutputFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		fn, qualifier, _ := strings.Cut(args[1], ":")
		s := apitype.Subscription{Topic: args[0], Function: fn, Qualifier: qualifier}
		s.Exact, s.Prefix = map[string]string{}, map[string]string{}
		for _, a := range []struct{ flag, attr, value string }{{"type", "type", typ}, {"source", "source", source},
			{"subject", "subject", subject}, {"publisher", publisherAttribute, publisher}} {
			if cmd.Flags().Changed(a.flag) {
				exact = append(exact, a.attr+"="+a.value)
			}
		}
		if err := parsePairs("--filter", exact, s.Exact); err != nil {
			return err
		}
		if err := parsePairs("--prefix", prefix, s.Prefix); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		s, err = c.Subscribe(cmd.Context(), s)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), s, func(w io.Writer) error {
			return writeFields(w, []field{
				{"id", s.ID},
				{"topic", s.Topic},
				{"function", target(s.Function, s.Qualifier)},
				{"filter", filterText(s.Filter)},
				{"created_at", timestamp(g.now(), s.CreatedAt)},
			})
		})
	}
	return cmd
}

// target is FUNCTION[:QUALIFIER].
func target(fn, qualifier string) string {
	if qualifier == "" {
		return fn
	}
	return fn + ":" + qualifier
}

// filterText is a filter on one line: NAME=VALUE for an exact match,
// NAME^=VALUE for a prefix, "-" for none.
func filterText(f apitype.Filter) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f.Exact)) {
		parts = append(parts, k+"="+f.Exact[k])
	}
	for _, k := range slices.Sorted(maps.Keys(f.Prefix)) {
		parts = append(parts, k+"^="+f.Prefix[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func newEventsUnsubscribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unsubscribe ID",
		Short: "Delete a subscription",
		Args:  wantArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Unsubscribe(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted subscription %s\n", args[0])
			return err
		},
	}
}

func newEventsLsCmd(g *globals) *cobra.Command {
	var topic, function string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List subscriptions",
		Long: `List subscriptions, by topic. FILTER shows exact matches as NAME=VALUE and
prefixes as NAME^=VALUE.`,
		Args: wantArgs(0, 0),
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only the subscriptions of this topic")
	cmd.Flags().StringVar(&function, "function", "", "only the subscriptions of this function")
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, _ []string) ([]apitype.Subscription, error) {
		return c.Subscriptions(ctx, topic, function)
	}, table[apitype.Subscription]{
		header: []string{"ID", "TOPIC", "FUNCTION", "FILTER", "CREATED"},
		row: func(now time.Time, s apitype.Subscription) []string {
			return []string{s.ID, s.Topic, target(s.Function, s.Qualifier), filterText(s.Filter), age(now, s.CreatedAt)}
		},
	})
	return cmd
}

func newEventsCatalogCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "List topics with who publishes on them and who subscribes",
		Long: `List every topic published on or subscribed to: how many events it was
sent, when last, its publishers (source and principal: admin, function:NAME,
or node for the node's own records) and its subscribers. Publishers are
merged into the catalog about every second.`,
		Args: wantArgs(0, 0),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, _ []string) ([]apitype.Topic, error) {
		return c.Catalog(ctx)
	}, table[apitype.Topic]{
		header: []string{"TOPIC", "EVENTS", "LAST", "PUBLISHERS", "SUBSCRIBERS"},
		row: func(now time.Time, t apitype.Topic) []string {
			pubs := make([]string, 0, len(t.Publishers))
			for _, p := range t.Publishers {
				pubs = append(pubs, p.Source+" ("+p.Principal+")")
			}
			subs := make([]string, 0, len(t.Subscribers))
			for _, s := range t.Subscribers {
				subs = append(subs, target(s.Function, s.Qualifier))
			}
			return []string{t.Topic, strconv.FormatUint(t.Events, 10), age(now, t.LastPublished),
				orDefault(strings.Join(pubs, ", "), "-"), orDefault(strings.Join(subs, ", "), "-")}
		},
	})
	return cmd
}
