package scep_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	smscep "github.com/smallstep/scep"

	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store/badger/badgertest"
)

// FuzzPKIOperationInner fuzzes what lies inside the envelope: the fuzzer's
// bytes are encrypted to the RA and signed, so they pass the envelope
// checks and reach the CSR parser, the CSR policy, the challengePassword
// and CSR attribute handling, the identity extraction and, for a
// RenewalReq, the renewal signer checks. mode picks the envelope: 0 a
// PKCSReq signed by a self-signed certificate over the device key, 1 a
// RenewalReq signed by a certificate this CA issued, 2 a RenewalReq
// signed by a self-signed certificate. Every answer must be a CertRep
// (200) or a 4xx, never a panic or a 500.
func FuzzPKIOperationInner(f *testing.F) {
	e := newEnv(f, nil)
	ctx := f.Context()
	certs, _, err := e.client("").GetCACert(ctx)
	if err != nil {
		f.Fatal(err)
	}
	key := fixtureKey(f, "device.key")
	selfSigned, _, err := sceptest.SelfSigned(key, pkix.Name{CommonName: "dev1"})
	if err != nil {
		f.Fatal(err)
	}
	// A certificate of ours over the same key signs the renewals.
	issued, err := e.client("corp").Enroll(ctx, sceptest.Request{Key: key,
		Challenge: e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"}), Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		f.Fatal(err)
	}
	seed := func(r sceptest.Request) []byte {
		der, err := sceptest.CSR(r)
		if err != nil {
			f.Fatal(err)
		}
		return der
	}
	minted := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp", TTL: scep.MaxChallengeTTL})
	f.Add(seed(sceptest.Request{Key: key, Challenge: minted, Subject: pkix.Name{CommonName: "dev1"}}), uint8(0))
	f.Add(seed(sceptest.Request{Key: key, Challenge: "let-me-in", Subject: pkix.Name{CommonName: "dev2"}}), uint8(0))
	f.Add(seed(sceptest.Request{Key: key, Subject: pkix.Name{CommonName: "dev1", SerialNumber: "C02X"},
		URIs: []*url.URL{{Scheme: "IntuneDeviceId", Host: "abc"}}}), uint8(0))
	f.Add(seed(sceptest.Request{Key: key, Subject: pkix.Name{CommonName: "dev1"}}), uint8(1))
	f.Add(seed(sceptest.Request{Key: key, Subject: pkix.Name{CommonName: "other"}}), uint8(1))
	f.Add(seed(sceptest.Request{Key: key, Subject: pkix.Name{CommonName: "dev1"}}), uint8(2))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, uint8(0))
	f.Add([]byte{}, uint8(1))

	type envelope struct {
		mt     smscep.MessageType
		signer *x509.Certificate
	}
	modes := []envelope{{smscep.PKCSReq, selfSigned}, {smscep.RenewalReq, issued}, {smscep.RenewalReq, selfSigned}}
	f.Fuzz(func(t *testing.T, inner []byte, mode uint8) {
		env := modes[int(mode)%len(modes)]
		raw, err := sceptest.BuildInner(certs, inner, env.mt, env.signer, key)
		if err != nil {
			t.Skip(err) // the envelope could not be built: nothing to send
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/scep/corp?operation=PKIOperation", bytes.NewReader(raw))
		req.RemoteAddr = "127.0.0.1:1234"
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d for mode %d, %d-byte inner message: %s", rec.Code, mode, len(inner), rec.Body.String())
		}
	})
}

// FuzzActivateTPM fuzzes the TPM activation body (what the admin API's
// POST /api/v1/attestations/activate decodes and hands to the minter) down
// to the real verifier: any input is an activation or an error wrapping
// ErrAttestation, never a panic.
func FuzzActivateTPM(f *testing.F) {
	st := badgertest.Memory(f)
	auth, err := attesttest.NewAuthority()
	if err != nil {
		f.Fatal(err)
	}
	dev, err := auth.NewTPMDevice()
	if err != nil {
		f.Fatal(err)
	}
	m, err := scep.NewMinter(scep.MinterConfig{Store: st, TPM: attest.New(auth.Roots())})
	if err != nil {
		f.Fatal(err)
	}
	valid, err := json.Marshal(dev.ActivationRequest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/3])
	f.Add([]byte(`{"ek_cert":"MA==","ek_chain":["MA=="],"ak":{"public":"AAE=","create_data":"AA==","create_attestation":"AA==","create_signature":"AA=="}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req attest.TPMActivationRequest
		if json.Unmarshal(body, &req) != nil {
			return // the admin API answers 400 before the minter
		}
		act, err := m.ActivateTPM(t.Context(), req)
		switch {
		case err == nil && (len(act.Credential) == 0 || len(act.Secret) == 0):
			t.Fatalf("activation without a credential: %+v", act)
		case err != nil && !errors.Is(err, scep.ErrAttestation):
			t.Fatalf("error %v does not wrap ErrAttestation", err)
		}
	})
}
