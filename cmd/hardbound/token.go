package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/token"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/store"
	"hardbound/store/atomicfile"
	"hardbound/store/badger"
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
	var off offlineFlags
	cmd.PersistentFlags().StringVar(&off.dataDir, "data-dir", "", "work offline on this stopped data dir")
	cmd.PersistentFlags().StringVar(&off.config, "config", "", "work offline on the data dir (and admin.token_file) of this config")

	var scope, expires, out string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a token and print its value once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res admin.TokenCreated
			if off.set() {
				sc, err := token.ParseScope(scope)
				if err != nil {
					return err
				}
				life, err := token.ParseLifetime(expires)
				if err != nil {
					return err
				}
				err = off.run(cmd.Context(), e, func(ctx context.Context, set *token.Set, audit func(*store.AuditEvent)) error {
					now := time.Now()
					var exp time.Time
					if life > 0 {
						exp = now.Add(life)
					}
					v, t, err := set.Create(args[0], sc, exp, now)
					if err != nil {
						return err
					}
					audit(&store.AuditEvent{Action: "token.create", Subject: t.Name, Result: "ok", Reason: "scope=" + string(t.EffectiveScope())})
					res = admin.TokenCreated{Token: v, TokenInfo: admin.TokenInfo{Name: t.Name, Scope: string(t.EffectiveScope()),
						CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}}
					return nil
				})
				if err != nil {
					return err
				}
			} else if err := cf.call(cmd.Context(), e, "POST", "/api/v1/tokens",
				admin.TokenRequest{Name: args[0], Scope: scope, Expires: expires}, &res); err != nil {
				return err
			}
			return printNewToken(e, cf, res, out)
		},
	}
	create.Flags().StringVar(&scope, "scope", "", "admin, read or enroll (required)")
	create.Flags().StringVar(&expires, "expires", "", "lifetime: days (90d) or a Go duration (720h); default never")
	create.Flags().StringVar(&out, "out", "", "write the value to this file (0600) instead of stdout")
	_ = create.MarkFlagRequired("scope")

	list := &cobra.Command{
		Use: "list", Short: "List tokens (names, scopes, expiry; never values)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res admin.List[admin.TokenInfo]
			if off.set() {
				err := off.run(cmd.Context(), e, func(ctx context.Context, set *token.Set, _ func(*store.AuditEvent)) error {
					now := time.Now()
					ts, err := set.List(now)
					for _, t := range ts {
						res.Items = append(res.Items, admin.TokenInfo{Name: t.Name, Scope: string(t.EffectiveScope()),
							CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Expired: t.Expired(now)})
					}
					return err
				})
				if err != nil {
					return err
				}
			} else if err := cf.call(cmd.Context(), e, "GET", "/api/v1/tokens", nil, &res); err != nil {
				return err
			}
			return output(e, cf, res, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSCOPE\tCREATED\tEXPIRES")
				for _, t := range res.Items {
					exp := ts(t.ExpiresAt)
					if t.ExpiresAt.IsZero() {
						exp = "never"
					}
					if t.Expired {
						exp += " (expired)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, t.Scope, ts(t.CreatedAt), exp)
				}
			})
		},
	}

	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token (its console sessions end too)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if off.set() {
				err := off.run(cmd.Context(), e, func(ctx context.Context, set *token.Set, audit func(*store.AuditEvent)) error {
					t, err := set.Revoke(args[0], time.Now())
					if err != nil {
						return err
					}
					audit(&store.AuditEvent{Action: "token.revoke", Subject: t.Name, Result: "ok"})
					return nil
				})
				if err != nil {
					return err
				}
			} else if err := cf.call(cmd.Context(), e, "POST", "/api/v1/tokens/"+url.PathEscape(args[0])+"/revoke", nil, nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(e.stdout, "token %q revoked\n", args[0])
			return err
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func printNewToken(e *env, cf *clientFlags, res admin.TokenCreated, out string) error {
	exp := "never expires"
	if !res.ExpiresAt.IsZero() {
		exp = "expires " + ts(res.ExpiresAt)
	}
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
		return output(e, cf, res, nil)
	}
	// The value alone on stdout, so that `> file` captures exactly it.
	fmt.Fprintf(e.stderr, "token %q (scope %s, %s); it is shown this once:\n", res.Name, res.Scope, exp)
	_, err := fmt.Fprintln(e.stdout, res.Token)
	return err
}

// offlineFlags select the token file of a stopped server.
type offlineFlags struct{ dataDir, config string }

func (o *offlineFlags) set() bool { return o.dataDir != "" || o.config != "" }

// errServerRunning: the data dir's store is held by a running server.
var errServerRunning = errors.New("the data dir is in use (is the server running?); without --data-dir and --config the command uses the running server's admin API")

// run opens the token file and the store of the data dir and calls fn;
// audit appends an event to the data dir's audit chain as the local user.
// Opening the store also proves that no server holds the data dir, so a
// change made here is never raced by the API.
func (o *offlineFlags) run(ctx context.Context, e *env, fn func(context.Context, *token.Set, func(*store.AuditEvent)) error) error {
	dataDir, path := o.dataDir, ""
	if o.config != "" {
		cfg, err := node.LoadConfig(o.config)
		if err != nil {
			return err
		}
		if dataDir == "" {
			dataDir = cfg.DataDir
		}
		path = cfg.Admin.TokenFile
	}
	if path == "" {
		path = filepath.Join(dataDir, "admin.tokens")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := badger.Open(ctx, filepath.Join(dataDir, "db"))
	if err != nil {
		return fmt.Errorf("%w: %w", errServerRunning, err)
	}
	defer st.Close()
	set, err := token.OpenFile(path)
	if err != nil {
		return err
	}
	actor := "local"
	if u, err := user.Current(); err == nil {
		actor = "local:" + u.Username
	}
	var auditErr error
	err = fn(ctx, set, func(ev *store.AuditEvent) {
		ev.Actor, ev.Time = actor, time.Now()
		auditErr = st.AppendAudit(ctx, ev)
	})
	if err != nil {
		return err
	}
	if auditErr != nil {
		return fmt.Errorf("the token file changed but its audit event was not written: %w", auditErr)
	}
	return nil
}
