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
	var cfgPath, dataDir, logFormat string
	var dev bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the RADIUS, enrollment, admin and metrics listeners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				cfgPath = e.getenv("HARDBOUND_CONFIG")
			}
			if cfgPath == "" && !dev {
				return errors.New("serve needs --config FILE (or --dev for a local trial on embedded defaults)")
			}
			// load is repeated by a reload (SIGHUP, `hardbound config reload`).
			var load func() (*node.Config, error)
			load = func() (*node.Config, error) {
				cfg, err := node.LoadConfig(cfgPath)
				if err != nil {
					return nil, err
				}
				if dataDir != "" {
					cfg.DataDir = dataDir
				}
				if logFormat != "" {
					cfg.Log.Format = logFormat
				}
				cfg.Dev, cfg.Version, cfg.Load = dev, buildVersion(), load
				return cfg, nil
			}
			cfg, err := load()
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
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (hardbound.yaml; env HARDBOUND_CONFIG)")
	cmd.Flags().BoolVar(&dev, "dev", false, "local trial: create data dir, CA, admin token and a 127.0.0.0/8 NAS client as needed (WARNING: accepts test attestation evidence)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "override data_dir")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "text or json (overrides log.format)")
	return cmd
}
