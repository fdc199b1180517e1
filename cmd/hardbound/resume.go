package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
)

// newResumeCmd is `hardbound resume rotate-keys`: the server replaces its
// EAP-TLS ticket keys (through the store when nodes share them), so every
// device's next authentication is a full handshake.
func newResumeCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "resume", Short: "EAP-TLS session resumption"}
	cmd.AddCommand(&cobra.Command{
		Use: "rotate-keys", Short: "Replace the ticket keys now: every ticket stops resuming", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rotate := func(ctx context.Context, c *client.Client) (admin.TicketKeysResponse, error) { return c.RotateTicketKeys(ctx) }
			return show(cmd, e, cf, rotate, func(w io.Writer, resp admin.TicketKeysResponse) {
				fmt.Fprintf(w, "ticket keys replaced (shared: %v); the next authentication of every device is a full handshake\n", resp.Shared)
			})
		},
	})
	return cmd
}
