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

func newPublishCmd(g *globals) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "publish NAME",
		Short: "Publish a function's $LATEST as its next version",
		Long: `Publish a function's $LATEST as its next version: 1, 2, … .
If $LATEST has not changed since the last version, that version is kept.`,
		Args: wantArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			v, created, err := c.PublishVersion(cmd.Context(), args[0], description, 0)
			if err != nil {
				return err
			}
			if created {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "published %s version %d\n", args[0], v.Version)
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s version %d unchanged\n", args[0], v.Version)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "the version's description")
	return cmd
}

func newVersionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions NAME",
		Short: "List a function's versions",
		Args:  wantArgs(1, 1),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, args []string) ([]apitype.Version, error) {
		return c.ListVersions(ctx, args[0])
	}, table[apitype.Version]{
		header: []string{"VERSION", "CODE", "CREATED", "DESCRIPTION"},
		row: func(now time.Time, v apitype.Version) []string {
			return []string{strconv.Itoa(v.Version), shortSHA(v.Function.CodeSHA256), age(now, v.CreatedAt), v.Description}
		},
	})
	return cmd
}
