package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"hardbound/enroll/ca"
)

func newCACmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Create and inspect the issuing CA"}
	var dataDir string
	var opts ca.InitOptions
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the root and issuing CA in the data dir (refuses to overwrite)",
		Long: `Create the root and issuing CA in <data-dir>/ca.

serve reads only root.crt, issuing.crt and issuing.key. With --root-key-out
the root key is written to that path instead of <data-dir>/ca/root.key, so it
can go offline at once (removable media, a vault); it is needed again only
to make a new issuing CA.

--key-type rsa makes both CAs RSA-3072, for SCEP clients that need RSA in
every certificate GetCACert returns (Debian's scepclient, micromdm's
scepclient without -key-encipherment-selector).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Dir = dataDir
			if err := ca.Init(opts); err != nil {
				if errors.Is(err, ca.ErrExists) {
					return fmt.Errorf("refusing to overwrite: %w", err)
				}
				return err
			}
			c, err := ca.Load(dataDir)
			if err != nil {
				return err
			}
			c.DescribeInit(e.stdout, opts)
			return nil
		},
	}
	initCmd.Flags().StringVar(&opts.Org, "org", "", "subject organization of both CAs (default \"hardbound\")")
	initCmd.Flags().StringVar(&opts.RootCN, "root-cn", "", "root CA common name (default \"<org> Root CA\")")
	initCmd.Flags().StringVar(&opts.IssuingCN, "issuing-cn", "", "issuing CA common name (default \"<org> Issuing CA\")")
	initCmd.Flags().StringVar(&opts.KeyType, "key-type", ca.KeyECDSA, "key type of both CAs: ecdsa (P-256) or rsa (3072)")
	initCmd.Flags().StringVar(&opts.RootKeyPath, "root-key-out", "", "write the root key here instead of <data-dir>/ca/root.key (refuses to overwrite)")
	show := &cobra.Command{
		Use: "show", Short: "Show the root and issuing CA", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := ca.Load(dataDir)
			if err != nil {
				return err
			}
			c.Describe(e.stdout)
			ca.DescribeRootKey(e.stdout, dataDir)
			return nil
		},
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./data", "data directory")
	cmd.AddCommand(initCmd, show)
	return cmd
}
