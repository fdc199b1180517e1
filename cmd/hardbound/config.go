package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"hardbound/cmd/hardbound/internal/node"
)

func newConfigCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check a configuration file, or make the running server reload its own"}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Load FILE as serve would (defaults, every section's checks, secret files) and report the first problem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := node.LoadConfig(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s: OK (data_dir %s, %d NAS client(s), %d profile(s))\n",
				args[0], cfg.DataDir, len(cfg.RADIUS.Clients), len(cfg.Profiles))
			return err
		},
	}
	cmd.AddCommand(check, newConfigReloadCmd(e, cf))
	return cmd
}
