package main

import (
	"context"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
)

// newConfigReloadCmd asks the running server to re-read its config file,
// as SIGHUP does (docs/admin.md, "Reloading the configuration").
func newConfigReloadCmd(e *env, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the running server re-read its config file (as SIGHUP does); a refused file leaves the running configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reload := func(ctx context.Context, c *client.Client) (admin.ReloadReport, error) { return c.ReloadConfig(ctx) }
			return show(cmd, e, cf, reload, table.Reload)
		},
	}
}
