package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll"
	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/limit"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/policy"
)

// TestEnrollOverHTTPSThenRevoke drives the service as deployed: HTTPS
// listener, ACME enrollment with an Apple attestation, then a revocation
// that the CRL picks up.
func TestEnrollOverHTTPSThenRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c := catest.New(t, dir)
	st, err := badger.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auth, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := enroll.New(enroll.Config{
		Profiles: []enroll.Profile{{Name: "corp", Validity: 24 * time.Hour, Formats: []string{policy.FormatApple}}},
		Limits:   limit.DefaultConfig(),
	}, enroll.Deps{CA: c, Store: st, Attester: attest.New(auth.Roots())})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(svc.Handler())
	t.Cleanup(srv.Close)

	accountKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl, err := acmetest.New(ctx, srv.Client(), srv.URL+"/acme/directory", accountKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, devKey)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, "C02E2E", func(keyAuth string) ([]byte, error) {
		return auth.Apple(devKey.Public(), "C02E2E", "UDID-E2E", keyAuth)
	}, csr)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	inter := x509.NewCertPool()
	inter.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	rec, err := st.GetCert(ctx, store.HashCert(chain[0]))
	if err != nil || !rec.Attested || rec.DeviceID != "C02E2E" {
		t.Fatalf("binding = %+v, %v", rec, err)
	}

	// A TPM attestation is refused by this Apple-only profile.
	tpmKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr2, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, tpmKey)
	_, err = cl.Enroll(ctx, acme.TypePermanentIdentifier, "TPM-1", func(keyAuth string) ([]byte, error) {
		return auth.TPM(tpmKey.Public(), "TPM-1", keyAuth)
	}, csr2)
	var p *acmetest.Problem
	if !errors.As(err, &p) || p.Type != acme.ProblemBadAttestationStatement {
		t.Fatalf("TPM on Apple-only profile: %v", err)
	}

	// Revoked in the store directly: its change feed marks the CRL stale.
	if _, err := st.RevokeCert(ctx, rec.SHA256, store.Revocation{At: time.Now(), Reason: 4, Actor: "admin:test"}, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Get(srv.URL + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /crl = %d, %v", resp.StatusCode, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(chain[0].SerialNumber) != 0 {
		t.Fatalf("CRL entries = %+v", crl.RevokedCertificateEntries)
	}
}
