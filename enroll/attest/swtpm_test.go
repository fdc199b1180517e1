package attest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-attestation/attest"

	hbattest "hardbound/enroll/attest"
	"hardbound/enroll/attest/swtpmtest"
)

// swtpm is a running software TPM with an EK certificate from a private
// swtpm-localca whose root and issuer live in the test's temp dir.
type swtpm struct {
	*swtpmtest.TPM
	root   *x509.Certificate
	issuer *x509.Certificate
}

func startSWTPM(t *testing.T) *swtpm {
	t.Helper()
	p := swtpmtest.Start(t)
	return &swtpm{TPM: p, root: readCert(t, p.RootPEM), issuer: readCert(t, p.IssuerPEM)}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := hbattest.ParsePEMCerts(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return certs[0]
}

func (s *swtpm) open(t *testing.T) *attest.TPM {
	t.Helper()
	tpm := s.Open(t)
	t.Cleanup(func() { _ = tpm.Close() })
	return tpm
}

func (s *swtpm) roots() hbattest.Roots {
	p := x509.NewCertPool()
	p.AddCert(s.root)
	return hbattest.Roots{TPM: p}
}

func rsaEK(t *testing.T, tpm *attest.TPM) attest.EK {
	t.Helper()
	eks, err := tpm.EKs()
	if err != nil {
		t.Fatalf("EKs: %v", err)
	}
	for _, ek := range eks {
		if ek.Certificate != nil {
			return ek
		}
	}
	t.Fatal("swtpm has no EK with a certificate")
	return attest.EK{}
}

func akParams(ak *attest.AK) hbattest.TPMAKParams {
	p := ak.AttestationParameters()
	return hbattest.TPMAKParams{Public: p.Public, CreateData: p.CreateData, CreateAttestation: p.CreateAttestation, CreateSignature: p.CreateSignature}
}

func certify(t *testing.T, tpm *attest.TPM, ak *attest.AK, qual []byte) (*attest.Key, hbattest.TPMKeyCertification) {
	t.Helper()
	k, err := tpm.NewKey(ak, &attest.KeyConfig{Algorithm: attest.ECDSA, Size: 256, QualifyingData: qual})
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	cp := k.CertificationParameters()
	return k, hbattest.TPMKeyCertification{Public: cp.Public, CertifyInfo: cp.CreateAttestation, Signature: cp.CreateSignature}
}

// TestVerifyTPMWithSWTPM drives a genuine TPM 2.0 (swtpm with a real EK
// certificate) through the SCEP flow: ActivateTPM -> TPM2_ActivateCredential
// -> TPM2_Certify with the nonce -> VerifyTPM.
func TestVerifyTPMWithSWTPM(t *testing.T) {
	sw := startSWTPM(t)
	tpm := sw.open(t)
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	nonceKey := bytes.Repeat([]byte{42}, 32)
	v := hbattest.New(sw.roots(), hbattest.WithClock(clock), hbattest.WithTPMNonceKey(nonceKey))

	ek := rsaEK(t, tpm)
	ak, err := tpm.NewAK(nil)
	if err != nil {
		t.Fatalf("NewAK: %v", err)
	}
	req := hbattest.TPMActivationRequest{EKCert: ek.Certificate.Raw, EKChain: [][]byte{sw.issuer.Raw}, AK: akParams(ak)}
	act, err := v.ActivateTPM(ctx, req)
	if err != nil {
		t.Fatalf("ActivateTPM: %v", err)
	}
	nonce, err := ak.ActivateCredential(tpm, attest.EncryptedCredential{Credential: act.Credential, Secret: act.Secret})
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	key, kc := certify(t, tpm, ak, nonce)
	ev := hbattest.TPMEvidence{EKCert: req.EKCert, EKChain: req.EKChain, AK: req.AK, Key: kc}

	res, err := v.VerifyTPM(ctx, ev, nonce)
	if err != nil {
		t.Fatalf("VerifyTPM: %v", err)
	}
	if !res.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Error("attested key differs from the TPM key")
	}
	ekSum := sha256.Sum256(ek.Certificate.RawSubjectPublicKeyInfo)
	if res.DeviceID != hex.EncodeToString(ekSum[:]) || !res.Proves(res.Identifiers["ek_urn"]) {
		t.Errorf("DeviceID = %q, identifiers %v", res.DeviceID, res.Identifiers)
	}
	if res.Facts["tpm_model"] != "swtpm" || res.Facts["tpm_manufacturer"] != "id:00001014" {
		t.Errorf("facts = %v", res.Facts)
	}
	// The certified key signs for the CSR (docs/attestation.md §3.3).
	priv, err := key.Private(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("csr"))
	if _, err := priv.(crypto.Signer).Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Errorf("TPM key cannot sign: %v", err)
	}
	// swtpm has only a few transient object slots.
	_ = key.Close()

	// Genuine-evidence negatives. swtpm has 3 transient object slots, so
	// keys and AKs are flushed as soon as they are no longer needed.
	kOther, kcOther := certify(t, tpm, ak, []byte("0123456789abcdef0123456789abcdef"))
	_ = kOther.Close()
	ak2, err := tpm.NewAK(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ak2.Close(tpm) })
	act2, err := v.ActivateTPM(ctx, hbattest.TPMActivationRequest{EKCert: req.EKCert, EKChain: req.EKChain, AK: akParams(ak2)})
	if err != nil {
		t.Fatal(err)
	}
	// A credential made for ak2 must not activate under ak.
	if _, err := ak.ActivateCredential(tpm, attest.EncryptedCredential{Credential: act2.Credential, Secret: act2.Secret}); err == nil {
		t.Error("credential for ak2 activated under ak")
	}
	_ = ak.Close(tpm)
	nonce2, err := ak2.ActivateCredential(tpm, attest.EncryptedCredential{Credential: act2.Credential, Secret: act2.Secret})
	if err != nil {
		t.Fatal(err)
	}
	k2, kc2 := certify(t, tpm, ak2, nonce2)
	_ = k2.Close()
	tampered := ev
	tampered.Key.Signature = bytes.Clone(kc.Signature)
	tampered.Key.Signature[len(tampered.Key.Signature)-1] ^= 1
	swapped := ev
	swapped.Key = kc2 // certified by ak2, presented under ak
	wrongPool := x509.NewCertPool()
	wrongPool.AddCert(authRoot(t))

	tests := map[string]struct {
		v       *hbattest.Verifier
		ev      hbattest.TPMEvidence
		nonce   []byte
		want    string
		notConf bool
	}{
		"fail/wrong-nonce":          {v: v, ev: ev, nonce: bytes.Repeat([]byte{7}, 32), want: "nonce was not issued"},
		"fail/nonce-of-other-ak":    {v: v, ev: ev, nonce: nonce2, want: "nonce was not issued"},
		"fail/qualifying-data":      {v: v, ev: hbattest.TPMEvidence{EKCert: ev.EKCert, EKChain: ev.EKChain, AK: ev.AK, Key: kcOther}, nonce: nonce, want: "extraData does not match"},
		"fail/short-nonce":          {v: v, ev: ev, nonce: nonce[:16], want: "nonce is 16 bytes"},
		"fail/expired-nonce":        {v: hbattest.New(sw.roots(), hbattest.WithTPMNonceKey(nonceKey), hbattest.WithClock(func() time.Time { return now.Add(11 * time.Minute) })), ev: ev, nonce: nonce, want: "nonce expired"},
		"fail/other-nonce-key":      {v: hbattest.New(sw.roots(), hbattest.WithClock(clock)), ev: ev, nonce: nonce, want: "nonce was not issued"},
		"fail/tampered-signature":   {v: v, ev: tampered, nonce: nonce, want: "key certification"},
		"fail/key-certified-by-ak2": {v: v, ev: swapped, nonce: nonce, want: "key certification"},
		"fail/no-ek-roots":          {v: hbattest.New(hbattest.Roots{}, hbattest.WithClock(clock)), ev: ev, nonce: nonce, want: "no TPM EK roots configured", notConf: true},
		"fail/wrong-ek-root":        {v: hbattest.New(hbattest.Roots{TPM: wrongPool}, hbattest.WithClock(clock)), ev: ev, nonce: nonce, want: "EK certificate"},
		"fail/ek-missing-issuer":    {v: v, ev: hbattest.TPMEvidence{EKCert: ev.EKCert, AK: ev.AK, Key: ev.Key}, nonce: nonce, want: "EK certificate"},
		// swtpm-localca EK certs never expire (notAfter 9999), so check the
		// other edge of the validity window.
		"fail/ek-cert-not-yet-valid": {v: hbattest.New(sw.roots(), hbattest.WithTPMNonceKey(nonceKey), hbattest.WithClock(func() time.Time { return now.Add(-24 * time.Hour) })), ev: ev, nonce: nonce, want: "EK certificate"},
		"fail/ak-swapped":            {v: v, ev: hbattest.TPMEvidence{EKCert: ev.EKCert, EKChain: ev.EKChain, AK: akParams(ak2), Key: kc}, nonce: nonce, want: "nonce was not issued"},
		"fail/truncated-ak":          {v: v, ev: hbattest.TPMEvidence{EKCert: ev.EKCert, EKChain: ev.EKChain, AK: hbattest.TPMAKParams{Public: ev.AK.Public[:10], CreateData: ev.AK.CreateData, CreateAttestation: ev.AK.CreateAttestation, CreateSignature: ev.AK.CreateSignature}, Key: kc}, nonce: nonce, want: "AK"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := tt.v.VerifyTPM(ctx, tt.ev, tt.nonce)
			if err == nil {
				t.Fatalf("want error containing %q", tt.want)
			}
			if !errors.Is(err, hbattest.ErrBadAttestation) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want ErrBadAttestation containing %q", err, tt.want)
			}
			if errors.Is(err, hbattest.ErrNotConfigured) != tt.notConf {
				t.Errorf("ErrNotConfigured = %v, want %v", !tt.notConf, tt.notConf)
			}
		})
	}
	t.Run("ok/second-key-same-ak", func(t *testing.T) {
		if _, err := v.VerifyTPM(ctx, hbattest.TPMEvidence{EKCert: ev.EKCert, EKChain: ev.EKChain, AK: akParams(ak2), Key: kc2}, nonce2); err != nil {
			t.Fatalf("VerifyTPM(ak2): %v", err)
		}
	})
	if *update {
		writeSWTPMFixture(t, sw, now, nonceKey, ev, nonce)
	}

	// ACME device-attest-01 "tpm" with a genuine TPM2_Certify: the AK cert
	// comes from a (test) attestation CA, as after step CLI's /attest flow.
	t.Run("ok/acme-tpm-genuine", func(t *testing.T) {
		a, _ := authorities(t)
		akPub, err := attest.ParseAKPublic(akParams(ak2).Public)
		if err != nil {
			t.Fatal(err)
		}
		akCert, err := a.IssueAKCert(akPub.Public, "swtpm-device-1")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(keyAuth))
		k, kc := certify(t, tpm, ak2, sum[:])
		defer k.Close()
		alg := int64(hbattest.COSEAlgRS256)
		if _, ok := akPub.Public.(*ecdsa.PublicKey); ok {
			alg = hbattest.COSEAlgES256
		}
		attObj, err := cbor.Marshal(map[string]any{"fmt": "tpm", "attStmt": map[string]any{
			"ver": "2.0", "alg": alg, "x5c": [][]byte{akCert},
			"sig": kc.Signature, "certInfo": kc.CertifyInfo, "pubArea": kc.Public,
		}})
		if err != nil {
			t.Fatal(err)
		}
		av := hbattest.New(a.Roots(), hbattest.WithClock(clock))
		res, err := av.VerifyACME(ctx, attObj, keyAuth)
		if err != nil {
			t.Fatalf("VerifyACME(genuine tpm): %v", err)
		}
		if !res.Proves("swtpm-device-1") || !res.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Errorf("result = %+v", res)
		}
		if _, err := av.VerifyACME(ctx, attObj, token+".b3RoZXI"); err == nil || !strings.Contains(err.Error(), "extraData") {
			t.Errorf("wrong keyAuthorization: %v", err)
		}
	})
}

