package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"hardbound/admin"
)

// newResumeCmd is `hardbound resume rotate-keys`: the server replaces its
// EAP-TLS ticket keys (through the store when nodes share them), so every
// device's next authentication is a full handshake.
func newResumeCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "resume", Short: "EAP-TLS session resumption"}
	cmd.AddCommand(&cobra.Command{
		Use: "rotate-keys", Short: "Replace the ticket keys now: every ticket stops resuming", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp admin.TicketKeysResponse
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/resumption/rotate-keys", nil, &resp); err != nil {
				return err
			}
			return output(e, cf, resp, func(w io.Writer) {
				fmt.Fprintf(w, "ticket keys replaced (shared: %v); the next authentication of every device is a full handshake\n", resp.Shared)
			})
		},
	})
	return cmd
}
