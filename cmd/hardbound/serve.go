package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"hardbound/cmd/hardbound/internal/node"
)

func newServeCmd(e *env) *cobra.Command {
	var o node.ServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the RADIUS, enrollment, admin and metrics listeners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Path == "" {
				o.Path = e.getenv("HARDBOUND_CONFIG")
			}
			if o.Path == "" && !o.Dev {
				return errors.New("serve needs --config FILE (or --dev for a local trial on embedded defaults)")
			}
			o.Version = buildVersion()
			cfg, err := o.Load()
			if err != nil {
				return err
			}
			log := node.NewLogger(cfg.Log, e.stderr)
			node.ApplyMemoryLimit(cfg, e.getenv("GOMEMLIMIT"), log)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP) // before Start: an early SIGHUP waits, it does not kill
			defer signal.Stop(hup)
			n, err := node.Start(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			n.ReloadOn(hup)
			n.Banner(e.stdout)
			return n.Wait()
		},
	}
	cmd.Flags().StringVar(&o.Path, "config", "", "config file (hardbound.yaml; env HARDBOUND_CONFIG)")
	cmd.Flags().BoolVar(&o.Dev, "dev", false, "local trial: create data dir, CA, admin token and a 127.0.0.0/8 NAS client as needed (WARNING: accepts test attestation evidence)")
	cmd.Flags().StringVar(&o.DataDir, "data-dir", "", "override data_dir")
	cmd.Flags().StringVar(&o.LogFormat, "log-format", "", "text or json (overrides log.format)")
	return cmd
}
