package attesttest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
)

// An authority reloaded from disk makes evidence that verifies against the
// roots of the one that was saved (what `serve --dev` and `bench` rely on).
func TestSaveLoad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev-attest")
	a, err := attesttest.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "authority.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("authority.pem mode %v, %v", fi, err)
	}
	b, err := attesttest.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const keyAuth = "token.thumbprint"
	v := attest.New(a.Roots())
	for name, mk := range map[string]func() ([]byte, error){
		"apple":       func() ([]byte, error) { return b.Apple(key.Public(), "SERIAL1", "UDID1", keyAuth) },
		"tpm":         func() ([]byte, error) { return b.TPM(key.Public(), "dev-1", keyAuth) },
		"android-key": func() ([]byte, error) { return b.Android(key, "SERIAL2", keyAuth) },
	} {
		obj, err := mk()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := v.VerifyACME(context.Background(), obj, keyAuth); err != nil {
			t.Errorf("%s: evidence from the reloaded authority rejected: %v", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "authority.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := attesttest.Load(dir); err == nil {
		t.Error("Load accepted a broken file")
	}
}
