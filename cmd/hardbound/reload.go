package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
)

// newConfigReloadCmd asks the running server to re-read its config file,
// as SIGHUP does (docs/admin.md, "Reloading the configuration").
func newConfigReloadCmd(e *env, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the running server re-read its config file (as SIGHUP does); a refused file leaves the running configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys := func(k []string) string {
				if len(k) == 0 {
					return "-"
				}
				return strings.Join(k, ", ")
			}
			reload := func(ctx context.Context, c *client.Client) (admin.ReloadReport, error) { return c.ReloadConfig(ctx) }
			return show(cmd, e, cf, reload, func(w io.Writer, rep admin.ReloadReport) {
				fmt.Fprintf(w, "%s reloaded\napplied:\t%s\nrestart required:\t%s\n", rep.Path, keys(rep.Applied), keys(rep.RestartRequired))
			})
		},
	}
}
