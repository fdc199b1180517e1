package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/store/inventory"
)

// The inventory commands (docs/inventory.md): device add and device
// import, through the admin API.

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
			var err error
			if in.Aliases, err = inventory.ParseAliases(aliases); err != nil {
				return fmt.Errorf("--alias %w", err)
			}
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.DeviceAddResponse, error) {
				return c.AddDevice(ctx, in)
			}, func(w io.Writer, out admin.DeviceAddResponse) {
				table.Devices(w, []admin.Device{out.Device})
				fmt.Fprintln(w)
				table.Inventory(w, out.Report)
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
			rows, err := inventory.ParseFile(args[0], e.stdin, inventory.Format(format))
			if err != nil {
				return err
			}
			var failed int
			err = show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.InventoryReport, error) {
				rep, err := c.ImportInventory(ctx, rows, dryRun)
				failed = rep.Failed
				return rep, err
			}, table.Inventory)
			if err == nil && failed > 0 {
				return fmt.Errorf("%d record(s) refused", failed)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would change, write nothing")
	cmd.Flags().StringVar(&format, "format", "", "csv or json (default: from the file name or its first byte)")
	return cmd
}
