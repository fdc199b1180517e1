package catest

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"hardbound/enroll/attest"
)

// SAN parses cert's subjectAltName (RFC 5280 id-ce-subjectAltName,
// 2.5.29.17), failing the test when there is none.
func SAN(t testing.TB, cert *x509.Certificate) *attest.SANNames {
	t.Helper()
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			san, err := attest.ParseSAN(ext.Value)
			if err != nil {
				t.Fatal(err)
			}
			return san
		}
	}
	t.Fatal("no subjectAltName")
	return nil
}

// OpenSSL returns the path of the openssl binary: required when
// CI=true, the test skipped without it otherwise.
func OpenSSL(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	return bin
}

// OpenSSLText is `openssl x509 -noout -text` of cert: what a relying
// party's own tooling reads from it.
func OpenSSLText(t testing.TB, cert *x509.Certificate) string {
	t.Helper()
	bin := OpenSSL(t)
	p := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), bin, "x509", "-in", p, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	return string(out)
}
