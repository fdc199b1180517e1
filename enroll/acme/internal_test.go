package acme

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
	"time"
)

func pkixExt(v []byte) pkix.Extension { return pkix.Extension{Id: oidSAN, Value: v} }

func TestNoncesAreSingleUseExpiringAndBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	n := newNonces(time.Minute, 3, clock)
	a := n.issue()
	if !n.consume(a) {
		t.Fatal("fresh nonce refused")
	}
	if n.consume(a) {
		t.Fatal("nonce accepted twice")
	}
	b := n.issue()
	now = now.Add(time.Minute)
	if n.consume(b) {
		t.Fatal("expired nonce accepted")
	}
	for range 10 {
		n.issue()
	}
	if got := n.len(); got != 3 {
		t.Fatalf("table holds %d nonces, want the bound 3", got)
	}
}

func TestOrdersAreBoundedAndExpire(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	o := newOrders(time.Hour, 2, func() time.Time { return now })
	first := o.create("acct", "p", false, Identifier{Type: TypePermanentIdentifier, Value: "a"}, "a")
	o.create("acct", "p", false, Identifier{Type: TypePermanentIdentifier, Value: "b"}, "b")
	o.create("acct", "p", false, Identifier{Type: TypePermanentIdentifier, Value: "c"}, "c")
	if o.len() != 2 {
		t.Fatalf("len = %d, want 2", o.len())
	}
	o.mu.Lock()
	gone := o.lookupLocked('o', first.id)
	o.mu.Unlock()
	if gone != nil {
		t.Fatal("oldest order survived eviction")
	}
	now = now.Add(time.Hour)
	o.create("acct", "p", false, Identifier{Type: TypePermanentIdentifier, Value: "d"}, "d")
	if o.len() != 1 {
		t.Fatalf("expired orders not swept: len = %d", o.len())
	}
}

func TestDeviceIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      Identifier
		wantDev string
		wantErr string
	}{
		{"ok/plain_serial", Identifier{TypePermanentIdentifier, "C02XYZ"}, "C02XYZ", ""},
		{"ok/with_assigner", Identifier{TypePermanentIdentifier, "C02XYZ/1.3.6.1.4.1.1"}, "C02XYZ", ""},
		{"ok/assigner_arc2_big", Identifier{TypePermanentIdentifier, "X/2.999.7"}, "X", ""},
		{"ok/hardware_module", Identifier{TypeHardwareModule, "ABC/1.2.3"}, "ABC", ""},
		{"reject/empty", Identifier{TypePermanentIdentifier, ""}, "", ProblemMalformed},
		{"reject/empty_device_id", Identifier{TypePermanentIdentifier, "/1.2.3"}, "", ProblemMalformed},
		{"reject/second_arc_over_39", Identifier{TypePermanentIdentifier, "X/1.40"}, "", ProblemMalformed},
		{"reject/leading_zero", Identifier{TypePermanentIdentifier, "X/1.02"}, "", ProblemMalformed},
		{"reject/space", Identifier{TypePermanentIdentifier, "C02 XYZ"}, "", ProblemMalformed},
		{"reject/hardware_module_without_oid", Identifier{TypeHardwareModule, "ABC"}, "", ProblemMalformed},
		{"reject/dns", Identifier{"dns", "example.com"}, "", ProblemUnsupportedIdentifier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev, p := deviceIdentity(tc.id)
			if tc.wantErr != "" {
				if p == nil || p.Type != tc.wantErr {
					t.Fatalf("got %q, %v; want %s", dev, p, tc.wantErr)
				}
				return
			}
			if p != nil || dev != tc.wantDev {
				t.Fatalf("got %q, %v; want %q", dev, p, tc.wantDev)
			}
		})
	}
}

func otherNameSAN(t *testing.T, typeID asn1.ObjectIdentifier, value any) []byte {
	t.Helper()
	v, err := asn1.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	oid, _ := asn1.Marshal(typeID)
	wrapped, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: v})
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, wrapped...)}})
	if err != nil {
		t.Fatal(err)
	}
	return san
}

type permID struct {
	Value    string                `asn1:"utf8"`
	Assigner asn1.ObjectIdentifier `asn1:"optional"`
}

type hwName struct {
	HWType   asn1.ObjectIdentifier
	HWSerial []byte
}

func TestCheckCSRNames(t *testing.T) {
	t.Parallel()
	perm := Identifier{TypePermanentIdentifier, "SN1"}
	permOID := Identifier{TypePermanentIdentifier, "SN1/1.2.3"}
	hw := Identifier{TypeHardwareModule, "HW9/1.3.6.1.4.1.5"}
	tests := []struct {
		name    string
		csr     x509.CertificateRequest
		id      Identifier
		wantErr bool
	}{
		{"ok/no_names", x509.CertificateRequest{}, perm, false},
		{"ok/permanent_identifier_matches", withSAN(otherNameSAN(t, oidPermanentIdentifier, permID{Value: "SN1"})), perm, false},
		{"ok/permanent_identifier_with_assigner", withSAN(otherNameSAN(t, oidPermanentIdentifier, permID{Value: "SN1", Assigner: asn1.ObjectIdentifier{1, 2, 3}})), permOID, false},
		{"ok/hardware_module_matches", withSAN(otherNameSAN(t, oidHardwareModuleName, hwName{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 5}, []byte("HW9")})), hw, false},
		{"reject/permanent_identifier_differs", withSAN(otherNameSAN(t, oidPermanentIdentifier, permID{Value: "SN2"})), perm, true},
		{"reject/assigner_missing", withSAN(otherNameSAN(t, oidPermanentIdentifier, permID{Value: "SN1"})), permOID, true},
		{"reject/hardware_module_on_permanent_order", withSAN(otherNameSAN(t, oidHardwareModuleName, hwName{asn1.ObjectIdentifier{1, 2}, []byte("SN1")})), perm, true},
		{"reject/unknown_other_name", withSAN(otherNameSAN(t, asn1.ObjectIdentifier{1, 2, 3, 4}, "x")), perm, true},
		{"reject/dns_name", x509.CertificateRequest{DNSNames: []string{"example.com"}}, perm, true},
		{"reject/garbage_san", withSAN([]byte{0x30, 0x03, 0x01, 0x01, 0xff}), perm, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := checkCSRNames(&tc.csr, tc.id)
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkCSRNames = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

func withSAN(v []byte) x509.CertificateRequest {
	return x509.CertificateRequest{Extensions: []pkix.Extension{{Id: oidSAN, Value: v}}}
}
