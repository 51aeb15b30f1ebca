package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/client"
)

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage access keys, which AWS SDKs and the AWS CLI sign requests with",
		Long: `Manage access keys: key pairs that AWS SDKs and the AWS CLI sign their
requests to Wisp with (AWS Signature Version 4), as they would with an AWS
access key. A key's secret is shown once, when it is created.`,
		RunE: runGroup,
	}
	cmd.AddCommand(newKeysCreateCmd(g), newKeysLsCmd(g), newKeysRmCmd(g))
	return cmd
}

func newKeysCreateCmd(g *globals) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an access key pair and show its secret, once",
		Example: `  wisp keys create --description "ci deploys"
  wisp keys create -o json > key.json`,
		Args: wantArgs(0, 0),
	}
	out := addOutputFlag(cmd, "text", "json")
	cmd.Flags().StringVar(&description, "description", "", "what the key is for (at most 256 characters)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		k, err := c.CreateKey(cmd.Context(), description)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), k, func(w io.Writer) error {
			fields := []field{{"access_key_id", k.ID}, {"secret_access_key", k.Secret}}
			if k.Description != "" {
				fields = append(fields, field{"description", k.Description})
			}
			if err := writeFields(w, fields); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, `
The secret is not shown again: keep it now. To sign with this key pair
(AWS SDKs, the AWS CLI):

export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s
`, k.ID, k.Secret)
			return err
		})
	}
	return cmd
}

func newKeysLsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List access keys (without their secrets)",
		Args:  wantArgs(0, 0),
	}
	out := addOutputFlag(cmd, "table", "json")
	cmd.RunE = listRunE(g, out, func(ctx context.Context, c *client.Client, _ []string) ([]apitype.AccessKey, error) {
		return c.ListKeys(ctx)
	}, table[apitype.AccessKey]{
		header: []string{"ID", "CREATED", "DESCRIPTION"},
		row: func(now time.Time, k apitype.AccessKey) []string {
			return []string{k.ID, age(now, k.CreatedAt), k.Description}
		},
	})
	return cmd
}

func newKeysRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID",
		Short: "Delete an access key; requests signed with it fail from then on",
		Args:  wantArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted access key %s\n", args[0])
			return err
		},
	}
}
