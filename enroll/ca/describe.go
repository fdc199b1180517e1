package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Describe writes the root and the issuing CA for a person (`hardbound ca
// show`): subject, validity (UTC dates) and the SHA-256 fingerprint of
// each certificate, which is what one compares with a device's trust
// store.
func (c *CA) Describe(w io.Writer) {
	for _, x := range []struct {
		label string
		cert  *x509.Certificate
	}{{"root", c.Root()}, {"issuing", c.Issuing()}} {
		sum := sha256.Sum256(x.cert.Raw)
		fmt.Fprintf(w, "%-8s %s\n         valid  %s .. %s\n         sha256 %s\n", x.label+":", x.cert.Subject,
			x.cert.NotBefore.UTC().Format(time.DateOnly), x.cert.NotAfter.UTC().Format(time.DateOnly), hex.EncodeToString(sum[:]))
	}
}

// DescribeInit writes what Init(opts) made (`hardbound ca init`): where
// the CA is, Describe, and where the root key went, which serving does
// not need.
func (c *CA) DescribeInit(w io.Writer, opts InitOptions) {
	fmt.Fprintf(w, "created CA in %s\n", filepath.Join(opts.Dir, SubDir))
	c.Describe(w)
	if opts.RootKeyPath != "" {
		fmt.Fprintf(w, "root key written to %s (mode 0600): keep it offline; serve does not need it\n", opts.RootKeyPath)
		return
	}
	fmt.Fprintf(w, "root key is %s: serve does not need it; move it offline\n", filepath.Join(opts.Dir, SubDir, RootKey))
}

// DescribeRootKey writes whether the root key is still in the data dir
// (`hardbound ca show`): there it should not stay.
func DescribeRootKey(w io.Writer, dataDir string) {
	rootKey := filepath.Join(dataDir, SubDir, RootKey)
	if _, err := os.Stat(rootKey); err == nil {
		fmt.Fprintf(w, "root key: %s (serve does not need it; move it offline)\n", rootKey)
		return
	}
	fmt.Fprintf(w, "root key: not in the data dir (offline)\n")
}
