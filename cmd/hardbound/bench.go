package main

import (
	"cmp"

	"github.com/spf13/cobra"

	"hardbound/admin/client/table"

	enrollload "hardbound/enroll/loadgen"
	radiusload "hardbound/radius/loadgen"
)

// The load generators live in radius/loadgen and enroll/loadgen; these
// commands only turn flags into their configs and their reports into
// output and an exit status.

func newBenchCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generators: EAP-TLS authentications, test devices, enrollments",
	}
	cmd.AddCommand(newBenchEAPTLSCmd(e, cf), newBenchMakeDevicesCmd(e, cf), newBenchEnrollCmd(e, cf), newBenchTLSBaselineCmd(e))
	return cmd
}

func newBenchEAPTLSCmd(e *env, cf *clientFlags) *cobra.Command {
	var f radiusload.Flags
	cmd := &cobra.Command{
		Use:   "eaptls",
		Short: "Drive EAP-TLS authentications against a RADIUS server and report rate and latency",
		Long:  radiusload.EAPTLSHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Resolve()
			if err != nil {
				return err
			}
			if table.IsTerminal(e.stderr) {
				c.Progress = e.stderr
			}
			rep, err := radiusload.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := table.Write(e.stdout, cf.json, rep, rep.WriteText); err != nil {
				return err
			}
			if err = rep.Err(); err != nil && cf.json {
				return errSilent // the JSON report says it all
			}
			return err
		},
	}
	f.RegisterFlags(cmd.Flags())
	return cmd
}

func newBenchEnrollCmd(e *env, cf *clientFlags) *cobra.Command {
	var f enrollload.Flags
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Drive ACME device-attest-01 and SCEP enrollments against a --dev server",
		Long:  enrollload.EnrollHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Resolve(cmp.Or(cf.CAFile, e.getenv("HARDBOUND_CA_FILE"), "./data/ca/root.crt"))
			if err != nil {
				return err
			}
			// SCEP mints its challenges and ACME puts its devices in the
			// inventory through the admin API.
			api, err := cf.client(e)
			if err != nil {
				return err
			}
			c.API = api.Do
			rep, err := enrollload.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := table.Write(e.stdout, cf.json, rep, rep.WriteText); err != nil {
				return err
			}
			if rep.Failed() > 0 {
				return errSilent
			}
			return nil
		},
	}
	f.RegisterFlags(cmd.Flags())
	return cmd
}

func newBenchMakeDevicesCmd(e *env, cf *clientFlags) *cobra.Command {
	var c enrollload.DevicesConfig
	cmd := &cobra.Command{
		Use:   "make-devices",
		Short: "Create N bound test devices through the admin API of a --dev server",
		Long:  enrollload.MakeDevicesHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.Validate(); err != nil {
				return err
			}
			api, err := cf.client(e)
			if err != nil {
				return err
			}
			c.API, c.RootCAFile = api.Do, api.CAFile()
			if table.IsTerminal(e.stderr) {
				c.Progress = table.Progress(e.stderr, "devices")
			}
			rep, err := enrollload.MakeDevices(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := rep.WriteText(e.stdout); err != nil {
				return err
			}
			return rep.Err
		},
	}
	c.RegisterFlags(cmd.Flags())
	return cmd
}

// newBenchTLSBaselineCmd is the yardstick for the EAP-TLS server's CPU, in
// separate processes so the server's CPU can be read from /proc exactly as
// for `serve`.
func newBenchTLSBaselineCmd(e *env) *cobra.Command {
	var f radiusload.BaselineFlags
	cmd := &cobra.Command{
		Use:   "tls-baseline",
		Short: "Bare crypto/tls mutual-auth handshakes (server or client), the CPU yardstick for EAP-TLS",
		Long:  radiusload.BaselineHelp,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.Run(cmd.Context(), e.stdout) },
	}
	f.RegisterFlags(cmd.Flags())
	return cmd
}
