package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"hardbound/admin"
)

// newConfigReloadCmd asks the running server to re-read its config file,
// as SIGHUP does (docs/admin.md, "Reloading the configuration").
func newConfigReloadCmd(e *env, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the running server re-read its config file (as SIGHUP does); a refused file leaves the running configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep admin.ReloadReport
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/config/reload", nil, &rep); err != nil {
				return err
			}
			keys := func(k []string) string { return orDash(strings.Join(k, ", ")) }
			return output(e, cf, rep, func(w io.Writer) {
				fmt.Fprintf(w, "%s reloaded\napplied:\t%s\nrestart required:\t%s\n", rep.Path, keys(rep.Applied), keys(rep.RestartRequired))
			})
		},
	}
}
