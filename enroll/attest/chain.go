package attest

import (
	"crypto/x509"
	"encoding/asn1"
	"time"
)

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// parseX5C parses a DER chain, leaf first, enforcing count and size bounds.
func parseX5C(format string, x5c [][]byte, minLen int) ([]*x509.Certificate, error) {
	if len(x5c) < minLen {
		if len(x5c) == 0 {
			return nil, badf("%s: x5c is missing or empty", format)
		}
		return nil, badf("%s: x5c has %d certificates, need at least %d", format, len(x5c), minLen)
	}
	if len(x5c) > MaxChainLen {
		return nil, badf("%s: x5c has %d certificates, limit %d", format, len(x5c), MaxChainLen)
	}
	out := make([]*x509.Certificate, 0, len(x5c))
	for i, der := range x5c {
		if len(der) == 0 || len(der) > MaxCertSize {
			return nil, badf("%s: x5c[%d] is %d bytes", format, i, len(der))
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, badf("%s: x5c[%d] is not a certificate: %v", format, i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// verifyChain verifies leaf to roots at time at, with the given
// intermediates, any EKU (attestation leaves carry none or vendor ones),
// and then insists that every issuer in the chosen chain is a CA allowed to
// sign certificates (Go's Verify does not look at keyUsage).
func verifyChain(format string, leaf *x509.Certificate, inter []*x509.Certificate, extra, roots *x509.CertPool, at time.Time) ([][]*x509.Certificate, error) {
	if roots == nil {
		return nil, badf("%s: no trust roots", format)
	}
	pool := x509.NewCertPool()
	if extra != nil {
		pool = extra.Clone()
	}
	for _, c := range inter {
		pool.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   at.Truncate(time.Second),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, badf("%s: certificate chain does not verify: %v", format, err)
	}
	for _, ch := range chains {
		if err := checkIssuers(format, ch); err != nil {
			return nil, err
		}
	}
	return chains, nil
}

func checkIssuers(format string, chain []*x509.Certificate) error {
	for i, c := range chain[1:] {
		if !c.IsCA {
			return badf("%s: chain certificate %d (%s) is not a CA", format, i+1, c.Subject)
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return badf("%s: chain certificate %d (%s) may not sign certificates", format, i+1, c.Subject)
		}
	}
	return nil
}

// dropCriticalSAN removes 2.5.29.17 from the unhandled critical list after
// the caller parsed the SAN itself: AK and EK certs with an empty subject
// carry a critical SAN holding only otherName/directoryName, which Go would
// otherwise reject as unhandled.
func dropCriticalSAN(c *x509.Certificate) {
	out := c.UnhandledCriticalExtensions[:0]
	for _, id := range c.UnhandledCriticalExtensions {
		if !id.Equal(oidSubjectAltName) {
			out = append(out, id)
		}
	}
	c.UnhandledCriticalExtensions = out
}
