package scep_test

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"testing"

	"hardbound/enroll/ca/catest"
)

// checkAttestedNames reads back, in Go and with openssl, the RFC 4043
// permanentIdentifier and RFC 4108 hardwareModuleName enroll/ca puts in
// the SAN of an attested certificate.
func checkAttestedNames(t *testing.T, cert *x509.Certificate, deviceID string, hwType asn1.ObjectIdentifier, hwSerial string) {
	t.Helper()
	san := catest.SAN(t, cert)
	if san == nil || len(san.PermanentIdentifiers) != 1 || san.PermanentIdentifiers[0].Value != deviceID {
		t.Fatalf("permanentIdentifier: %+v", san)
	}
	if len(san.HardwareModules) != 1 || !san.HardwareModules[0].Type.Equal(hwType) || string(san.HardwareModules[0].Serial) != hwSerial {
		t.Fatalf("hardwareModuleName: %+v", san.HardwareModules)
	}
	s := catest.OpenSSLText(t, cert)
	if !strings.Contains(s, "othername: Permanent Identifier::") ||
		!(strings.Contains(s, "othername: Hardware Module Name::") || strings.Contains(s, "othername: 1.3.6.1.5.5.7.8.4::")) {
		t.Fatalf("openssl x509 -text does not show both otherNames:\n%s", s)
	}
}
