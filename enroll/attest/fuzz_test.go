package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
)

// fuzzSeeds are valid objects of each format plus edge cases.
func fuzzSeeds(f *testing.F) (*attesttest.Authority, [][]byte) {
	f.Helper()
	a, err := attesttest.NewAuthority()
	if err != nil {
		f.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, mk := range []func() ([]byte, error){
		func() ([]byte, error) { return a.Apple(k.Public(), serial, udid, keyAuth) },
		func() ([]byte, error) { return a.TPM(k.Public(), serial, keyAuth) },
		func() ([]byte, error) { return a.Android(k, serial, keyAuth) },
	} {
		b, err := mk()
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seeds = append(seeds, []byte{}, []byte{0xa0}, []byte("{}"), dupFmt(),
		[]byte{0xbf, 0x63, 'f', 'm', 't', 0x65, 'a', 'p', 'p', 'l', 'e', 0xff},
		[]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // huge array length
	)
	return a, seeds
}

// FuzzParseAttObj: the strict CBOR decoder never panics, and accepts only
// objects with a fmt and an attStmt.
func FuzzParseAttObj(f *testing.F) {
	_, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		format, stmt, err := attest.ParseAttObj(b)
		if err != nil {
			if !errors.Is(err, attest.ErrBadAttestation) {
				t.Fatalf("error does not wrap ErrBadAttestation: %v", err)
			}
			return
		}
		if format == "" || len(stmt) == 0 || len(b) > attest.MaxAttObjSize {
			t.Fatalf("accepted fmt=%q stmt=%d bytes from %d bytes", format, len(stmt), len(b))
		}
	})
}

// FuzzVerifyACME runs whole attestation objects through every format
// verifier against the seeds' roots: no panic, every error wraps
// ErrBadAttestation.
func FuzzVerifyACME(f *testing.F) {
	a, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s, keyAuth)
	}
	now := time.Now()
	v := attest.New(a.Roots(), attest.WithClock(func() time.Time { return now }))
	f.Fuzz(func(t *testing.T, b []byte, ka string) {
		_, err := v.VerifyACME(context.Background(), b, ka)
		if err != nil && !errors.Is(err, attest.ErrBadAttestation) {
			t.Fatalf("error does not wrap ErrBadAttestation: %v", err)
		}
	})
}

// FuzzParseKeyDescription: the Android KeyDescription parser never panics
// and bounds the challenge.
func FuzzParseKeyDescription(f *testing.F) {
	level0 := 0
	for _, o := range []attesttest.AndroidOptions{{}, {SecurityLevel: &level0}, {RootOfTrustSoftware: true}, {Unlocked: true}} {
		kd, err := attesttest.BuildKeyDescription(serial, keyAuth, o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kd)
		f.Add(kd[:len(kd)/2])
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		kd, err := attest.ParseKeyDescription(b)
		if err != nil {
			if !errors.Is(err, attest.ErrBadAttestation) {
				t.Fatalf("error does not wrap ErrBadAttestation: %v", err)
			}
			return
		}
		if len(kd.AttestationChallenge) > 128 {
			t.Fatalf("challenge of %d bytes accepted", len(kd.AttestationChallenge))
		}
	})
}

// FuzzParseSAN: the GeneralNames parser (AK certificate SANs) never panics.
func FuzzParseSAN(f *testing.F) {
	a, err := attesttest.NewAuthority()
	if err != nil {
		f.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := a.IssueAKCert(k.Public(), serial)
	if err != nil {
		f.Fatal(err)
	}
	c := parseCert(f, der)
	for _, e := range c.Extensions {
		if e.Id.String() == "2.5.29.17" {
			f.Add(e.Value)
		}
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		san, err := attest.ParseSAN(b)
		if err == nil && len(san.PermanentIdentifiers)+len(san.HardwareModules)+len(san.DirectoryNames)+len(san.URIs) > 64 {
			t.Fatal("more names than the cap")
		}
	})
}

// FuzzVerifyTPMEvidence feeds JSON evidence (the POST /api/v1/attestations
// body shape) to VerifyTPM.
func FuzzVerifyTPMEvidence(f *testing.F) {
	a, err := attesttest.NewAuthority()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	v := attest.New(a.Roots(), attest.WithClock(func() time.Time { return now }))
	d, err := a.NewTPMDevice()
	if err != nil {
		f.Fatal(err)
	}
	act, err := v.ActivateTPM(context.Background(), d.ActivationRequest())
	if err != nil {
		f.Fatal(err)
	}
	nonce, err := d.ActivateCredential(act)
	if err != nil {
		f.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ev, err := d.Evidence(k.Public(), nonce)
	if err != nil {
		f.Fatal(err)
	}
	js, _ := json.Marshal(ev)
	f.Add(js, nonce)
	f.Add([]byte(`{"ek_cert":"","ak":{},"key":{}}`), nonce)
	f.Fuzz(func(t *testing.T, js []byte, nonce []byte) {
		var ev attest.TPMEvidence
		if json.Unmarshal(js, &ev) != nil {
			return
		}
		_, err := v.VerifyTPM(context.Background(), ev, nonce)
		if err != nil && !errors.Is(err, attest.ErrBadAttestation) {
			t.Fatalf("error does not wrap ErrBadAttestation: %v", err)
		}
	})
}

// FuzzParseAndroidStatusList: the status list parser (its input comes from
// the network) never panics, refuses with ErrStatusList, and every key it
// keeps is a lower-case hex serial without leading zeros that Revoked finds.
func FuzzParseAndroidStatusList(f *testing.F) {
	for _, s := range []string{
		`{"entries":{"2c8cdddfd5e03bfc":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`,
		`{"entries":{"00C35747A084470C3135AEEFE2B8D40CD6":{"status":"SUSPENDED","reason":"SOFTWARE_FLAW"}}}`,
		`{"entries":{}}`, `{}`, `{"entries":null}`, `{"entries":{"":{}}}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := attest.ParseAndroidStatusList(b)
		if err != nil {
			if !errors.Is(err, attest.ErrStatusList) {
				t.Fatalf("error does not wrap ErrStatusList: %v", err)
			}
			return
		}
		for k, v := range l {
			if k == "" || k[0] == '0' || strings.ToLower(k) != k {
				t.Fatalf("kept key %q", k)
			}
			if got, ok := l.Revoked(strings.ToUpper(k)); !ok || got != v {
				t.Fatalf("Revoked(%q) = %q %v", k, got, ok)
			}
		}
	})
}
