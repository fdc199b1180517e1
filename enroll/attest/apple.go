package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"strconv"
	"unicode/utf8"

	"hardbound/store/policy"
)

// Apple Managed Device Attestation leaf extensions (1.2.840.113635.100.8.*).
// Values are raw bytes, not DER, except the macOS .13.x integers.
var (
	appleArc            = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8}
	OIDAppleSerial      = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 9, 1}
	OIDAppleUDID        = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 9, 2}
	OIDAppleSUDeviceID  = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 9, 4}
	OIDAppleOSVersion   = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 10, 1}
	OIDAppleSEPVersion  = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 10, 2}
	OIDAppleLLBVersion  = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 10, 3}
	OIDAppleNonce       = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 11, 1}
	OIDAppleSIP         = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 13, 1}
	OIDAppleSecureBoot  = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 13, 2}
	OIDAppleThirdKexts  = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 13, 3}
	appleStringFactOIDs = []struct {
		oid  asn1.ObjectIdentifier
		fact string
	}{
		{OIDAppleOSVersion, "os_version"},
		{OIDAppleSEPVersion, "sepos_version"},
		{OIDAppleLLBVersion, "llb_version"},
		{OIDAppleSecureBoot, "secure_boot"},
	}
)

type appleStmt struct {
	X5C [][]byte `cbor:"x5c"`
}

// verifyApple implements docs/attestation.md §2. The nonce extension is
// required (step-ca skips the check when it is absent; we don't).
func (v *Verifier) verifyApple(raw []byte, token string) (*Result, error) {
	var st appleStmt
	if err := v.dec.Unmarshal(raw, &st); err != nil {
		return nil, badf("apple: attStmt: %v", err)
	}
	certs, err := parseX5C(policy.FormatApple, st.X5C, 1)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	if _, err := verifyChain(policy.FormatApple, leaf, certs[1:], nil, v.roots.Apple, v.now()); err != nil {
		return nil, err
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, badf("apple: leaf key usage does not allow digital signatures")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || (pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384()) {
		return nil, badf("apple: attested key is %T, want ECDSA P-256 or P-384", leaf.PublicKey)
	}

	ext := map[string][]byte{}
	for _, e := range leaf.Extensions {
		if len(e.Id) > len(appleArc) && e.Id[:len(appleArc)].Equal(appleArc) {
			// Keep only Apple arc values; a duplicate is ambiguous.
			k := e.Id.String()
			if _, dup := ext[k]; dup {
				return nil, badf("apple: duplicate extension %s", k)
			}
			ext[k] = e.Value
		}
	}
	nonce := ext[OIDAppleNonce.String()]
	if len(nonce) == 0 {
		return nil, badf("apple: nonce extension %s is missing", OIDAppleNonce)
	}
	want := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(nonce, want[:]) != 1 {
		return nil, badf("apple: nonce does not match SHA-256 of the challenge token")
	}

	res, err := newResult(policy.FormatApple, pub)
	if err != nil {
		return nil, err
	}
	serial, err := appleString(ext, OIDAppleSerial)
	if err != nil {
		return nil, err
	}
	udid, err := appleString(ext, OIDAppleUDID)
	if err != nil {
		return nil, err
	}
	if serial == "" && udid == "" {
		// User Enrollment hides both; nothing permanent is proved.
		return nil, badf("apple: leaf carries neither serial number nor UDID")
	}
	if serial != "" {
		res.Identifiers["serial"] = serial
		res.DeviceID = serial
	}
	if udid != "" {
		res.Identifiers["udid"] = udid
		if res.DeviceID == "" {
			res.DeviceID = udid
		}
	}
	res.Facts["vendor"] = "apple"
	for _, f := range appleStringFactOIDs {
		s, err := appleString(ext, f.oid)
		if err != nil {
			return nil, err
		}
		if s != "" {
			res.Facts[f.fact] = s
		}
	}
	if s, _ := appleString(ext, OIDAppleSUDeviceID); s != "" {
		res.Facts["software_update_device_id"] = s
	}
	for _, f := range []struct {
		oid  asn1.ObjectIdentifier
		fact string
	}{{OIDAppleSIP, "sip_status"}, {OIDAppleThirdKexts, "third_party_kexts"}} {
		if b := ext[f.oid.String()]; len(b) > 0 {
			var n int64
			if rest, err := asn1.Unmarshal(b, &n); err == nil && len(rest) == 0 {
				res.Facts[f.fact] = strconv.FormatInt(n, 10)
			}
		}
	}
	// The SIP, Secure Boot and kext extensions are macOS-only: their
	// presence is what says the OS family (policy.AttestedOS); without them
	// the family is left unstated and profile minimums use the "apple" one.
	for _, oid := range []asn1.ObjectIdentifier{OIDAppleSIP, OIDAppleSecureBoot, OIDAppleThirdKexts} {
		if len(ext[oid.String()]) > 0 {
			res.Facts["os"] = policy.PlatformMacOS
			break
		}
	}
	res.Facts["key_type"] = "ecdsa-" + pub.Curve.Params().Name
	return res, nil
}

// appleString reads a raw UTF-8 extension value; empty means absent (Apple
// leaves attributes it could not verify empty).
func appleString(ext map[string][]byte, oid asn1.ObjectIdentifier) (string, error) {
	b := ext[oid.String()]
	if len(b) == 0 {
		return "", nil
	}
	if len(b) > 256 || !utf8.Valid(b) {
		return "", badf("apple: extension %s is not a short UTF-8 string", oid)
	}
	return string(b), nil
}
