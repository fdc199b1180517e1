package main

import (
	"context"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
)

// newResumeCmd is `hardbound resume rotate-keys`: the server replaces its
// EAP-TLS ticket keys (through the store when nodes share them), so every
// device's next authentication is a full handshake.
func newResumeCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "resume", Short: "EAP-TLS session resumption"}
	cmd.AddCommand(&cobra.Command{
		Use: "rotate-keys", Short: "Replace the ticket keys now: every ticket stops resuming", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rotate := func(ctx context.Context, c *client.Client) (admin.TicketKeysResponse, error) {
				return c.RotateTicketKeys(ctx)
			}
			return show(cmd, e, cf, rotate, table.TicketKeys)
		},
	})
	return cmd
}
