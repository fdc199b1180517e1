package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
	"hardbound/radius/radsec"
)

// newNASCmd is `hardbound nas issue`: a NAS certificate for RADIUS/TLS
// from the running server's CA (client.IssueNAS); `hardbound cert revoke
// SERIAL` cuts the NAS off.
func newNASCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "nas", Short: "NAS identities for RADIUS/TLS (RadSec)"}
	var dns []string
	var out string
	issue := &cobra.Command{
		Use:   "issue NAME",
		Short: "Issue a NAS certificate: writes DIR/NAME.key, DIR/NAME.crt and DIR/ca.crt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := radsec.CheckName(name); err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("--out DIR is required")
			}
			return show(cmd, e, cf, func(ctx context.Context, c *client.Client) (admin.NASResponse, error) {
				return c.IssueNAS(ctx, name, dns, out)
			}, func(w io.Writer, resp admin.NASResponse) { table.NAS(w, name, out, resp) })
		},
	}
	issue.Flags().StringArrayVar(&dns, "dns", nil, "DNS name for the certificate (repeatable)")
	issue.Flags().StringVar(&out, "out", "", "directory for NAME.key, NAME.crt and ca.crt")
	cmd.AddCommand(issue)
	return cmd
}
