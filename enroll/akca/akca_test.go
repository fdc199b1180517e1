package akca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"hardbound/enroll/akca"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/store"
	"hardbound/store/badger/badgertest"
)

type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type env struct {
	auth  *attesttest.Authority
	ca    *ca.CA
	audit func(t *testing.T) *store.AuditEvent
	srv   *httptest.Server
	clock *clock
}

// newEnv is an attestation CA over a real verifier trusting attesttest's
// EK manufacturer root, a real CA and an in-memory store.
func newEnv(t testing.TB, maxPending int) *env {
	t.Helper()
	auth, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	c := catest.New(t, "")
	st := badgertest.Memory(t)
	clk := &clock{}
	s, err := akca.New(akca.Config{EK: attest.New(attest.Roots{TPM: auth.Roots().TPM}, attest.WithClock(clk.now)),
		Signer: c, Audit: st, Now: clk.now, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{auth: auth, ca: c, srv: srv, clock: clk, audit: func(t *testing.T) *store.AuditEvent {
		t.Helper()
		evs, err := st.TailAudit(t.Context(), 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("tail audit: %v", err)
		}
		return evs[0]
	}}
}

// request is what the step CLI posts to /attest for dev.
func request(t testing.TB, dev *attesttest.TPMDevice) *akca.AttestRequest {
	t.Helper()
	ar := dev.ActivationRequest()
	ekCert, err := x509.ParseCertificate(ar.EKCert)
	if err != nil {
		t.Fatal(err)
	}
	var req akca.AttestRequest
	req.EK = ekCert.RawSubjectPublicKeyInfo
	req.EKCerts = [][]byte{ar.EKCert}
	req.Params.Public = ar.AK.Public
	req.Params.CreateData = ar.AK.CreateData
	req.Params.CreateAttestation = ar.AK.CreateAttestation
	req.Params.CreateSignature = ar.AK.CreateSignature
	return &req
}

func (e *env) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.srv.Client().Post(e.srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// activate runs /attest and the device's TPM2_ActivateCredential.
func (e *env) activate(t *testing.T, dev *attesttest.TPMDevice) []byte {
	t.Helper()
	status, body := e.post(t, "/attest", request(t, dev))
	if status != http.StatusOK {
		t.Fatalf("/attest = %d: %s", status, body)
	}
	var ar akca.AttestResponse
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	secret, err := dev.ActivateCredential(&attest.TPMActivation{Credential: ar.Credential, Secret: ar.Secret})
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	return secret
}

// TestCertifiedAKVerifiesInACME: the AK certificate the exchange returns
// has the profile ACME "tpm" requires, so a key the AK certifies for a
// challenge verifies with only the issuing CA as AK root, and proves the
// EK hash as the device id.
func TestCertifiedAKVerifiesInACME(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	dev, err := e.auth.NewTPMDevice()
	if err != nil {
		t.Fatal(err)
	}
	secret := e.activate(t, dev)
	status, body := e.post(t, "/secret", akca.SecretRequest{Secret: secret})
	if status != http.StatusOK {
		t.Fatalf("/secret = %d: %s", status, body)
	}
	var sr akca.SecretResponse
	if err := json.Unmarshal(body, &sr); err != nil || len(sr.Chain) != 2 {
		t.Fatalf("chain: %v %d", err, len(sr.Chain))
	}
	if !bytes.Equal(sr.Chain[1], e.ca.Issuing().Raw) {
		t.Error("chain[1] is not the issuing CA")
	}
	if ev := e.audit(t); ev.Action != "enroll.tpm.ak_certify" || ev.Result != "ok" || ev.Subject != dev.EKID() {
		t.Errorf("audit %+v", ev)
	}
	// The issuing CA that signs AK certificates also anchors EAP-TLS client
	// certificates: an AK certificate must not pass as one.
	akCert, err := x509.ParseCertificate(sr.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := akCert.Verify(x509.VerifyOptions{Roots: e.ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the AK certificate verifies as a TLS client certificate")
	}
	if len(akCert.Subject.Names) != 0 || len(akCert.UnknownExtKeyUsage) != 1 || len(akCert.ExtKeyUsage) != 0 {
		t.Errorf("AK certificate subject %q EKU %v/%v", akCert.Subject, akCert.ExtKeyUsage, akCert.UnknownExtKeyUsage)
	}

	// ACME device-attest-01 with this AK.
	const keyAuth = "tok3n.thumbprint"
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte(keyAuth))
	ev, err := dev.Evidence(&key.PublicKey, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	attObj, err := cbor.Marshal(map[string]any{"fmt": "tpm", "attStmt": map[string]any{
		"ver": "2.0", "alg": attest.COSEAlgES256, "x5c": sr.Chain,
		"sig": ev.Key.Signature, "certInfo": ev.Key.CertifyInfo, "pubArea": ev.Key.Public,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ak := x509.NewCertPool()
	ak.AddCert(e.ca.Issuing())
	res, err := attest.New(attest.Roots{TPMAK: ak}).VerifyACME(t.Context(), attObj, keyAuth)
	if err != nil {
		t.Fatalf("VerifyACME with the certified AK: %v", err)
	}
	if !res.Proves(dev.EKID()) || res.DeviceID != dev.EKID() || !key.PublicKey.Equal(res.PublicKey) {
		t.Errorf("result device %q identifiers %v, want %s", res.DeviceID, res.Identifiers, dev.EKID())
	}
	if res.Facts["tpm_manufacturer"] != "id:48424E44" || res.Facts["tpm_model"] != "attesttest-soft" {
		t.Errorf("facts %v", res.Facts)
	}
}

// TestRefusals: what the attestation CA refuses, with the status and an
// audit event.
func TestRefusals(t *testing.T) {
	t.Parallel()
	other, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		run    func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte)
		status int
		text   string
	}{
		{"no_ek_certificate", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			r := request(t, dev)
			r.EKCerts = nil
			return e.post(t, "/attest", r)
		}, http.StatusForbidden, "no EK certificate"},
		{"ek_of_an_untrusted_vendor", func(t *testing.T, e *env, _ *attesttest.TPMDevice) (int, []byte) {
			d, err := other.NewTPMDevice()
			if err != nil {
				t.Fatal(err)
			}
			return e.post(t, "/attest", request(t, d))
		}, http.StatusForbidden, "EK certificate"},
		{"ek_key_mismatch", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			r := request(t, dev)
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			r.EK, _ = x509.MarshalPKIXPublicKey(&k.PublicKey)
			return e.post(t, "/attest", r)
		}, http.StatusForbidden, "no EK certificate for the EK"},
		{"tpm12", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			r := request(t, dev)
			r.Params.UseTCSDActivationFormat = true
			return e.post(t, "/attest", r)
		}, http.StatusForbidden, "TPM 1.2"},
		{"forged_ak_creation", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			r := request(t, dev)
			r.Params.CreateSignature = bytes.Clone(r.Params.CreateSignature)
			r.Params.CreateSignature[len(r.Params.CreateSignature)-1] ^= 1
			return e.post(t, "/attest", r)
		}, http.StatusForbidden, "AK"},
		{"not_json", func(t *testing.T, e *env, _ *attesttest.TPMDevice) (int, []byte) {
			return e.post(t, "/attest", []byte("{"))
		}, http.StatusBadRequest, ""},
		{"oversize", func(t *testing.T, e *env, _ *attesttest.TPMDevice) (int, []byte) {
			return e.post(t, "/attest", []byte(`{"ek":"`+strings.Repeat("A", 80<<10)+`"}`))
		}, http.StatusRequestEntityTooLarge, ""},
		{"unknown_secret", func(t *testing.T, e *env, _ *attesttest.TPMDevice) (int, []byte) {
			return e.post(t, "/secret", akca.SecretRequest{Secret: bytes.Repeat([]byte{7}, 32)})
		}, http.StatusForbidden, "unknown"},
		{"replayed_secret", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			secret := e.activate(t, dev)
			if status, body := e.post(t, "/secret", akca.SecretRequest{Secret: secret}); status != http.StatusOK {
				t.Fatalf("first /secret = %d: %s", status, body)
			}
			return e.post(t, "/secret", akca.SecretRequest{Secret: secret})
		}, http.StatusForbidden, "unknown, used or expired"},
		{"expired_secret", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			secret := e.activate(t, dev)
			e.clock.advance(akca.DefaultPendingTTL + time.Second)
			return e.post(t, "/secret", akca.SecretRequest{Secret: secret})
		}, http.StatusForbidden, "unknown, used or expired"},
		{"pending_table_full", func(t *testing.T, e *env, dev *attesttest.TPMDevice) (int, []byte) {
			e.activate(t, dev) // the one slot
			return e.post(t, "/attest", request(t, dev))
		}, http.StatusForbidden, "too many"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			dev, err := e.auth.NewTPMDevice()
			if err != nil {
				t.Fatal(err)
			}
			status, body := tc.run(t, e, dev)
			if status != tc.status || !strings.Contains(string(body), tc.text) {
				t.Fatalf("status %d %q, want %d with %q", status, body, tc.status, tc.text)
			}
			if ev := e.audit(t); ev.Action != "enroll.tpm.ak_certify" || ev.Result != "reject" {
				t.Errorf("audit %+v, want a reject", ev)
			}
		})
	}
}

