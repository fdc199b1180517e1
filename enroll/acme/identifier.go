package acme

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Identifier types for device certificates (draft-ietf-acme-device-attest §3).
const (
	TypePermanentIdentifier = "permanent-identifier"
	TypeHardwareModule      = "hardware-module"
)

// maxIdentifierLen bounds identifier values; device ids longer than this
// are refused by the CA anyway.
const maxIdentifierLen = 256

// Identifier is an ACME identifier object.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

var (
	oidSAN                 = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidPermanentIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 3}
	oidHardwareModuleName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 4}
)

// deviceIdentity checks an order identifier and returns the device id the
// attestation must prove: for permanent-identifier the device-id part of
// "device-id[/assigner-oid]" (RFC 4043), for hardware-module the serial of
// "serial/hwType-oid" (RFC 4108). Values are matched octet for octet later,
// so nothing is normalised here.
func deviceIdentity(id Identifier) (string, *Problem) {
	if id.Value == "" || len(id.Value) > maxIdentifierLen {
		return "", rejected(id, "identifier value must be 1..%d octets", maxIdentifierLen)
	}
	if !utf8.ValidString(id.Value) {
		return "", rejected(id, "identifier value is not UTF-8")
	}
	for _, r := range id.Value {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", rejected(id, "identifier value contains control or space characters")
		}
	}
	switch id.Type {
	case TypePermanentIdentifier:
		dev, oid, hasOID := strings.Cut(id.Value, "/")
		if dev == "" {
			return "", rejected(id, "permanent-identifier device-id is empty")
		}
		if hasOID && !validOID(oid) {
			return "", rejected(id, "permanent-identifier assigner is not a valid OID")
		}
		return dev, nil
	case TypeHardwareModule:
		serial, oid, hasOID := strings.Cut(id.Value, "/")
		if serial == "" || !hasOID || !validOID(oid) {
			return "", rejected(id, "hardware-module value must be serial/hwType-OID")
		}
		return serial, nil
	default:
		p := problem(ProblemUnsupportedIdentifier, 400, "unsupported_identifier", "identifier type %q is not supported (use %s or %s)",
			id.Type, TypePermanentIdentifier, TypeHardwareModule)
		return "", p
	}
}

func rejected(id Identifier, format string, args ...any) *Problem {
	p := problem(ProblemMalformed, 400, "malformed", format, args...)
	idc := id
	p.Subproblems = []Subproblem{{Type: ProblemRejectedIdentifier, Detail: p.Detail, Identifier: &idc}}
	return p
}

// validOID checks the dotted-decimal ABNF of the draft: first arc 0 or 1
// with a second arc 0..39, or 2 with any second arc; no leading zeros.
func validOID(s string) bool {
	arcs := strings.Split(s, ".")
	if len(arcs) < 2 {
		return false
	}
	for i, a := range arcs {
		if a == "" || len(a) > 20 || (len(a) > 1 && a[0] == '0') {
			return false
		}
		for _, c := range a {
			if c < '0' || c > '9' {
				return false
			}
		}
		if i == 1 && arcs[0] != "2" {
			if n, err := strconv.Atoi(a); err != nil || n > 39 {
				return false
			}
		}
	}
	return arcs[0] == "0" || arcs[0] == "1" || arcs[0] == "2"
}

func oidString(o asn1.ObjectIdentifier) string { return o.String() }

// checkCSRNames enforces that the CSR asks for no name beyond the order's
// identifier. The issued certificate's names come from the verified
// attestation, never from the CSR, so this only refuses CSRs that ask for
// something else (RFC 8555 §7.4; the draft lets the CSR omit the
// identifier entirely). The subject is ignored.
func checkCSRNames(csr *x509.CertificateRequest, id Identifier) error {
	if len(csr.DNSNames) > 0 || len(csr.IPAddresses) > 0 || len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return fmt.Errorf("CSR requests DNS, IP, email or URI names; only the %s identifier may be requested", id.Type)
	}
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var names []asn1.RawValue
		rest, err := asn1.Unmarshal(ext.Value, &names)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("CSR subjectAltName is malformed")
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific {
				return fmt.Errorf("CSR subjectAltName has a malformed entry")
			}
			if n.Tag != 0 { // only otherName [0]; DNS/IP/email/URI were checked above
				if n.Tag == 1 || n.Tag == 2 || n.Tag == 6 || n.Tag == 7 {
					continue
				}
				return fmt.Errorf("CSR subjectAltName has an unsupported name type [%d]", n.Tag)
			}
			if err := checkOtherName(n.Bytes, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkOtherName compares one otherName (the contents of [0] IMPLICIT
// SEQUENCE { type-id OID, value [0] EXPLICIT ANY }) with the order identifier.
func checkOtherName(b []byte, id Identifier) error {
	var typeID asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(b, &typeID)
	if err != nil {
		return fmt.Errorf("CSR otherName is malformed")
	}
	var wrapped asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &wrapped); err != nil || len(rest) != 0 ||
		wrapped.Class != asn1.ClassContextSpecific || wrapped.Tag != 0 || !wrapped.IsCompound {
		return fmt.Errorf("CSR otherName value is malformed")
	}
	switch {
	case typeID.Equal(oidPermanentIdentifier):
		if id.Type != TypePermanentIdentifier {
			return fmt.Errorf("CSR carries a permanent identifier but the order is for %s", id.Type)
		}
		var pi struct {
			Value    string                `asn1:"utf8,optional"`
			Assigner asn1.ObjectIdentifier `asn1:"optional"`
		}
		if rest, err := asn1.Unmarshal(wrapped.Bytes, &pi); err != nil || len(rest) != 0 {
			return fmt.Errorf("CSR permanent identifier is malformed")
		}
		got := pi.Value
		if len(pi.Assigner) > 0 {
			got += "/" + oidString(pi.Assigner)
		}
		if got != id.Value {
			return fmt.Errorf("CSR permanent identifier %q does not match the order identifier", got)
		}
		return nil
	case typeID.Equal(oidHardwareModuleName):
		if id.Type != TypeHardwareModule {
			return fmt.Errorf("CSR carries a hardware module name but the order is for %s", id.Type)
		}
		var hm struct {
			HWType   asn1.ObjectIdentifier
			HWSerial []byte
		}
		if rest, err := asn1.Unmarshal(wrapped.Bytes, &hm); err != nil || len(rest) != 0 {
			return fmt.Errorf("CSR hardware module name is malformed")
		}
		if got := string(hm.HWSerial) + "/" + oidString(hm.HWType); got != id.Value {
			return fmt.Errorf("CSR hardware module name %q does not match the order identifier", got)
		}
		return nil
	default:
		return fmt.Errorf("CSR subjectAltName has an unsupported otherName %s", typeID)
	}
}
