package attesttest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
)

// TestAuthorityEvidenceVerifies: everything the authority makes verifies
// against its own roots and nothing verifies against another authority's.
func TestAuthorityEvidenceVerifies(t *testing.T) {
	t.Parallel()
	a, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	b, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const ka = "tok123.thumb456"
	ctx := context.Background()
	objs := map[string]func() ([]byte, error){
		"ok/apple":       func() ([]byte, error) { return a.Apple(k.Public(), "SN1", "", ka) },
		"ok/tpm":         func() ([]byte, error) { return a.TPM(k.Public(), "SN1", ka) },
		"ok/android-key": func() ([]byte, error) { return a.Android(k, "SN1", ka) },
	}
	for name, mk := range objs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			obj, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			res, err := attest.New(a.Roots()).VerifyACME(ctx, obj, ka)
			if err != nil || !res.Proves("SN1") {
				t.Fatalf("own roots: %v", err)
			}
			if _, err := attest.New(b.Roots()).VerifyACME(ctx, obj, ka); err == nil {
				t.Fatal("verified against another authority's roots")
			}
		})
	}
	if len(a.RootCerts()) != 4 {
		t.Errorf("RootCerts = %d", len(a.RootCerts()))
	}
}