// FuzzAttest feeds arbitrary /attest and /secret bodies to the handler:
// every answer is 200 or a 4xx, never a 500 or a panic.
func FuzzAttest(f *testing.F) {
	e := newEnv(f, 0)
	dev, err := e.auth.NewTPMDevice()
	if err != nil {
		f.Fatal(err)
	}
	valid, err := json.Marshal(request(f, dev))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, false)
	f.Add(valid[:len(valid)/2], false)
	f.Add([]byte(`{"tpmInfo":{},"ekCerts":["AAAA"],"params":{"public":"AAE="}}`), false)
	f.Add([]byte(`{"secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), true)
	f.Add([]byte(`null`), true)
	h := e.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte, secret bool) {
		path := "/attest"
		if secret {
			path = "/secret"
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("%s: status %d for %q: %s", path, rec.Code, body, rec.Body.String())
		}
	})
}

// BenchmarkCertifyAK measures one AK certification over httptest: /attest
// (EK chain, AK checks, MakeCredential), the software TPM's
// ActivateCredential, /secret (AK certificate signed by the CA).
func BenchmarkCertifyAK(b *testing.B) {
	e := newEnv(b, 0)
	dev, err := e.auth.NewTPMDevice()
	if err != nil {
		b.Fatal(err)
	}
	req, err := json.Marshal(request(b, dev))
	if err != nil {
		b.Fatal(err)
	}
	post := func(path string, body []byte) []byte {
		resp, err := e.srv.Client().Post(e.srv.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s = %d: %s", path, resp.StatusCode, out.Bytes())
		}
		return out.Bytes()
	}
	for b.Loop() {
		var ar akca.AttestResponse
		if err := json.Unmarshal(post("/attest", req), &ar); err != nil {
			b.Fatal(err)
		}
		secret, err := dev.ActivateCredential(&attest.TPMActivation{Credential: ar.Credential, Secret: ar.Secret})
		if err != nil {
			b.Fatal(err)
		}
		body, _ := json.Marshal(akca.SecretRequest{Secret: secret})
		post("/secret", body)
	}
}

type refuseAll struct{}

func (refuseAll) Allow(string, string, string) error { return errors.New("over budget") }

// TestRateLimited: both requests are charged to the source address and a
// refused one costs no audit write.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	auth, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	st := badgertest.Memory(t)
	s, err := akca.New(akca.Config{EK: attest.New(auth.Roots()), Signer: catest.New(t, ""), Audit: st, Limiter: refuseAll{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/attest", "/secret"} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, strings.NewReader("{}"))
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusTooManyRequests {
			t.Errorf("%s = %d, want 429", path, rec.Code)
		}
	}
	if evs, err := st.TailAudit(t.Context(), 10); err != nil || len(evs) != 0 {
		t.Errorf("audit after rate-limited requests: %d events, %v", len(evs), err)
	}
}
