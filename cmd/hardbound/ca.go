package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"hardbound/enroll/ca"
)

func newCACmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Create and inspect the issuing CA"}
	var dataDir string
	initCmd := &cobra.Command{
		Use: "init", Short: "Create the root and issuing CA in the data dir (refuses to overwrite)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ca.Init(ca.InitOptions{Dir: dataDir}); err != nil {
				if errors.Is(err, ca.ErrExists) {
					return fmt.Errorf("a CA already exists in %s; refusing to overwrite it", dataDir)
				}
				return err
			}
			c, err := ca.Load(dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "created CA in %s/%s\n", dataDir, ca.SubDir)
			showCA(e.stdout, c)
			return nil
		},
	}
	show := &cobra.Command{
		Use: "show", Short: "Show the root and issuing CA", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := ca.Load(dataDir)
			if err != nil {
				return err
			}
			showCA(e.stdout, c)
			return nil
		},
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./data", "data directory")
	cmd.AddCommand(initCmd, show)
	return cmd
}

func showCA(w io.Writer, c *ca.CA) {
	for _, x := range []struct {
		label string
		cert  *x509.Certificate
	}{{"root", c.Root()}, {"issuing", c.Issuing()}} {
		sum := sha256.Sum256(x.cert.Raw)
		fmt.Fprintf(w, "%-8s %s\n         valid  %s .. %s\n         sha256 %s\n", x.label+":", x.cert.Subject,
			x.cert.NotBefore.UTC().Format(time.DateOnly), x.cert.NotAfter.UTC().Format(time.DateOnly), hex.EncodeToString(sum[:]))
	}
}
