package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"hardbound/cmd/hardbound/internal/node"
)

// newStoreCopyCmd: `hardbound store copy --from A.yaml --to B.yaml`, which
// moves a single node's Badger data dir into PostgreSQL (docs/ha.md).
func newStoreCopyCmd(e *env) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "copy --from CONFIG --to CONFIG",
		Short: "Copy every record of one store into another, empty one (offline: Badger to PostgreSQL)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return errors.New("store copy needs --from CONFIG and --to CONFIG")
			}
			src, err := node.LoadConfig(from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			dst, err := node.LoadConfig(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			res, err := node.CopyStore(cmd.Context(), src, dst, node.CopyProgress(e.stderr))
			if err != nil {
				return fmt.Errorf("store copy: %w", err)
			}
			fmt.Fprintln(e.stdout, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "config of the source store (store.backend: badger, its data_dir)")
	cmd.Flags().StringVar(&to, "to", "", "config of the empty target store (store.backend: postgres)")
	return cmd
}
