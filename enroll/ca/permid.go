package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/url"

	"hardbound/store/policy"
)

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// id-on-permanentIdentifier (RFC 4043 §2).
	oidPermanentIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}
	// id-on-hardwareModuleName (RFC 4108 §5).
	oidHardwareModuleName = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 4}
)

// hwType OIDs of the hardware module name, per attestation format
// (docs/cert-extensions.md says why these):
var (
	// HWTypeTPM20 is the TCG's tcg-sv-tpm20 (2.23.133.1.2): the module is a
	// TPM 2.0; hwSerialNum is the hex SHA-256 of its EK public key.
	HWTypeTPM20 = asn1.ObjectIdentifier{2, 23, 133, 1, 2}
	// HWTypeAppleSerial and HWTypeAppleUDID are the OIDs of the Apple
	// attestation certificate extensions that carried the serial number
	// or the UDID used as hwSerialNum.
	HWTypeAppleSerial = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 9, 1}
	HWTypeAppleUDID   = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 9, 2}
	// HWTypeAndroidKey is the Android Key Attestation extension OID; the
	// hwSerialNum is its attested serial (ID attestation).
	HWTypeAndroidKey = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}
)

// maxHWSerial bounds hwSerialNum; the identifiers used are at most a few
// dozen octets.
const maxHWSerial = 128

// Names says which attested facts a profile's device certificates carry
// in their subjectAltName besides the device URI. Both apply only to a
// certificate whose IssueRequest has an Attestation.
type Names struct {
	// PermanentIdentifier adds the device id as an RFC 4043
	// permanentIdentifier otherName.
	PermanentIdentifier bool
	// HardwareModuleName adds an RFC 4108 hardwareModuleName otherName
	// for a key attested in hardware whose evidence proved a module serial.
	HardwareModuleName bool
}

// WithNames sets the attested names per profile name; a profile not in
// the map gets none.
func WithNames(byProfile map[string]Names) Option {
	return func(c *config) {
		c.names = make(map[string]Names, len(byProfile))
		for k, v := range byProfile {
			c.names[k] = v
		}
	}
}

// Attestation is what a verified attestation proved about the key Issue
// certifies. ACME passes attest.Result's Format and Identifiers; SCEP and
// EST the stored attestation's Format and Facts (into which the TPM
// activation flow copies the identifiers).
type Attestation struct {
	// Format is the verified format (store/policy: tpm, apple,
	// android-key); only those name a hardware module.
	Format string
	// Identifiers are the hardware identities the evidence proved:
	// "ek_sha256" (tpm), "serial" and "udid" (apple), "serial"
	// (android-key). Other keys are ignored.
	Identifiers map[string]string
}

// hardwareModule is the hwType and hwSerialNum for an attestation, or
// false when its format is not a hardware one or it proved no serial.
func hardwareModule(a *Attestation) (asn1.ObjectIdentifier, string, bool) {
	if a == nil {
		return nil, "", false
	}
	id := func(k string) string { return a.Identifiers[k] }
	var typ asn1.ObjectIdentifier
	var serial string
	switch a.Format {
	case policy.FormatTPM:
		typ, serial = HWTypeTPM20, id("ek_sha256")
	case policy.FormatApple:
		typ, serial = HWTypeAppleSerial, id("serial")
		if serial == "" {
			typ, serial = HWTypeAppleUDID, id("udid")
		}
	case policy.FormatAndroidKey:
		typ, serial = HWTypeAndroidKey, id("serial")
	}
	if serial == "" || len(serial) > maxHWSerial {
		return nil, "", false
	}
	return typ, serial, true
}

// permanentIdentifier is RFC 4043's PermanentIdentifier without the
// assigner: the value is the device id as hardbound attested it.
type permanentIdentifier struct {
	Value string `asn1:"utf8"`
}

// hardwareModuleName is RFC 4108's HardwareModuleName.
type hardwareModuleName struct {
	Type   asn1.ObjectIdentifier
	Serial []byte
}

// otherName encodes an otherName GeneralName ([0] IMPLICIT SEQUENCE {
// type-id, [0] EXPLICIT value }).
func otherName(typeID asn1.ObjectIdentifier, value any) (asn1.RawValue, error) {
	v, err := asn1.Marshal(value)
	if err != nil {
		return asn1.RawValue{}, err
	}
	t, err := asn1.Marshal(typeID)
	if err != nil {
		return asn1.RawValue{}, err
	}
	wrapped, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: v})
	if err != nil {
		return asn1.RawValue{}, err
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(t, wrapped...)}, nil
}

// deviceSAN is the subjectAltName of a device certificate with attested
// names: the device URI, then the otherNames names asks for that att
// proves. crypto/x509 cannot write otherName, so the extension is built
// here; it replaces the one x509 would derive from the template's URIs.
// ok is false when no otherName applies (the template's URIs then make
// the extension).
func deviceSAN(deviceID string, uri *url.URL, names Names, att *Attestation) (ext pkix.Extension, ok bool, err error) {
	if att == nil {
		return pkix.Extension{}, false, nil
	}
	gns := []asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(uri.String())}} // uniformResourceIdentifier
	if names.PermanentIdentifier {
		on, err := otherName(oidPermanentIdentifier, permanentIdentifier{Value: deviceID})
		if err != nil {
			return pkix.Extension{}, false, fmt.Errorf("ca: permanentIdentifier: %w", err)
		}
		gns = append(gns, on)
	}
	if names.HardwareModuleName {
		if typ, serial, found := hardwareModule(att); found {
			on, err := otherName(oidHardwareModuleName, hardwareModuleName{Type: typ, Serial: []byte(serial)})
			if err != nil {
				return pkix.Extension{}, false, fmt.Errorf("ca: hardwareModuleName: %w", err)
			}
			gns = append(gns, on)
		}
	}
	if len(gns) == 1 {
		return pkix.Extension{}, false, nil
	}
	der, err := asn1.Marshal(gns)
	if err != nil {
		return pkix.Extension{}, false, fmt.Errorf("ca: subjectAltName: %w", err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: der}, true, nil
}
