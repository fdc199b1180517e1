package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/radius/radsec"
	"hardbound/store/atomicfile"
)

// newNASCmd is `hardbound nas issue`: a NAS certificate for RADIUS/TLS
// from the running server's CA. The key is made here and never sent; the
// server records the certificate, so the NAS is a client at once and
// `hardbound cert revoke SERIAL` cuts it off.
func newNASCmd(e *env, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "nas", Short: "NAS identities for RADIUS/TLS (RadSec)"}
	var dns []string
	var out string
	issue := &cobra.Command{
		Use:   "issue NAME",
		Short: "Issue a NAS certificate: writes DIR/NAME.key, DIR/NAME.crt and DIR/ca.crt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := radsec.CheckName(name); err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("--out DIR is required")
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
			if err != nil {
				return err
			}
			var resp admin.NASResponse
			req := admin.NASRequest{Name: name, DNS: dns, CSR: base64.StdEncoding.EncodeToString(der)}
			if err := cf.call(cmd.Context(), e, "POST", "/api/v1/nas", req, &resp); err != nil {
				return err
			}
			kder, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				data []byte
				mode os.FileMode
			}{
				{name + ".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600},
				{name + ".crt", []byte(resp.Certificate), 0o644},
				{"ca.crt", []byte(resp.CABundle), 0o644},
			} {
				if err := atomicfile.Write(filepath.Join(out, f.name), f.data, f.mode); err != nil {
					return err
				}
			}
			return output(e, cf, resp, func(w io.Writer) {
				fmt.Fprintf(w, "NAS %s: serial %s, valid until %s\n", name, resp.Serial, resp.NotAfter)
				fmt.Fprintf(w, "wrote %s, %s and %s\n", filepath.Join(out, name+".key"), filepath.Join(out, name+".crt"), filepath.Join(out, "ca.crt"))
			})
		},
	}
	issue.Flags().StringArrayVar(&dns, "dns", nil, "DNS name for the certificate (repeatable)")
	issue.Flags().StringVar(&out, "out", "", "directory for NAME.key, NAME.crt and ca.crt")
	cmd.AddCommand(issue)
	return cmd
}
