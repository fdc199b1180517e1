package est

import "encoding/asn1"

// CSR attributes (RFC 7030 §4.5.2): CsrAttrs ::= SEQUENCE OF AttrOrOID,
// where a bare OID asks for that attribute (or algorithm) and an
// Attribute gives its values. Per profile hardbound announces:
//
//   - ecdsa-with-SHA256: the signature algorithm of the CSR;
//   - ecPublicKey with prime256v1: the key to make (every attestation
//     format hardbound verifies can make a P-256 key in hardware);
//   - challengePassword, when the profile requires the TLS channel
//     binding in it (RFC 7030 §3.5; binding.go);
//   - id-aa-evidence, when the profile admits only attested keys: the
//     CSR attribute of draft-ietf-lamps-csr-attestation that carries
//     attestation evidence. docs/est.md says how the attestation is made
//     today (the TPM activation flow) and why this OID.
var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256        = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidECDSASHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	// OIDEvidence is id-aa-evidence, { id-aa 59 }
	// (1.2.840.113549.1.9.16.2.59), draft-ietf-lamps-csr-attestation.
	OIDEvidence = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 59}
)

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.ObjectIdentifier `asn1:"set"`
}

// csrAttrs is the DER CsrAttrs of profile p.
func csrAttrs(p *Profile) ([]byte, error) {
	var items []asn1.RawValue
	add := func(v any) error {
		b, err := asn1.Marshal(v)
		if err != nil {
			return err
		}
		items = append(items, asn1.RawValue{FullBytes: b})
		return nil
	}
	if err := add(oidECDSASHA256); err != nil {
		return nil, err
	}
	if err := add(attribute{Type: oidECPublicKey, Values: []asn1.ObjectIdentifier{oidP256}}); err != nil {
		return nil, err
	}
	if p.RequireChannelBinding {
		if err := add(oidChallengePassword); err != nil {
			return nil, err
		}
	}
	if p.requiresAttestation() {
		if err := add(OIDEvidence); err != nil {
			return nil, err
		}
	}
	return asn1.Marshal(items)
}
