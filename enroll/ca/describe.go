package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
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
