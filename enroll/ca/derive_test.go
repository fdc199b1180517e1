package ca_test

import (
	"bytes"
	"crypto"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
)

// opaqueSigner hides the private key, as an HSM-held key does.
type opaqueSigner struct{ s crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.s.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, op crypto.SignerOpts) ([]byte, error) {
	return o.s.Sign(r, d, op)
}

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := catest.New(t, filepath.Join(dir, "a"))
	b := catest.New(t, filepath.Join(dir, "b"))
	k1, err := a.DeriveKey("acme nonce", 32)
	if err != nil || len(k1) != 32 {
		t.Fatalf("DeriveKey = %x, %v", k1, err)
	}
	again, _ := a.DeriveKey("acme nonce", 32)
	other, _ := a.DeriveKey("something else", 32)
	otherCA, _ := b.DeriveKey("acme nonce", 32)
	switch {
	case !bytes.Equal(k1, again):
		t.Fatal("one CA and purpose derived two keys")
	case bytes.Equal(k1, other):
		t.Fatal("two purposes derived one key")
	case bytes.Equal(k1, otherCA):
		t.Fatal("two CAs derived one key")
	}
	if _, err := a.DeriveKey("", 32); err == nil {
		t.Fatal("DeriveKey without a purpose succeeded")
	}
	hsm, err := ca.New(a.Issuing(), opaqueSigner{a.Signer()}, a.Root())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.DeriveKey("acme nonce", 32); !errors.Is(err, ca.ErrNotDerivable) {
		t.Fatalf("DeriveKey with an opaque signer: %v, want ErrNotDerivable", err)
	}
}