var update = flag.Bool("update", false, "rewrite testdata/attest fixtures from real peers")

// swtpmFixture is genuine swtpm evidence for VerifyTPM, replayable without
// swtpm: the verifier's nonce key and clock are recorded with it.
type swtpmFixture struct {
	Note       string               `json:"note"`
	CapturedAt time.Time            `json:"captured_at"`
	NonceKey   []byte               `json:"nonce_key"`
	EKRootPEM  string               `json:"ek_root_pem"`
	Evidence   hbattest.TPMEvidence `json:"evidence"`
	Nonce      []byte               `json:"nonce"`
}

const swtpmFixturePath = "../../testdata/attest/swtpm-scep-evidence.json"

func writeSWTPMFixture(t *testing.T, sw *swtpm, at time.Time, key []byte, ev hbattest.TPMEvidence, nonce []byte) {
	t.Helper()
	fx := swtpmFixture{
		Note:       "genuine swtpm 0.7 evidence (EK cert from swtpm-localca, go-attestation AK, TPM2_Certify with the ActivateTPM nonce); regenerate with go test ./enroll/attest -run SWTPM -update",
		CapturedAt: at.UTC().Truncate(time.Second),
		NonceKey:   key,
		EKRootPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sw.root.Raw})),
		Evidence:   ev,
		Nonce:      nonce,
	}
	b, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(swtpmFixturePath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(swtpmFixturePath, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyTPMSWTPMFixture replays recorded genuine swtpm evidence, so the
// TPM verifier is exercised against real TPM output even where swtpm is
// not installed.
func TestVerifyTPMSWTPMFixture(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(swtpmFixturePath)
	if err != nil {
		t.Fatalf("fixture missing (run with -update where swtpm exists): %v", err)
	}
	var fx swtpmFixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	pool, err := hbattest.PoolFromPEM([]byte(fx.EKRootPEM))
	if err != nil {
		t.Fatal(err)
	}
	at := fx.CapturedAt.Add(time.Minute)
	v := hbattest.New(hbattest.Roots{TPM: pool}, hbattest.WithTPMNonceKey(fx.NonceKey), hbattest.WithClock(func() time.Time { return at }))
	res, err := v.VerifyTPM(context.Background(), fx.Evidence, fx.Nonce)
	if err != nil {
		t.Fatalf("VerifyTPM(fixture): %v", err)
	}
	if res.Facts["tpm_model"] != "swtpm" || len(res.DeviceID) != 64 {
		t.Errorf("result = %+v", res)
	}
	bad := bytes.Clone(fx.Nonce)
	bad[20] ^= 1
	if _, err := v.VerifyTPM(context.Background(), fx.Evidence, bad); !errors.Is(err, hbattest.ErrBadAttestation) {
		t.Errorf("tampered nonce: %v", err)
	}
}

func authRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	a, _ := authorities(t)
	return a.RootCerts()["tpm-ek"]
}
