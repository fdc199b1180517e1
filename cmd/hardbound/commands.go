package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/store"
)

// output prints v as JSON with --json, else calls table.
func output(e *env, cf *clientFlags, v any, table func(w io.Writer)) error {
	if cf.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func deviceRows(w io.Writer, ds []admin.Device) {
	fmt.Fprintln(w, "ID\tSTATUS\tPOSTURE\tSOURCE\tPOSTURE AT\tPROFILE\tPLATFORM")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, orDash(string(d.Posture.State)),
			orDash(d.Posture.Source), ts(d.Posture.UpdatedAt), orDash(d.Profile), orDash(d.Platform))
	}
}

func certRows(w io.Writer, cs []admin.Cert) {
	fmt.Fprintln(w, "SERIAL\tDEVICE\tPROTOCOL\tATTESTED\tNOT AFTER\tREVOKED")
	for _, c := range cs {
		rev := "-"
		if c.Revoked != nil {
			rev = fmt.Sprintf("%s (reason %d)", ts(c.Revoked.At), c.Revoked.Reason)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\n", c.Serial, c.DeviceID, c.Protocol, c.Attested, ts(c.NotAfter), rev)
	}
}

func sessionRows(w io.Writer, ss []admin.Session) {
	fmt.Fprintln(w, "NAS\tACCT-SESSION-ID\tDEVICE\tCALLING-STATION\tSTARTED\tUPDATED\tSTOPPED")
	for _, s := range ss {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.NAS, s.AcctSessionID, orDash(s.DeviceID),
			orDash(s.CallingStationID), ts(s.StartedAt), ts(s.UpdatedAt), ts(s.StoppedAt))
	}
}

func auditRows(w io.Writer, evs []admin.AuditEvent) {
	fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tRESULT\tREASON")
	for _, ev := range evs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ts(ev.Time), ev.Actor, ev.Action, orDash(ev.Subject), ev.Result, orDash(ev.Reason))
	}
}

func newDeviceCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Inspect and act on devices"}
	var status, compliance, profile, after string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List devices", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setQ(q, "status", status)
			setQ(q, "compliance", compliance)
			setQ(q, "profile", profile)
			setQ(q, "after", after)
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var out admin.List[admin.Device]
			if err := cf.call(cmd.Context(), e, "GET", "/api/v1/devices?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) {
				deviceRows(w, out.Items)
				morePages(w, out.Next, len(out.Items))
			})
		},
	}
	list.Flags().StringVar(&status, "status", "", "filter: active, quarantined, revoked")
	list.Flags().StringVar(&compliance, "compliance", "", "filter: compliant, noncompliant, unknown")
	list.Flags().StringVar(&profile, "profile", "", "filter by profile")
	list.Flags().StringVar(&after, "after", "", "page cursor (last ID of the previous page)")
	list.Flags().IntVar(&limit, "limit", 0, "page size (1..1000)")

	show := &cobra.Command{
		Use: "show ID", Short: "Show a device with its certificates and live sessions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out admin.DeviceDetail
			if err := cf.call(cmd.Context(), e, "GET", "/api/v1/devices/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			out.Attestations = deviceAttestations(cmd.Context(), e, cf, args[0])
			return output(e, cf, out, func(w io.Writer) {
				deviceRows(w, []admin.Device{*out.Device})
				fmt.Fprintln(w)
				certRows(w, out.Certs)
				fmt.Fprintln(w)
				attestationRows(w, out.Attestations)
				fmt.Fprintln(w)
				sessionRows(w, out.Sessions)
			})
		},
	}
	action := func(name, short string) *cobra.Command {
		var reason string
		c := &cobra.Command{
			Use: name + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var body any
				if name == "revoke" {
					body = admin.RevokeRequest{Reason: reason}
				}
				var out json.RawMessage
				if err := cf.call(cmd.Context(), e, "POST", "/api/v1/devices/"+url.PathEscape(args[0])+"/"+name, body, &out); err != nil {
					return err
				}
				if cf.json {
					_, err := fmt.Fprintln(e.stdout, string(out))
					return err
				}
				_, err := fmt.Fprintf(e.stdout, "%s: %s done\n", args[0], name)
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

// morePages says that a listing stopped at a page and how to get the next.
func morePages(w io.Writer, next string, n int) {
	if next != "" {
		fmt.Fprintf(w, "(%d shown; more: repeat with --after %s, or --limit up to 1000)\n", n, next)
	}
}

func setQ(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func newCertCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Inspect and revoke certificates"}
	var device, after string
	var revoked bool
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List certificates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setQ(q, "device", device)
			setQ(q, "after", after)
			if revoked {
				q.Set("revoked", "true")
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var out admin.List[admin.Cert]
			if err := cf.call(cmd.Context(), e, "GET", "/api/v1/certs?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) {
				certRows(w, out.Items)
				morePages(w, out.Next, len(out.Items))
			})
		},
	}
	list.Flags().StringVar(&device, "device", "", "only this device's certificates")
	list.Flags().BoolVar(&revoked, "revoked", false, "only revoked certificates")
	list.Flags().StringVar(&after, "after", "", "page cursor")
	list.Flags().IntVar(&limit, "limit", 0, "page size (1..1000)")
	var reason string
	revoke := &cobra.Command{
		Use: "revoke SERIAL", Short: "Revoke a certificate (hex serial)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out admin.Cert
			serial := strings.ToLower(strings.TrimPrefix(args[0], "0x"))
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/certs/"+url.PathEscape(serial)+"/revoke", admin.RevokeRequest{Reason: reason}, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) { certRows(w, []admin.Cert{out}) })
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
			var out admin.ChallengeResponse
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/scep/challenges", req, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) {
				fmt.Fprintf(w, "challenge\t%s\ndevice\t%s\nexpires\t%s\n", out.Challenge, out.DeviceID, ts(out.ExpiresAt))
				if out.KeySHA256 != "" {
					fmt.Fprintf(w, "key sha256\t%s\n", out.KeySHA256)
				}
			})
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
			var out admin.Device
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/devices/"+url.PathEscape(args[0])+"/posture",
				admin.PostureRequest{State: store.Compliance(args[1])}, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) { deviceRows(w, []admin.Device{out}) })
		},
	}
	cmd.AddCommand(set)
	return cmd
}

func newSessionCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "Inspect accounting sessions"}
	var device, after string
	var all bool
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List live sessions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setQ(q, "device", device)
			setQ(q, "after", after)
			if all {
				q.Set("all", "true")
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var out admin.List[admin.Session]
			if err := cf.call(cmd.Context(), e, "GET", "/api/v1/sessions?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) {
				sessionRows(w, out.Items)
				morePages(w, out.Next, len(out.Items))
			})
		},
	}
	list.Flags().StringVar(&after, "after", "", "page cursor")
	list.Flags().IntVar(&limit, "limit", 0, "page size (1..1000)")
	list.Flags().StringVar(&device, "device", "", "only this device's sessions")
	list.Flags().BoolVar(&all, "all", false, "include stopped sessions")
	cmd.AddCommand(list)
	return cmd
}
