package scep_test

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/enroll/attest"
)

// checkAttestedNames reads back, in Go and with openssl, the RFC 4043
// permanentIdentifier and RFC 4108 hardwareModuleName enroll/ca puts in
// the SAN of an attested certificate.
func checkAttestedNames(t *testing.T, cert *x509.Certificate, deviceID string, hwType asn1.ObjectIdentifier, hwSerial string) {
	t.Helper()
	var san *attest.SANNames
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			var err error
			if san, err = attest.ParseSAN(ext.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	if san == nil || len(san.PermanentIdentifiers) != 1 || san.PermanentIdentifiers[0].Value != deviceID {
		t.Fatalf("permanentIdentifier: %+v", san)
	}
	if len(san.HardwareModules) != 1 || !san.HardwareModules[0].Type.Equal(hwType) || string(san.HardwareModules[0].Serial) != hwSerial {
		t.Fatalf("hardwareModuleName: %+v", san.HardwareModules)
	}
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	p := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), bin, "x509", "-in", p, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "othername: Permanent Identifier::") ||
		!(strings.Contains(s, "othername: Hardware Module Name::") || strings.Contains(s, "othername: 1.3.6.1.5.5.7.8.4::")) {
		t.Fatalf("openssl x509 -text does not show both otherNames:\n%s", s)
	}
}
