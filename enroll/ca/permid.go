package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/url"
)

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// id-on-permanentIdentifier (RFC 4043 §2).
	oidPermanentIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}
)

// permanentIdentifier is RFC 4043's PermanentIdentifier without the
// assigner: the value is the device id as hardbound attested it.
type permanentIdentifier struct {
	Value string `asn1:"utf8"`
}

// deviceSAN is the subjectAltName of an attested device certificate: the
// device URI and an RFC 4043 permanentIdentifier otherName with the device
// id. crypto/x509 cannot write otherName, so the extension is built here;
// it replaces the one x509 would derive from the template's URIs.
func deviceSAN(deviceID string, uri *url.URL) (pkix.Extension, error) {
	pid, err := asn1.Marshal(permanentIdentifier{Value: deviceID})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("ca: permanentIdentifier: %w", err)
	}
	typeID, err := asn1.Marshal(oidPermanentIdentifier)
	if err != nil {
		return pkix.Extension{}, err
	}
	value, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: pid})
	if err != nil {
		return pkix.Extension{}, err
	}
	names, err := asn1.Marshal([]asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(uri.String())},                       // uniformResourceIdentifier
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(typeID, value...)}, // otherName
	})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("ca: subjectAltName: %w", err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: names}, nil
}
