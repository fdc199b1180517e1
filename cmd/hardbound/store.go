package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"hardbound/cmd/hardbound/internal/node"
)

func newStoreCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Maintain the store"}
	var cfgPath string
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the PostgreSQL schema migrations this binary carries (serve applies them too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				cfgPath = e.getenv("HARDBOUND_CONFIG")
			}
			if cfgPath == "" {
				return errors.New("store migrate needs --config FILE with store.backend: postgres")
			}
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			applied, err := node.MigrateStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, node.Migrated(applied))
			return nil
		},
	}
	cmd.PersistentFlags().StringVar(&cfgPath, "config", "", "config file (hardbound.yaml; env HARDBOUND_CONFIG)")
	cmd.AddCommand(migrate, newStoreCopyCmd(e))
	return cmd
}
