package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/admin/offline"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/store/atomicfile"
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
	// tokens calls offlineFn on the stopped data dir's token file with
	// --data-dir or --config, else apiFn with the admin API.
	tokens := func(offlineFn func(offline.Tokens) error, apiFn func(*client.Client) error) error {
		if dataDir == "" && cfgPath == "" {
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			return apiFn(c)
		}
		t := offline.Tokens{DataDir: dataDir}
		if cfgPath != "" {
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if t.DataDir == "" {
				t.DataDir = cfg.DataDir
			}
			t.File = cfg.Admin.TokenFile
		}
		return offlineFn(t)
	}

	var req admin.TokenRequest
	var out string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a token and print its value once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			var res admin.TokenCreated
			err := tokens(func(t offline.Tokens) (err error) {
				res, err = t.Create(cmd.Context(), req.Name, req.Scope, req.Expires)
				return err
			}, func(c *client.Client) (err error) {
				res, err = c.CreateToken(cmd.Context(), req)
				return err
			})
			if err != nil {
				return err
			}
			return printNewToken(e, cf, res, out)
		},
	}
	create.Flags().StringVar(&req.Scope, "scope", "", "admin, read or enroll (required)")
	create.Flags().StringVar(&req.Expires, "expires", "", "lifetime: days (90d) or a Go duration (720h); default never")
	create.Flags().StringVar(&out, "out", "", "write the value to this file (0600) instead of stdout")
	_ = create.MarkFlagRequired("scope")

	list := &cobra.Command{
		Use: "list", Short: "List tokens (names, scopes, expiry; never values)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res admin.List[admin.TokenInfo]
			err := tokens(func(t offline.Tokens) (err error) {
				res, err = t.List(cmd.Context())
				return err
			}, func(c *client.Client) (err error) {
				res, err = c.Tokens(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			return cf.output(e, res, func(w io.Writer) { table.Tokens(w, res.Items) })
		},
	}

	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token (its console sessions end too)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			err := tokens(func(t offline.Tokens) error { return t.Revoke(ctx, args[0]) },
				func(c *client.Client) error { return c.RevokeToken(ctx, args[0]) })
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "token %q revoked\n", args[0])
			return err
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func printNewToken(e *env, cf *clientFlags, res admin.TokenCreated, out string) error {
	exp := table.Expiry(res.TokenInfo)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(out, []byte(res.Token+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "token %q (scope %s, %s) written to %s\n", res.Name, res.Scope, exp, out)
		return nil
	}
	if cf.json {
		return cf.output(e, res, nil)
	}
	// The value alone on stdout, so that `> file` captures exactly it.
	fmt.Fprintf(e.stderr, "token %q (scope %s, %s); it is shown this once:\n", res.Name, res.Scope, exp)
	_, err := fmt.Fprintln(e.stdout, res.Token)
	return err
}
