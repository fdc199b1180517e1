package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
)

// TestE2EAndroidStatusListFromStore: the Android attestation status list
// is kept in the store, not in the data dir. A server reads a list that
// revokes the intermediate of the dev Android chains and refuses an
// Android enrollment; restarted after the list's source is gone, it
// judges by the stored copy (still revoked, not "unavailable"), and no
// cache file appears in the data dir.
func TestE2EAndroidStatusListFromStore(t *testing.T) {
	t.Parallel()
	const serial = "R58E2ESTATUS"
	cfg := testConfig(t)
	list := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(list, []byte(`{"entries":{"1234abcd":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Enroll.Android.StatusList = list
	// The first start creates the dev attestation authority; its Android
	// intermediate is then listed.
	in := startTest(t, cfg)
	in.cliOK(t, "device", "add", serial, "--platform", "android", "--serial", serial)
	in.Shutdown()
	auth, err := attesttest.Load(filepath.Join(cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	inter := auth.AndroidIntermediate().SerialNumber.Text(16)
	if err := os.WriteFile(list, []byte(`{"entries":{"`+inter+`":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	enroll := func(in *instance) error {
		t.Helper()
		ctx := e2eContext(t)
		ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl, err := acmetest.New(ctx, in.httpsClient(t), "https://"+in.Addr("enroll-https")+"/acme/directory", ak, jose.ES256)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Register(ctx); err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
			return auth.Android(key, serial, keyAuth)
		}, csr)
		return err
	}
	refusedRevoked := func(in *instance, when string) {
		t.Helper()
		var p *acmetest.Problem
		n := in.countAudit(t, "enroll.acme", serial, "reject", "")
		err := enroll(in)
		if !errors.As(err, &p) || p.Type != acme.ProblemBadAttestationStatement {
			t.Fatalf("%s: Android enrollment: %v, want badAttestationStatement", when, err)
		}
		in.waitAudit(t, "the refusal", func() bool { return in.countAudit(t, "enroll.acme", serial, "reject", "") > n })
		if last := in.lastAudit(t, "enroll.acme"); !strings.Contains(last, "REVOKED/KEY_COMPROMISE") {
			t.Fatalf("%s: refusal audited as %q, want the revoked intermediate", when, last)
		}
	}
	in = startTest(t, cfg)
	refusedRevoked(in, "with the list read from its source")
	in.Shutdown()

	if err := os.Remove(list); err != nil {
		t.Fatal(err)
	}
	in = startTest(t, cfg)
	refusedRevoked(in, "restarted with the source gone")
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "android-status.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a status list cache file in the data dir: %v", err)
	}
}
