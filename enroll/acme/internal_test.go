package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/attest"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
	"hardbound/store/policy"
	"hardbound/store/storetest"
)

func pkixExt(v []byte) pkix.Extension { return pkix.Extension{Id: oidSAN, Value: v} }

// TestNoncesAcrossServers: a nonce issued by one server is accepted once
// by any server with the same key over the same store, and refused when
// replayed on either, expired, dated ahead, tampered with or made under
// another key.
func TestNoncesAcrossServers(t *testing.T) {
	t.Parallel()
	st := badgertest.Memory(t)
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, NonceKeyLen)
	now := time.Now()
	clock := func() time.Time { return now }
	a := newNonces(key, time.Minute, clock, st)
	b := newNonces(key, time.Minute, clock, st)
	other := newNonces(bytes.Repeat([]byte{8}, NonceKeyLen), time.Minute, clock, st)

	v := a.issue()
	if len(v) != nonceLen {
		t.Fatalf("nonce %q has %d characters, want %d", v, len(v), nonceLen)
	}
	if err := other.consume(ctx, v); !errors.Is(err, errBadNonce) {
		t.Fatalf("nonce under another key: %v, want errBadNonce", err)
	}
	if err := b.consume(ctx, v); err != nil {
		t.Fatalf("nonce issued by a, consumed by b: %v", err)
	}
	for name, n := range map[string]*nonces{"a": a, "b": b} {
		if err := n.consume(ctx, v); !errors.Is(err, errBadNonce) {
			t.Fatalf("replay on %s: %v, want errBadNonce", name, err)
		}
	}

	old := a.issue()
	now = now.Add(time.Minute)
	if err := b.consume(ctx, old); !errors.Is(err, errBadNonce) {
		t.Fatalf("expired nonce: %v, want errBadNonce", err)
	}
	ahead := newNonces(key, time.Minute, func() time.Time { return now.Add(2 * maxNonceSkew) }, st).issue()
	if err := a.consume(ctx, ahead); !errors.Is(err, errBadNonce) {
		t.Fatalf("nonce dated ahead by twice the skew: %v, want errBadNonce", err)
	}
	near := newNonces(key, time.Minute, func() time.Time { return now.Add(maxNonceSkew / 2) }, st).issue()
	if err := a.consume(ctx, near); err != nil {
		t.Fatalf("nonce from a node whose clock is half the skew ahead: %v", err)
	}

	fresh := []byte(a.issue())
	fresh[20] ^= 1 // inside the random part: the MAC no longer matches
	for _, bad := range []string{"", "short", string(fresh), strings.Repeat("A", nonceLen), strings.Repeat("!", nonceLen)} {
		if err := a.consume(ctx, bad); !errors.Is(err, errBadNonce) {
			t.Errorf("consume(%q) = %v, want errBadNonce", bad, err)
		}
	}
}

// TestNonceStoreFailureIsNotABadNonce: a claim the store cannot record is
// a server error, not a replay the client is blamed for.
func TestNonceStoreFailureIsNotABadNonce(t *testing.T) {
	t.Parallel()
	st := &storetest.Faulty{Store: badgertest.Memory(t), Fail: storetest.FailOn("ClaimNonce", 0, errors.New("database away"))}
	n := newNonces(bytes.Repeat([]byte{7}, NonceKeyLen), time.Minute, time.Now, st)
	if err := n.consume(context.Background(), n.issue()); err == nil || errors.Is(err, errBadNonce) {
		t.Fatalf("consume with the store away: %v, want a store error", err)
	}
}

// TestEvidenceRoundTrip: what the challenge stores is what finalize reads.
func TestEvidenceRoundTrip(t *testing.T) {
	t.Parallel()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	in := &attest.Result{Format: policy.FormatApple, PublicKey: k.Public(), KeySHA256: store.Hash{1}, DeviceID: "SN1",
		Identifiers: map[string]string{"serial": "SN1", "udid": "U1"}, Facts: map[string]string{"os_version": "17.4"}}
	b, err := encodeEvidence(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	if !k.PublicKey.Equal(out.PublicKey) || out.Format != in.Format || out.DeviceID != "SN1" || out.KeySHA256 != in.KeySHA256 ||
		out.Identifiers["udid"] != "U1" || out.Facts["os_version"] != "17.4" || evidenceFormat(b) != policy.FormatApple {
		t.Fatalf("evidence round trip: %+v", out)
	}
	for _, bad := range []string{``, `{`, `{"format":"apple","spki":"AAAA"}`} {
		if _, err := decodeEvidence([]byte(bad)); err == nil {
			t.Errorf("decodeEvidence(%q) succeeded", bad)
		}
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
