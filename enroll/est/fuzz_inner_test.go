package est

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
)

// tbsWith is a CertificationRequestInfo whose attributes are the given
// DER Attribute values.
func tbsWith(t testing.TB, attrs ...[]byte) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(k.Public())
	subject, _ := asn1.Marshal(pkix.Name{CommonName: "x"}.ToRDNSequence())
	var raw []asn1.RawValue
	for _, a := range attrs {
		raw = append(raw, asn1.RawValue{FullBytes: a})
	}
	b, err := asn1.Marshal(struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []asn1.RawValue `asn1:"set,tag:0"`
	}{0, asn1.RawValue{FullBytes: subject}, asn1.RawValue{FullBytes: spki}, raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pwAttr(t testing.TB, values ...asn1.RawValue) []byte {
	t.Helper()
	b, err := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}{oidChallengePassword, values})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func str(t testing.TB, s, params string) asn1.RawValue {
	t.Helper()
	b, err := asn1.MarshalWithParams(s, params)
	if err != nil {
		t.Fatal(err)
	}
	return asn1.RawValue{FullBytes: b}
}

func TestChallengePassword(t *testing.T) {
	t.Parallel()
	other, _ := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}, []asn1.RawValue{str(t, "x", "utf8")}})
	cases := []struct {
		name    string
		tbs     []byte
		pw      string
		present bool
		err     bool
	}{
		{name: "no attributes", tbs: tbsWith(t)},
		{name: "other attribute only", tbs: tbsWith(t, other)},
		{name: "printable", tbs: tbsWith(t, other, pwAttr(t, str(t, "abc+/=", "printable"))), pw: "abc+/=", present: true},
		{name: "utf8", tbs: tbsWith(t, pwAttr(t, str(t, "abc", "utf8"))), pw: "abc", present: true},
		{name: "ia5", tbs: tbsWith(t, pwAttr(t, str(t, "abc", "ia5"))), pw: "abc", present: true},
		{name: "two values", tbs: tbsWith(t, pwAttr(t, str(t, "a", "utf8"), str(t, "b", "utf8"))), err: true},
		{name: "no value", tbs: tbsWith(t, pwAttr(t)), err: true},
		{name: "two attributes", tbs: tbsWith(t, pwAttr(t, str(t, "a", "utf8")), pwAttr(t, str(t, "a", "utf8"))), err: true},
		{name: "integer value", tbs: tbsWith(t, pwAttr(t, asn1.RawValue{FullBytes: []byte{2, 1, 5}})), err: true},
		{name: "too long", tbs: tbsWith(t, pwAttr(t, str(t, strings.Repeat("a", 256), "utf8"))), err: true},
		{name: "trailing bytes", tbs: append(tbsWith(t), 0), err: true},
		{name: "empty", tbs: nil, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pw, present, err := challengePassword(tc.tbs)
			if (err != nil) != tc.err || pw != tc.pw || present != tc.present {
				t.Fatalf("got %q %v %v, want %q %v err=%v", pw, present, err, tc.pw, tc.present, tc.err)
			}
		})
	}
	// A CSR made by crypto/x509 parses the same way.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "y"}, DNSNames: []string{"a"}}, k)
	csr, _ := x509.ParseCertificateRequest(der)
	if _, present, err := challengePassword(csr.RawTBSCertificateRequest); err != nil || present {
		t.Fatalf("crypto/x509 CSR: %v %v", present, err)
	}
}

// FuzzChallengePassword: any CertificationRequestInfo bytes give a
// password, none, or an error; never a panic, and never more than the
// bound.
func FuzzChallengePassword(f *testing.F) {
	f.Add(tbsWith(f))
	f.Add(tbsWith(f, pwAttr(f, str(f, "c29tZQ==", "printable"))))
	f.Add(tbsWith(f, pwAttr(f, str(f, "a", "utf8"), str(f, "b", "utf8"))))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		pw, present, err := challengePassword(b)
		if err != nil && (present || pw != "") {
			t.Fatal("error with a value")
		}
		if len(pw) > maxChallengePassword {
			t.Fatalf("password of %d bytes", len(pw))
		}
	})
}
