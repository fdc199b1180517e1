package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/store/inventory"
)

// The inventory commands (docs/inventory.md): device add and device
// import, through the admin API.

// importBatch is how many records one import request carries: the admin
// API caps bodies at 1 MiB, and a record is at most a few hundred bytes.
const importBatch = 2000

func newDeviceAddCmd(e *env, cf *clientFlags) *cobra.Command {
	var in admin.InventoryRecord
	var aliases []string
	cmd := &cobra.Command{
		Use:   "add [ID] --platform P",
		Short: "Add a device to the inventory (or update its record), so that it may enroll",
		Long: `add puts one device in the inventory, the record enrollment requires before
it issues (profiles' require_inventory). ID defaults to the serial, UDID,
EK hash or Intune id, in that order: what the device's attestation proves.
An existing device (found by ID or by any identity given) is updated:
profile, owner and identities; its platform may only be refined (apple to
ios or macos), never changed to another attestation format.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				in.ID = args[0]
			}
			for _, a := range aliases {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" || v == "" {
					return fmt.Errorf("--alias %q: want KIND=VALUE", a)
				}
				if in.Aliases == nil {
					in.Aliases = map[string]string{}
				}
				in.Aliases[k] = v
			}
			var out admin.DeviceAddResponse
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/devices", in, &out); err != nil {
				return err
			}
			return output(e, cf, out, func(w io.Writer) {
				deviceRows(w, []admin.Device{out.Device})
				fmt.Fprintln(w)
				reportRows(w, out.Report)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&in.Platform, "platform", "", "ios, macos, apple, android, windows or linux (required)")
	fl.StringVar(&in.Serial, "serial", "", "serial number (Apple and Android attestations prove it)")
	fl.StringVar(&in.UDID, "udid", "", "Apple UDID")
	fl.StringVar(&in.EKSHA256, "ek-sha256", "", "hex SHA-256 of the TPM's EK public key (TPM attestation proves it)")
	fl.StringVar(&in.IntuneID, "intune-id", "", "Intune managed device id")
	fl.StringVar(&in.Profile, "profile", "", "the profile the device enrolls in (default: the default profile)")
	fl.StringVar(&in.Owner, "owner", "", "who the device is assigned to")
	fl.StringArrayVar(&aliases, "alias", nil, "another identity, KIND=VALUE (repeatable)")
	_ = cmd.MarkFlagRequired("platform")
	return cmd
}

func newDeviceImportCmd(e *env, cf *clientFlags) *cobra.Command {
	var dryRun bool
	var format string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Add or update inventory records from a CSV or JSON file (- reads stdin)",
		Long: `import reads a CSV file with a header row (columns id, platform, serial,
udid, intune_id, ek_sha256, profile, owner and alias:KIND, in any order) or
a JSON array of records (or {"devices": [...]}) and applies it to the
inventory through the admin API: new devices are added, known ones updated,
and each refused row is reported with its line; the others still apply.
--dry-run reports what would change and writes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = e.stdin
			name := args[0]
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			b, err := io.ReadAll(io.LimitReader(r, inventory.MaxImportBytes+1))
			if err != nil {
				return err
			}
			ff := inventory.Format(format)
			if ff == "" {
				ff = inventory.DetectFormat(name, b)
			}
			rows, err := inventory.Parse(strings.NewReader(string(b)), ff)
			if err != nil {
				return err
			}
			total, err := importRows(cmd.Context(), e, cf, rows, dryRun)
			if err != nil {
				return err
			}
			if err := output(e, cf, total, func(w io.Writer) { reportRows(w, total) }); err != nil {
				return err
			}
			if total.Failed > 0 {
				return fmt.Errorf("%d record(s) refused", total.Failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would change, write nothing")
	cmd.Flags().StringVar(&format, "format", "", "csv or json (default: from the file name or its first byte)")
	return cmd
}

// importRows sends rows in batches and sums the reports; line numbers are
// the file's.
func importRows(ctx context.Context, e *env, cf *clientFlags, rows []inventory.Row, dryRun bool) (admin.InventoryReport, error) {
	c, err := cf.client(e)
	if err != nil {
		return admin.InventoryReport{}, err
	}
	total := admin.InventoryReport{Source: inventory.SourceAdmin, DryRun: dryRun, Changes: []admin.InventoryChange{}, Errors: []admin.InventoryRowError{}}
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	for lo := 0; lo < len(rows); lo += importBatch {
		batch := rows[lo:min(lo+importBatch, len(rows))]
		recs := make([]admin.InventoryRecord, len(batch))
		for i, r := range batch {
			rr := r.Record
			recs[i] = admin.InventoryRecord{ID: rr.ID, Platform: rr.Platform, Serial: rr.Serial, UDID: rr.UDID, IntuneID: rr.IntuneID,
				EKSHA256: rr.EKSHA256, Aliases: rr.Aliases, Profile: rr.Profile, Owner: rr.Owner}
		}
		var rep admin.InventoryReport
		if err := c.do(ctx, "POST", "/api/v1/inventory/import?"+q.Encode(), map[string]any{"devices": recs}, &rep); err != nil {
			return total, fmt.Errorf("records %d-%d: %w", batch[0].Line, batch[len(batch)-1].Line, err)
		}
		line := func(n int) int {
			if n >= 1 && n <= len(batch) {
				return batch[n-1].Line
			}
			return n
		}
		total.Added += rep.Added
		total.Updated += rep.Updated
		total.Unchanged += rep.Unchanged
		total.Failed += rep.Failed
		total.Truncated = total.Truncated || rep.Truncated
		for _, ch := range rep.Changes {
			ch.Line = line(ch.Line)
			total.Changes = append(total.Changes, ch)
		}
		for _, re := range rep.Errors {
			re.Line = line(re.Line)
			total.Errors = append(total.Errors, re)
		}
	}
	return total, nil
}

func reportRows(w io.Writer, r admin.InventoryReport) {
	verb := "applied"
	if r.DryRun {
		verb = "dry run, nothing written"
	}
	fmt.Fprintf(w, "inventory (%s): %d added, %d updated, %d unchanged, %d refused\n", verb, r.Added, r.Updated, r.Unchanged, r.Failed)
	if len(r.Changes) > 0 {
		fmt.Fprintln(w, "LINE\tDEVICE\tCHANGE\tFIELDS")
		for _, c := range r.Changes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", lineOrDash(c.Line), c.ID, c.Action, orDash(strings.Join(c.Fields, ",")))
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "LINE\tDEVICE\tREFUSED BECAUSE")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "%s\t%s\t%s\n", lineOrDash(e.Line), orDash(e.ID), e.Error)
		}
	}
	if r.Truncated {
		fmt.Fprintln(w, "(the lists are truncated; the counts are exact)")
	}
}

func lineOrDash(n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// attestationRows prints a device's attested facts and whether they meet
// its profile's minimums (device show).
func attestationRows(w io.Writer, as []admin.DeviceAttestation) {
	fmt.Fprintln(w, "CERT\tFORMAT\tPROFILE\tOS\tPATCH\tMINIMUMS")
	for _, a := range as {
		os := orDash(strings.TrimSpace(a.Facts["os"] + " " + a.Facts["os_version"]))
		mins := "met"
		if !a.MeetsMinimums {
			mins = "BELOW: " + a.BelowMinimum
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.CertSerial, a.Format, a.Profile, os, orDash(a.Facts["os_patch_level"]), mins)
	}
}

// deviceAttestations fetches them, or nil when the server does not serve
// the inventory.
func deviceAttestations(ctx context.Context, e *env, cf *clientFlags, id string) []admin.DeviceAttestation {
	var out admin.List[admin.DeviceAttestation]
	if err := cf.call(ctx, e, "GET", "/api/v1/devices/"+url.PathEscape(id)+"/attestations", nil, &out); err != nil {
		return nil
	}
	return out.Items
}
