package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"hardbound/cmd/hardbound/internal/buildinfo"
)

// version and buildDate are set by -ldflags "-X main.version=... -X
// main.buildDate=..." (make build sets the date); otherwise the module's
// build info is used.
var (
	version   = ""
	buildDate = ""
)

// buildVersion is the version string of this binary.
func buildVersion() string { return buildinfo.Version(version, buildDate) }

// errSilent marks an error already reported to the user.
var errSilent = errors.New("")

// run executes the CLI and returns the exit code. Errors are one line on
// stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintf(stderr, "hardbound: %v\n", err)
		}
		return 1
	}
	return 0
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "hardbound",
		Short:         "802.1X RADIUS server that admits only attested, bound, compliant devices",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cf := &clientFlags{}
	root.PersistentFlags().StringVar(&cf.Server, "server", "", "admin API URL (env HARDBOUND_SERVER, default https://127.0.0.1:9443)")
	root.PersistentFlags().StringVar(&cf.TokenFile, "token-file", "", "admin token file (env HARDBOUND_TOKEN_FILE; default ./data/admin.token, else ~/.config/hardbound/token)")
	root.PersistentFlags().StringVar(&cf.CAFile, "ca-file", "", "CA bundle the admin API is verified with (env HARDBOUND_CA_FILE; default ./data/ca/root.crt, else ~/.config/hardbound/ca.crt)")
	root.PersistentFlags().BoolVar(&cf.json, "json", false, "print JSON instead of a table")
	root.AddCommand(
		newServeCmd(e),
		newCACmd(e),
		newVersionCmd(e),
		newDeviceCmd(e, cf),
		newCertCmd(e, cf),
		newChallengeCmd(e, cf),
		newPostureCmd(e, cf),
		newSessionCmd(e, cf),
		newAuditCmd(e, cf),
		newTokenCmd(e, cf),
		newConfigCmd(e, cf),
		newBenchCmd(e, cf),
		newNASCmd(e, cf),
		newResumeCmd(e, cf),
		newStoreCmd(e),
	)
	return root
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, "hardbound", buildVersion())
			return nil
		},
	}
}
