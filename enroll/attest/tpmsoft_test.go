package attest_test

import (
	"context"
	"crypto"
	"errors"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/attest"
	"hardbound/store/policy"
)

// TestVerifyTPMSoftwareDevice runs the SCEP TPM flow against attesttest's
// software TPM (the --dev / bench path); swtpm_test.go runs it for real.
func TestVerifyTPMSoftwareDevice(t *testing.T) {
	t.Parallel()
	a, b := authorities(t)
	ctx := context.Background()
	now := time.Now()
	v := attest.New(a.Roots(), attest.WithClock(func() time.Time { return now }))

	d, err := a.NewTPMDevice()
	if err != nil {
		t.Fatal(err)
	}
	act, err := v.ActivateTPM(ctx, d.ActivationRequest())
	if err != nil {
		t.Fatalf("ActivateTPM: %v", err)
	}
	nonce, err := d.ActivateCredential(act)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	key := p256(t)
	ev, err := d.Evidence(key.Public(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.VerifyTPM(ctx, ev, nonce)
	if err != nil {
		t.Fatalf("VerifyTPM: %v", err)
	}
	if !res.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) || res.DeviceID != d.EKID() {
		t.Errorf("result = %+v, want key and EK id %s", res, d.EKID())
	}
	if res.Format != policy.FormatTPM || res.KeySHA256 != keyHash(t, key.Public()) || res.Facts["tpm_model"] != "attesttest-soft" {
		t.Errorf("result = %+v", res)
	}

	// A credential for another device's AK/EK must not activate here.
	d2, err := a.NewTPMDevice()
	if err != nil {
		t.Fatal(err)
	}
	act2, err := v.ActivateTPM(ctx, d2.ActivationRequest())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ActivateCredential(act2); err == nil {
		t.Error("device activated another device's credential")
	}
	nonce2, err := d2.ActivateCredential(act2)
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := d2.Evidence(key.Public(), nonce2)
	if err != nil {
		t.Fatal(err)
	}
	mixed := ev
	mixed.Key = ev2.Key // d2's AK certified, d's EK/AK presented

	badReq := d.ActivationRequest()
	badReq.AK.CreateSignature = append([]byte(nil), badReq.AK.CreateSignature...)
	badReq.AK.CreateSignature[len(badReq.AK.CreateSignature)-1] ^= 1

	tests := map[string]struct {
		ev    attest.TPMEvidence
		nonce []byte
		v     *attest.Verifier
		want  string
	}{
		"fail/nonce-for-other-device": {ev: ev, nonce: nonce2, want: "nonce was not issued"},
		"fail/key-by-other-ak":        {ev: mixed, nonce: nonce, want: "key certification"},
		"fail/ek-from-other-vendor":   {ev: ev, nonce: nonce, v: attest.New(b.Roots()), want: "EK certificate"},
		"fail/ek-cert-garbage":        {ev: attest.TPMEvidence{EKCert: []byte{0x30, 0x00}, AK: ev.AK, Key: ev.Key}, nonce: nonce, want: "ek_cert"},
		"fail/ek-chain-too-long":      {ev: attest.TPMEvidence{EKCert: ev.EKCert, EKChain: make([][]byte, 9), AK: ev.AK, Key: ev.Key}, nonce: nonce, want: "limit"},
		"fail/empty-key":              {ev: attest.TPMEvidence{EKCert: ev.EKCert, AK: ev.AK}, nonce: nonce, want: "key.public"},
		"fail/ak-signature":           {ev: attest.TPMEvidence{EKCert: ev.EKCert, AK: badReq.AK, Key: ev.Key}, nonce: nonce, want: "AK"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			vv := v
			if tt.v != nil {
				vv = tt.v
			}
			_, err := vv.VerifyTPM(ctx, tt.ev, tt.nonce)
			if err == nil || !errors.Is(err, attest.ErrBadAttestation) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrBadAttestation containing %q", err, tt.want)
			}
		})
	}
	if _, err := v.ActivateTPM(ctx, badReq); err == nil || !errors.Is(err, attest.ErrBadAttestation) {
		t.Errorf("ActivateTPM with a bad AK signature: %v", err)
	}
	if _, err := attest.New(attest.Roots{}).ActivateTPM(ctx, d.ActivationRequest()); !errors.Is(err, attest.ErrNotConfigured) {
		t.Errorf("ActivateTPM without EK roots: %v, want ErrNotConfigured", err)
	}
}
