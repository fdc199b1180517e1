package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/cmd/hardbound/internal/node"
)

// newTokenCmd manages admin tokens: through the admin API of a running
// server, or, with --data-dir or --config, directly in the token file of a
// stopped server (how the first token is made).
func newTokenCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke admin tokens (scopes admin, read, enroll)",
		Long: `Admin tokens authenticate the CLI, the admin API and the console.

Scopes: admin may do everything; read may only read; enroll may only run the
device-side enrollment flows (TPM credential activation, attestation).

Without --data-dir or --config the command goes through the admin API of a
running server (and needs an admin token itself). With --data-dir DIR or
--config FILE it edits the token file of a server that is not running; that
is how the first token is made:

  hardbound token create ops --scope admin --data-dir /var/lib/hardbound --out ~/.config/hardbound/token`}
	var dataDir, cfgPath string
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "", "work offline on this stopped data dir")
	cmd.PersistentFlags().StringVar(&cfgPath, "config", "", "work offline on the data dir (and admin.token_file) of this config")
	// tokens is the stopped data dir's token file with --data-dir or
	// --config, else the admin API.
	tokens := func() (tokenAdmin, error) {
		if dataDir == "" && cfgPath == "" {
			return cf.client(e)
		}
		return node.OfflineTokens(dataDir, cfgPath)
	}

	var req admin.TokenRequest
	var out string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a token and print its value once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			t, err := tokens()
			if err != nil {
				return err
			}
			res, err := t.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if out != "" {
				if err := client.SaveToken(out, res.Token); err != nil {
					return err
				}
			}
			return table.NewToken(e.stdout, e.stderr, cf.json, res, out)
		},
	}
	create.Flags().StringVar(&req.Scope, "scope", "", "admin, read or enroll (required)")
	create.Flags().StringVar(&req.Expires, "expires", "", "lifetime: days (90d) or a Go duration (720h); default never")
	create.Flags().StringVar(&out, "out", "", "write the value to this file (0600) instead of stdout")
	_ = create.MarkFlagRequired("scope")

	list := &cobra.Command{
		Use: "list", Short: "List tokens (names, scopes, expiry; never values)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := tokens()
			if err != nil {
				return err
			}
			res, err := t.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			return cf.output(e, res, func(w io.Writer) { table.Tokens(w, res.Items) })
		},
	}

	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token (its console sessions end too)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := tokens()
			if err != nil {
				return err
			}
			if err := t.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "token %q revoked\n", args[0])
			return err
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// tokenAdmin is what the token commands need: the admin API's client or
// the token file of a stopped server (admin/offline), alike.
type tokenAdmin interface {
	CreateToken(context.Context, admin.TokenRequest) (admin.TokenCreated, error)
	Tokens(context.Context) (admin.List[admin.TokenInfo], error)
	RevokeToken(context.Context, string) error
}
