package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/store"
)

// pageFlags are the flags of a paged listing.
func pageFlags(c *cobra.Command, p *client.Page, cursor string) {
	c.Flags().StringVar(&p.After, "after", "", cursor)
	c.Flags().IntVar(&p.Limit, "limit", 0, "page size (1..1000)")
}

func newDeviceCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Inspect and act on devices"}
	var f client.DeviceFilter
	list := &cobra.Command{
		Use: "list", Short: "List devices", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.List[admin.Device], error) {
				return c.Devices(ctx, f)
			}, page(table.Devices))
		},
	}
	list.Flags().StringVar(&f.Status, "status", "", "filter: active, quarantined, revoked")
	list.Flags().StringVar(&f.Compliance, "compliance", "", "filter: compliant, noncompliant, unknown")
	list.Flags().StringVar(&f.Profile, "profile", "", "filter by profile")
	pageFlags(list, &f.Page, "page cursor (last ID of the previous page)")

	show := &cobra.Command{
		Use: "show ID", Short: "Show a device with its certificates and live sessions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.DeviceDetail, error) {
				return c.DeviceWithAttestations(ctx, args[0])
			}, table.DeviceDetail)
		},
	}
	action := func(name, short string) *cobra.Command {
		var reason string
		c := &cobra.Command{
			Use: name + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client(e)
				if err != nil {
					return err
				}
				var out any
				switch name {
				case "quarantine":
					out, err = c.Quarantine(cmd.Context(), args[0])
				case "release":
					out, err = c.Release(cmd.Context(), args[0])
				default:
					out, err = c.RevokeDevice(cmd.Context(), args[0], reason)
				}
				if err != nil {
					return err
				}
				if cf.json {
					return cf.output(e, out, nil)
				}
				_, err = fmt.Fprintf(e.stdout, "%s: %s done\n", args[0], name)
				return err
			},
		}
		if name == "revoke" {
			c.Flags().StringVar(&reason, "reason", "", "RFC 5280 reason (keyCompromise, superseded, cessationOfOperation, ...)")
		}
		return c
	}
	cmd.AddCommand(list, show, newDeviceAddCmd(e, cf), newDeviceImportCmd(e, cf),
		action("quarantine", "Quarantine a device (its live sessions are disconnected)"),
		action("release", "Release a device from quarantine"),
		action("revoke", "Revoke a device and every certificate of it"))
	return cmd
}

func newCertCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Inspect and revoke certificates"}
	var f client.CertFilter
	list := &cobra.Command{
		Use: "list", Short: "List certificates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.List[admin.Cert], error) {
				return c.Certs(ctx, f)
			}, page(table.Certs))
		},
	}
	list.Flags().StringVar(&f.Device, "device", "", "only this device's certificates")
	list.Flags().BoolVar(&f.Revoked, "revoked", false, "only revoked certificates")
	pageFlags(list, &f.Page, "page cursor")
	var reason string
	revoke := &cobra.Command{
		Use: "revoke SERIAL", Short: "Revoke a certificate (hex serial)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.Cert, error) {
				return c.RevokeCert(ctx, args[0], reason)
			}, func(w io.Writer, c admin.Cert) { table.Certs(w, []admin.Cert{c}) })
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "RFC 5280 reason (keyCompromise, superseded, ...)")
	cmd.AddCommand(list, revoke)
	return cmd
}

func newChallengeCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "challenge", Short: "Mint one-time SCEP challenges"}
	var req admin.ChallengeRequest
	var key string
	issue := &cobra.Command{
		Use: "issue", Short: "Mint a one-time challenge bound to a device (and optionally a key)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key != "" {
				h, err := store.ParseHash(strings.ToLower(key))
				if err != nil {
					return fmt.Errorf("--key-sha256: %w", err)
				}
				req.KeySHA256 = h
			}
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.ChallengeResponse, error) {
				return c.IssueChallenge(ctx, req)
			}, table.Challenge)
		},
	}
	issue.Flags().StringVar(&req.DeviceID, "device", "", "device id the challenge is bound to (required)")
	issue.Flags().StringVar(&key, "key-sha256", "", "SHA-256 of the SPKI the CSR must carry")
	issue.Flags().StringVar(&req.TTL, "ttl", "15m", "lifetime")
	issue.Flags().StringVar(&req.Profile, "profile", "", "enrollment profile")
	_ = issue.MarkFlagRequired("device")
	cmd.AddCommand(issue)
	return cmd
}

func newPostureCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "posture", Short: "Set a device's compliance by hand"}
	set := &cobra.Command{
		Use: "set ID compliant|noncompliant|unknown", Short: "Set compliance", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.Device, error) {
				return c.SetPosture(ctx, args[0], store.Compliance(args[1]))
			}, func(w io.Writer, d admin.Device) { table.Devices(w, []admin.Device{d}) })
		},
	}
	cmd.AddCommand(set)
	return cmd
}

func newSessionCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "Inspect accounting sessions"}
	var f client.SessionFilter
	list := &cobra.Command{
		Use: "list", Short: "List live sessions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.List[admin.Session], error) {
				return c.Sessions(ctx, f)
			}, page(table.Sessions))
		},
	}
	pageFlags(list, &f.Page, "page cursor")
	list.Flags().StringVar(&f.Device, "device", "", "only this device's sessions")
	list.Flags().BoolVar(&f.All, "all", false, "include stopped sessions")
	cmd.AddCommand(list)
	return cmd
}
