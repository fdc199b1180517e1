package attest

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"unicode/utf8"
)

// OIDs of the RFC 4043 / RFC 4108 otherName forms used by device-attest-01.
var (
	OIDPermanentIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}
	OIDHardwareModuleName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 4}
)

// SANNames are the GeneralNames Go's x509 package does not expose.
type SANNames struct {
	// PermanentIdentifiers holds identifierValue [+ "/" + assigner OID].
	PermanentIdentifiers []PermanentIdentifier
	// HardwareModules holds hwSerialNum with its hwType.
	HardwareModules []HardwareModuleName
	// DirectoryNames are the directoryName entries.
	DirectoryNames []pkix.Name
	// URIs are the uniformResourceIdentifier entries, as raw strings.
	URIs []string
}

// PermanentIdentifier is RFC 4043's otherName value.
type PermanentIdentifier struct {
	Value    string
	Assigner asn1.ObjectIdentifier
}

// HardwareModuleName is RFC 4108's otherName value.
type HardwareModuleName struct {
	Type   asn1.ObjectIdentifier
	Serial []byte
}

const maxSANEntries = 64

type otherNameASN1 struct {
	TypeID asn1.ObjectIdentifier
	Value  asn1.RawValue `asn1:"explicit,tag:0"`
}

type permanentIdentifierASN1 struct {
	Value    string                `asn1:"utf8,optional"`
	Assigner asn1.ObjectIdentifier `asn1:"optional"`
}

type hardwareModuleNameASN1 struct {
	Type   asn1.ObjectIdentifier
	Serial []byte
}

// ParseSAN parses a subjectAltName extension value (GeneralNames), keeping
// otherName (PermanentIdentifier, HardwareModuleName), directoryName and URI
// entries and skipping the kinds Go already handles. Unknown otherName types
// are skipped; malformed entries are errors.
func ParseSAN(der []byte) (*SANNames, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, fmt.Errorf("attest: SAN: %w", err)
	}
	if len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, fmt.Errorf("attest: SAN is not one SEQUENCE")
	}
	out := &SANNames{}
	rest = seq.Bytes
	for n := 0; len(rest) > 0; n++ {
		if n >= maxSANEntries {
			return nil, fmt.Errorf("attest: SAN has more than %d names", maxSANEntries)
		}
		var gn asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
			return nil, fmt.Errorf("attest: SAN name %d: %w", n, err)
		}
		if gn.Class != asn1.ClassContextSpecific {
			return nil, fmt.Errorf("attest: SAN name %d is not a GeneralName", n)
		}
		switch gn.Tag {
		case 0: // otherName, IMPLICIT SEQUENCE
			var on otherNameASN1
			if r, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil || len(r) != 0 {
				return nil, fmt.Errorf("attest: SAN otherName %d is malformed", n)
			}
			switch {
			case on.TypeID.Equal(OIDPermanentIdentifier):
				var p permanentIdentifierASN1
				if r, err := asn1.Unmarshal(on.Value.Bytes, &p); err != nil || len(r) != 0 {
					return nil, fmt.Errorf("attest: SAN PermanentIdentifier %d is malformed", n)
				}
				out.PermanentIdentifiers = append(out.PermanentIdentifiers, PermanentIdentifier(p))
			case on.TypeID.Equal(OIDHardwareModuleName):
				var h hardwareModuleNameASN1
				if r, err := asn1.Unmarshal(on.Value.Bytes, &h); err != nil || len(r) != 0 {
					return nil, fmt.Errorf("attest: SAN HardwareModuleName %d is malformed", n)
				}
				out.HardwareModules = append(out.HardwareModules, HardwareModuleName(h))
			}
		case 4: // directoryName, EXPLICIT Name
			var rdns pkix.RDNSequence
			if r, err := asn1.Unmarshal(gn.Bytes, &rdns); err != nil || len(r) != 0 {
				return nil, fmt.Errorf("attest: SAN directoryName %d is malformed", n)
			}
			var name pkix.Name
			name.FillFromRDNSequence(&rdns)
			out.DirectoryNames = append(out.DirectoryNames, name)
		case 6: // URI, IA5String
			if !utf8.Valid(gn.Bytes) {
				return nil, fmt.Errorf("attest: SAN URI %d is not text", n)
			}
			out.URIs = append(out.URIs, string(gn.Bytes))
		}
	}
	return out, nil
}
