package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBenchEnrollCmd(e *env, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "enroll",
		Short: "Drive ACME device-attest-01 and SCEP enrollments against a --dev server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("bench enroll: not implemented yet")
		},
	}
}
