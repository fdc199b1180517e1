package acme_test

import (
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"hardbound/enroll/acme"
	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/store/policy"
)

// TestAttestedNames: a device-attest-01 certificate of a profile with
// attested names (enroll/ca, enroll.attested_names) carries the device id
// as an RFC 4043 permanentIdentifier and the hardware module the evidence
// proved as an RFC 4108 hardwareModuleName, read back in Go and by openssl.
func TestAttestedNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		format, serial string
		hwType         asn1.ObjectIdentifier
		hwSerial       string
	}{
		{policy.FormatApple, "C02APPLE1", ca.HWTypeAppleSerial, "C02APPLE1"},
		{policy.FormatAndroidKey, "R58ANDROID1", ca.HWTypeAndroidKey, "R58ANDROID1"},
		// attesttest's AK certificate names the EK SHA-256 of a synthetic EK.
		{policy.FormatTPM, "TPM-1", ca.HWTypeTPM20, ekOf("TPM-1")},
	}
	for _, tc := range cases {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{caOpts: []ca.Option{ca.WithNames(map[string]ca.Names{
				"devices": {PermanentIdentifier: true, HardwareModuleName: true}})}})
			c := e.client(t)
			o := c.newOrder(acme.TypePermanentIdentifier, tc.serial)
			chURL, keyAuth := c.challenge(o)
			dev := p256(t)
			c.mustPost(chURL, attPayload(attestFor(t, e.auth, tc.format, dev, tc.serial, keyAuth)), http.StatusOK, nil)
			var ord orderObj
			c.mustPost(o.Finalize, csrFor(t, dev, "x"), http.StatusOK, &ord)
			leaf := parsePEMChain(t, c.mustPost(ord.Certificate, nil, http.StatusOK, nil).body)[0]
			devID, _ := ca.DeviceID(leaf)
			san := catest.SAN(t, leaf)
			if len(san.PermanentIdentifiers) != 1 || san.PermanentIdentifiers[0].Value != devID {
				t.Errorf("permanentIdentifier %+v, want %s", san.PermanentIdentifiers, devID)
			}
			if len(san.HardwareModules) != 1 || !san.HardwareModules[0].Type.Equal(tc.hwType) || string(san.HardwareModules[0].Serial) != tc.hwSerial {
				t.Errorf("hardwareModuleName %+v, want %s/%s", san.HardwareModules, tc.hwSerial, tc.hwType)
			}
			out := catest.OpenSSLText(t, leaf)
			if !strings.Contains(out, "othername: Permanent Identifier::") ||
				!(strings.Contains(out, "othername: Hardware Module Name::") || strings.Contains(out, "othername: 1.3.6.1.5.5.7.8.4::")) {
				t.Errorf("openssl x509 -text does not show both otherNames:\n%s", out)
			}
		})
	}
}

func ekOf(deviceID string) string {
	s := sha256.Sum256([]byte("attesttest-ek:" + deviceID))
	return hex.EncodeToString(s[:])
}
