package scep_test

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
)

// fakeTPM stands in for attest.Verifier: it "verifies" evidence whose
// EKCert equals ek and nonce equals nonce, attesting key for device.
type fakeTPM struct {
	ek, nonce []byte
	result    *attest.Result
}

func (f *fakeTPM) ActivateTPM(context.Context, attest.TPMActivationRequest) (*attest.TPMActivation, error) {
	return &attest.TPMActivation{Secret: f.nonce}, nil
}

func (f *fakeTPM) VerifyTPM(_ context.Context, ev attest.TPMEvidence, nonce []byte) (*attest.Result, error) {
	if !bytes.Equal(ev.EKCert, f.ek) || !bytes.Equal(nonce, f.nonce) {
		return nil, attest.ErrBadAttestation
	}
	return f.result, nil
}

func TestMintFromTPM(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := fixtureKey(t, "device.key")
	kh := keyHash(t, key)
	fake := &fakeTPM{ek: []byte("ek-cert"), nonce: []byte("0123456789abcdef0123456789abcdef"), result: &attest.Result{
		Format: "tpm", PublicKey: &key.PublicKey, KeySHA256: kh, DeviceID: "ek-abc",
		Identifiers: map[string]string{"ek_sha256": "ek-abc"}, Facts: map[string]string{"tpm_manufacturer": "id:00001014"},
	}}
	m, err := scep.NewMinter(scep.MinterConfig{Store: e.store, TPM: fake})
	if err != nil {
		t.Fatal(err)
	}
	ev := attest.TPMEvidence{EKCert: []byte("ek-cert")}

	t.Run("reject/bad_evidence", func(t *testing.T) {
		_, _, _, err := m.MintFromTPM(ctx, attest.TPMEvidence{EKCert: []byte("other")}, fake.nonce, scep.MintRequest{Profile: "attested"})
		if !errors.Is(err, scep.ErrAttestation) {
			t.Fatalf("err %v, want ErrAttestation", err)
		}
	})
	t.Run("reject/device_not_proven", func(t *testing.T) {
		_, _, _, err := m.MintFromTPM(ctx, ev, fake.nonce, scep.MintRequest{Profile: "attested", DeviceID: "someone-else"})
		if !errors.Is(err, scep.ErrInvalidRequest) {
			t.Fatalf("err %v, want ErrInvalidRequest", err)
		}
	})

	var value string
	t.Run("ok/mint", func(t *testing.T) {
		v, ch, a, err := m.MintFromTPM(ctx, ev, fake.nonce, scep.MintRequest{Profile: "attested", Actor: "admin:test"})
		if err != nil {
			t.Fatal(err)
		}
		value = v
		if ch.DeviceID != "ek-abc" || ch.KeySHA256 != kh || ch.AttestationID != a.ID || ch.Source != scep.SourceAttestation {
			t.Errorf("challenge %+v", ch)
		}
		got, err := e.store.FindAttestationByKey(ctx, kh)
		if err != nil || got.ID != a.ID || got.Format != "tpm" || got.Facts["ek_sha256"] != "ek-abc" {
			t.Errorf("stored attestation %v %+v", err, got)
		}
	})
	t.Run("reject/nonce_replay", func(t *testing.T) {
		_, _, _, err := m.MintFromTPM(ctx, ev, fake.nonce, scep.MintRequest{Profile: "attested"})
		if !errors.Is(err, scep.ErrNonce) {
			t.Fatalf("err %v, want ErrNonce", err)
		}
	})
	t.Run("ok/enroll_attested", func(t *testing.T) {
		cert, err := e.client("attested").Enroll(ctx, sceptest.Request{Key: key, Challenge: value, Subject: pkix.Name{CommonName: "ek-abc"}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.store.GetCert(ctx, store.HashCert(cert))
		if err != nil {
			t.Fatal(err)
		}
		if !b.Attested || b.DeviceID != "ek-abc" || b.AttestationID == "" {
			t.Errorf("binding %+v", b)
		}
	})
	t.Run("reject/no_tpm_configured", func(t *testing.T) {
		plain, err := scep.NewMinter(scep.MinterConfig{Store: e.store})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := plain.MintFromTPM(ctx, ev, fake.nonce, scep.MintRequest{Profile: "attested"}); !errors.Is(err, scep.ErrConfig) {
			t.Fatalf("err %v, want ErrConfig", err)
		}
	})
}

// TestMintFromTPMRealVerifier runs the whole TPM flow against the real
// attest.Verifier with attesttest's software TPM: activate, certify the
// SCEP key with the activated nonce, mint, enroll.
func TestMintFromTPMRealVerifier(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	auth, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := auth.NewTPMDevice()
	if err != nil {
		t.Fatal(err)
	}
	m, err := scep.NewMinter(scep.MinterConfig{Store: e.store, TPM: attest.New(auth.Roots())})
	if err != nil {
		t.Fatal(err)
	}
	act, err := m.ActivateTPM(ctx, dev.ActivationRequest())
	if err != nil {
		t.Fatal(err)
	}
	nonce, err := dev.ActivateCredential(act)
	if err != nil {
		t.Fatal(err)
	}
	key := fixtureKey(t, "device.key")
	ev, err := dev.Evidence(&key.PublicKey, nonce)
	if err != nil {
		t.Fatal(err)
	}
	value, ch, a, err := m.MintFromTPM(ctx, ev, nonce, scep.MintRequest{Profile: "attested"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.DeviceID != dev.EKID() || a.Format != "tpm" || ch.KeySHA256 != keyHash(t, key) {
		t.Errorf("challenge %+v attestation %+v", ch, a)
	}
	if _, _, _, err := m.MintFromTPM(ctx, ev, nonce, scep.MintRequest{Profile: "attested"}); !errors.Is(err, scep.ErrNonce) {
		t.Errorf("replayed evidence: %v, want ErrNonce", err)
	}
	cert, err := e.client("attested").Enroll(ctx, sceptest.Request{Key: key, Challenge: value, Subject: pkix.Name{CommonName: dev.EKID()}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.store.GetCert(ctx, store.HashCert(cert))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Attested || b.AttestationID != a.ID {
		t.Errorf("binding %+v", b)
	}
	if got := e.metrics.last(); got != "scep/tpm/ok" {
		t.Errorf("metric %q", got)
	}
}
