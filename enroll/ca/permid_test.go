package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
)

// TestPermanentIdentifier: the SAN keeps the device URI (crypto/x509
// still reads it) and carries the RFC 4043 permanentIdentifier, which
// openssl decodes.
func TestPermanentIdentifier(t *testing.T) {
	t.Parallel()
	c := catest.New(t, "")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := c.Issue(t.Context(), ca.IssueRequest{PublicKey: key.Public(), DeviceID: "tpm-dev-1", PermanentIdentifier: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != ca.DeviceURI("tpm-dev-1").String() {
		t.Fatalf("URIs %v", cert.URIs)
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
	out, err := exec.CommandContext(t.Context(), bin, "x509", "-in", p, "-noout", "-ext", "subjectAltName").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "othername: Permanent Identifier") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	// openssl 3.0 names the otherName type without decoding it: read the
	// value here.
	var names []asn1.RawValue
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
				t.Fatal(err)
			}
		}
	}
	found := false
	for _, n := range names {
		if n.Tag != 0 || n.Class != asn1.ClassContextSpecific {
			continue
		}
		var oid asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(n.Bytes, &oid)
		if err != nil || !oid.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}) {
			t.Fatalf("otherName %v %v", oid, err)
		}
		var wrapped asn1.RawValue
		if _, err := asn1.Unmarshal(rest, &wrapped); err != nil {
			t.Fatal(err)
		}
		var pid struct {
			Value string `asn1:"utf8"`
		}
		if _, err := asn1.Unmarshal(wrapped.Bytes, &pid); err != nil || pid.Value != "tpm-dev-1" {
			t.Fatalf("permanentIdentifier %q %v", pid.Value, err)
		}
		found = true
	}
	if !found {
		t.Fatal("no permanentIdentifier otherName")
	}
}
