package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"slices"
	"strings"
	"testing"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
)

const ekHash = "6f1ab2c0d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0"

// TestAttestedNames: the profile's Names and the attestation decide the
// otherNames beside the device URI; crypto/x509 still reads the URI,
// attest.ParseSAN reads the values back and openssl names the types.
func TestAttestedNames(t *testing.T) {
	t.Parallel()
	c := catest.New(t, "", ca.WithNames(map[string]ca.Names{
		"both":     {PermanentIdentifier: true, HardwareModuleName: true},
		"permid":   {PermanentIdentifier: true},
		"hwmodule": {HardwareModuleName: true},
	}))
	tpm := &ca.Attestation{Format: "tpm", Identifiers: map[string]string{"ek_sha256": ekHash, "ek_urn": "urn:ek:sha256:x"}}
	cases := []struct {
		name, profile string
		att           *ca.Attestation
		permID        bool
		hwType        asn1.ObjectIdentifier
		hwSerial      string
		openssl       []string
	}{
		{name: "tpm/both", profile: "both", att: tpm, permID: true, hwType: ca.HWTypeTPM20, hwSerial: ekHash,
			openssl: []string{"othername: Permanent Identifier::", "othername: Hardware Module Name::"}},
		{name: "tpm/permid only", profile: "permid", att: tpm, permID: true, openssl: []string{"othername: Permanent Identifier::"}},
		{name: "tpm/hwmodule only", profile: "hwmodule", att: tpm, hwType: ca.HWTypeTPM20, hwSerial: ekHash,
			openssl: []string{"othername: Hardware Module Name::"}},
		{name: "apple serial", profile: "both", att: &ca.Attestation{Format: "apple", Identifiers: map[string]string{"serial": "C02XL0GSJGH5", "udid": "00008103"}},
			permID: true, hwType: ca.HWTypeAppleSerial, hwSerial: "C02XL0GSJGH5"},
		{name: "apple udid only", profile: "hwmodule", att: &ca.Attestation{Format: "apple", Identifiers: map[string]string{"udid": "00008103"}},
			hwType: ca.HWTypeAppleUDID, hwSerial: "00008103"},
		{name: "android serial", profile: "hwmodule", att: &ca.Attestation{Format: "android-key", Identifiers: map[string]string{"serial": "R58M12ABC"}},
			hwType: ca.HWTypeAndroidKey, hwSerial: "R58M12ABC"},
		// Hardware-attested without a proved serial: the device id alone.
		{name: "android no serial", profile: "both", att: &ca.Attestation{Format: "android-key"}, permID: true},
		// Not a hardware format: no module name.
		{name: "format none", profile: "hwmodule", att: &ca.Attestation{Format: "none", Identifiers: map[string]string{"serial": "x"}}},
		{name: "unattested", profile: "both"},
		{name: "profile without names", profile: "other", att: tpm},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			cert, err := c.Issue(t.Context(), ca.IssueRequest{PublicKey: key.Public(), DeviceID: "dev-1",
				Profile: ca.Profile{Name: tc.profile}, Attestation: tc.att})
			if err != nil {
				t.Fatal(err)
			}
			if id, ok := ca.DeviceID(cert); !ok || id != "dev-1" {
				t.Fatalf("device URI: %q %v (URIs %v)", id, ok, cert.URIs)
			}
			san := catest.SAN(t, cert)
			var pids []string
			for _, p := range san.PermanentIdentifiers {
				pids = append(pids, p.Value)
			}
			if want := tc.permID; want != slices.Equal(pids, []string{"dev-1"}) || (!want && len(pids) != 0) {
				t.Errorf("permanentIdentifiers %q, want dev-1: %v", pids, want)
			}
			switch {
			case tc.hwType == nil && len(san.HardwareModules) != 0:
				t.Errorf("unexpected hardware module names %v", san.HardwareModules)
			case tc.hwType != nil && (len(san.HardwareModules) != 1 || !san.HardwareModules[0].Type.Equal(tc.hwType) ||
				string(san.HardwareModules[0].Serial) != tc.hwSerial):
				t.Errorf("hardware module names %v, want %s/%s", san.HardwareModules, tc.hwSerial, tc.hwType)
			}
			out := catest.OpenSSLText(t, cert)
			for _, want := range tc.openssl {
				// openssl 3.0 prints the hardware module name by OID, later
				// versions by name.
				alt := strings.Replace(want, "Hardware Module Name", "1.3.6.1.5.5.7.8.4", 1)
				if !strings.Contains(out, want) && !strings.Contains(out, alt) {
					t.Errorf("openssl x509 -text lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(out, "URI:urn:hardbound:device:dev-1") {
				t.Errorf("openssl x509 -text lacks the device URI:\n%s", out)
			}
		})
	}
}
