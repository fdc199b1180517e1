package attest

import (
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// The vendor roots are public certificates, pinned by SPKI SHA-256 in
// roots_test.go against the values in docs/attestation.md §5.
//
//go:embed roots/*.pem
var rootFS embed.FS

const (
	appleRootFile     = "roots/apple-enterprise-attestation-root.pem"
	googleRSARootFile = "roots/google-hardware-attestation-root-rsa.pem"
	googleECRootFile  = "roots/google-key-attestation-ca1.pem"
)

// DefaultAppleRoots returns a fresh pool with the Apple Enterprise Attestation
// Root CA (SPKI SHA-256 4179683e...2041).
func DefaultAppleRoots() *x509.CertPool { return mustPool(appleRootFile) }

// DefaultAndroidRoots returns a fresh pool with Google's hardware attestation
// roots: the RSA-4096 root (subject serialNumber=f92009e853b6b045, SPKI
// feb2ea75...fbae; all its re-issues share that key) and the ECDSA P-384 "Key
// Attestation CA1" (SPKI 3ee44512...07ec) used by RKP chains.
func DefaultAndroidRoots() *x509.CertPool { return mustPool(googleRSARootFile, googleECRootFile) }

func mustPool(files ...string) *x509.CertPool {
	p := x509.NewCertPool()
	for _, f := range files {
		b, err := rootFS.ReadFile(f)
		if err != nil {
			panic("attest: embedded root missing: " + f)
		}
		certs, err := ParsePEMCerts(b)
		if err != nil || len(certs) == 0 {
			panic("attest: embedded root unparsable: " + f)
		}
		for _, c := range certs {
			p.AddCert(c)
		}
	}
	return p
}

// ParsePEMCerts parses every CERTIFICATE block in a PEM bundle; any other
// block type or an unparsable certificate is an error, so a typo in a
// configured bundle is loud rather than silently shrinking the trust set.
func ParsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("attest: PEM block %q is not a CERTIFICATE", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("attest: PEM certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("attest: no certificates in PEM bundle")
	}
	return out, nil
}

// PoolFromPEM builds a CertPool from a PEM bundle (for Roots fields loaded
// from configuration).
func PoolFromPEM(b []byte) (*x509.CertPool, error) {
	certs, err := ParsePEMCerts(b)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}

// SPKISHA256 is the hex SHA-256 of a certificate's SubjectPublicKeyInfo, the
// form used to pin roots.
func SPKISHA256(c *x509.Certificate) string {
	s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(s[:])
}
