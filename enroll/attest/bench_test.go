package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
)

func BenchmarkVerifyACME(b *testing.B) {
	a, err := attesttest.NewAuthority()
	if err != nil {
		b.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := attest.New(a.Roots())
	for _, tc := range []struct {
		name string
		mk   func() ([]byte, error)
	}{
		{"apple", func() ([]byte, error) { return a.Apple(k.Public(), serial, udid, keyAuth) }},
		{"tpm", func() ([]byte, error) { return a.TPM(k.Public(), serial, keyAuth) }},
		{"android-key", func() ([]byte, error) { return a.Android(k, serial, keyAuth) }},
	} {
		obj, err := tc.mk()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.VerifyACME(context.Background(), obj, keyAuth); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyTPMSoftware(b *testing.B) {
	a, err := attesttest.NewAuthority()
	if err != nil {
		b.Fatal(err)
	}
	v := attest.New(a.Roots())
	d, err := a.NewTPMDevice()
	if err != nil {
		b.Fatal(err)
	}
	act, err := v.ActivateTPM(context.Background(), d.ActivationRequest())
	if err != nil {
		b.Fatal(err)
	}
	nonce, err := d.ActivateCredential(act)
	if err != nil {
		b.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ev, err := d.Evidence(k.Public(), nonce)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := v.VerifyTPM(context.Background(), ev, nonce); err != nil {
			b.Fatal(err)
		}
	}
}
