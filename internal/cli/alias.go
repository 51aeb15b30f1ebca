package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

func newAliasCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alias",
		Short: "Manage a function's aliases (names for its versions)",
		RunE:  runGroup,
	}
	cmd.AddCommand(newAliasSetCmd(g), newAliasGetCmd(g), newAliasLsCmd(g), newAliasRmCmd(g))
	return cmd
}

func newAliasSetCmd(g *globals) *cobra.Command {
	var a apitype.Alias
	cmd := &cobra.Command{
		Use:   "set FN ALIAS VERSION",
		Short: "Point an alias at a version, optionally sending a share of calls to another",
		Example: `  wisp alias set hello live 2
  wisp alias set hello live 2 --additional-version 3 --weight 0.1   # 10 % to version 3`,
		Args: wantArgs(3, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.Atoi(args[2])
			if err != nil || v < 1 {
				return usageErrorf("VERSION must be a version number, not %q", args[2])
			}
			a.Version = v
			c, err := g.client()
			if err != nil {
				return err
			}
			got, err := c.PutAlias(cmd.Context(), args[0], args[1], a, 0)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "alias %s -> %s  revision %d\n", qualified(got), routing(got), got.Revision)
			return err
		},
	}
	cmd.Flags().IntVar(&a.AdditionalVersion, "additional-version", 0, "a second version, which takes --weight of the calls")
	cmd.Flags().Float64Var(&a.AdditionalWeight, "weight", 0, "the share of calls, 0 to 1, that go to --additional-version")
	cmd.Flags().StringVar(&a.Description, "description", "", "the alias's description")
	return cmd
}

func newAliasGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get FN ALIAS",
		Short: "Show an alias",
		Args:  wantArgs(2, 2),
	}
	out := addOutputFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		a, err := c.GetAlias(cmd.Context(), args[0], args[1])
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), a, func(w io.Writer) error {
			fields := []field{
				{"name", a.Name},
				{"function", a.Function},
				{"version", strconv.Itoa(a.Version)},
			}
			if a.AdditionalVersion != 0 {
				fields = append(fields,
					field{"additional_version", strconv.Itoa(a.AdditionalVersion)},
					field{"additional_weight", strconv.FormatFloat(a.AdditionalWeight, 'f', -1, 64)},
				)
			}
			fields = append(fields,
				field{"description", a.Description},
				field{"updated_at", timestamp(g.now(), a.UpdatedAt)},
				field{"revision", strconv.FormatUint(a.Revision, 10)},
			)
			return writeFields(w, fields)
		})
	}
	return cmd
}

func newAliasLsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls FN",
		Short: "List a function's aliases",
		Args:  wantArgs(1, 1),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, args []string) ([]apitype.Alias, error) {
		return c.ListAliases(ctx, args[0])
	}, table[apitype.Alias]{
		header: []string{"NAME", "VERSIONS", "UPDATED", "DESCRIPTION"},
		row: func(now time.Time, a apitype.Alias) []string {
			return []string{a.Name, routing(a), age(now, a.UpdatedAt), a.Description}
		},
	})
	return cmd
}

func newAliasRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm FN ALIAS",
		Short: "Delete an alias",
		Args:  wantArgs(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteAlias(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted alias %s:%s\n", args[0], args[1])
			return err
		},
	}
}

// qualified is an alias as Lambda writes a qualified name: "hello:live".
func qualified(a apitype.Alias) string {
	return a.Function + ":" + a.Name
}

// routing says where an alias sends calls: "version 2", or
// "version 2 (90%), version 3 (10%)".
func routing(a apitype.Alias) string {
	if a.AdditionalVersion == 0 {
		return fmt.Sprintf("version %d", a.Version)
	}
	pct := func(w float64) string { // to 0.01 %, so 1-0.1 is 90%
		return strconv.FormatFloat(math.Round(w*10000)/100, 'f', -1, 64) + "%"
	}
	return fmt.Sprintf("version %d (%s), version %d (%s)",
		a.Version, pct(1-a.AdditionalWeight), a.AdditionalVersion, pct(a.AdditionalWeight))
}
