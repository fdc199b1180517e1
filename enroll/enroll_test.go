package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/store/badger/badgertest"

	"hardbound/enroll"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/ca"
	"hardbound/store"
	"hardbound/store/badger"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *enroll.Service
	ca    *ca.CA
	store *badger.Store
	clk   *clock
	scep  *countingHandler
}

type countingHandler struct {
	mu    sync.Mutex
	calls int
}

func (h *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.calls++
	h.mu.Unlock()
	if _, err := io.ReadAll(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := &clock{t: time.Now()}
	dir := t.TempDir()
	c := catest.New(t, dir, ca.WithClock(clk.now))
	st := badgertest.Memory(t)
	auth, err := attesttest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	scep := &countingHandler{}
	svc, err := enroll.New(enroll.Config{
		BaseURL:      "https://enroll.example.test:8443",
		Profiles:     []enroll.Profile{{Name: "devices", Validity: 24 * time.Hour}},
		MaxBodyBytes: 1 << 10,
	}, enroll.Deps{CA: c, Store: st, Attester: attest.New(auth.Roots()), SCEP: scep}, enroll.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, ca: c, store: st, clk: clk, scep: scep}
}

// issue records a device cert the way an enrollment does.
func (f *fixture) issue(t *testing.T, device string) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cert, err := f.ca.Issue(ctx, ca.IssueRequest{PublicKey: k.Public(), DeviceID: device, Profile: ca.Profile{Name: "devices"}})
	if err != nil {
		t.Fatal(err)
	}
	now := f.clk.now()
	err = f.store.RecordIssuance(ctx, store.Issuance{
		Device: &store.Device{V: 1, ID: device, Status: store.DeviceActive, CreatedAt: now, UpdatedAt: now},
		Cert: &store.Cert{V: 1, SHA256: store.HashCert(cert), Serial: ca.SerialString(cert.SerialNumber), DeviceID: device,
			KeySHA256: store.HashKey(cert.RawSubjectPublicKeyInfo), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			Profile: "devices", Protocol: "admin", DER: cert.Raw},
		Audit: &store.AuditEvent{V: 1, Time: now, Actor: "system", Action: "enroll.issue", Subject: device, Result: "ok"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (f *fixture) revoke(t *testing.T, cert *x509.Certificate) {
	t.Helper()
	_, err := f.store.RevokeCert(context.Background(), store.HashCert(cert), store.Revocation{At: f.clk.now(), Reason: 1, Actor: "admin:test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func fetchCRL(t *testing.T, f *fixture, h http.Handler) *x509.RevocationList {
	t.Helper()
	w := get(t, h, "/crl")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(f.ca.Issuing()); err != nil {
		t.Fatalf("CRL not signed by the issuing CA: %v", err)
	}
	return crl
}

func serials(crl *x509.RevocationList) map[string]int {
	m := map[string]int{}
	for _, e := range crl.RevokedCertificateEntries {
		m[ca.SerialString(e.SerialNumber)] = e.ReasonCode
	}
	return m
}

func TestCRLFollowsRevocations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.svc.PlainHandler()
	a, b := f.issue(t, "dev-a"), f.issue(t, "dev-b")

	crl0 := fetchCRL(t, f, h)
	if len(crl0.RevokedCertificateEntries) != 0 {
		t.Fatalf("fresh CRL lists %d certs", len(crl0.RevokedCertificateEntries))
	}
	if d := crl0.NextUpdate.Sub(crl0.ThisUpdate); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("CRL validity %s, want ~24h", d)
	}

	// Writes that revoke nothing leave the CRL as built.
	f.issue(t, "dev-c")
	if crl := fetchCRL(t, f, h); crl.Number.Cmp(crl0.Number) != 0 {
		t.Fatal("CRL rebuilt without a revocation or age")
	}
	// A revocation written to the store by anyone reaches the CRL.
	f.revoke(t, a)
	crl1 := fetchCRL(t, f, h)
	if got := serials(crl1); len(got) != 1 || got[ca.SerialString(a.SerialNumber)] != 1 {
		t.Fatalf("CRL after revoking a = %v", got)
	}
	if crl1.Number.Cmp(crl0.Number) <= 0 {
		t.Fatalf("CRL number not increasing: %s then %s", crl0.Number, crl1.Number)
	}
	// Revoking it again changes nothing, so the CRL is not rebuilt.
	f.revoke(t, a)
	if crl := fetchCRL(t, f, h); crl.Number.Cmp(crl1.Number) != 0 {
		t.Fatal("CRL rebuilt after an idempotent revocation")
	}

	// A device revocation revokes its certs: b joins the CRL.
	if _, _, err := f.store.RevokeDevice(context.Background(), "dev-b", store.Revocation{At: f.clk.now(), Reason: 5, Actor: "admin:test"}, nil); err != nil {
		t.Fatal(err)
	}
	crl2 := fetchCRL(t, f, h)
	if got := serials(crl2); len(got) != 2 || got[ca.SerialString(b.SerialNumber)] != 5 {
		t.Fatalf("CRL after revoking dev-b = %v, want a and b", got)
	}

	f.clk.add(61 * time.Minute) // older than CRLMaxAge: rebuilt without a revocation
	crl3 := fetchCRL(t, f, h)
	if got := serials(crl3); len(got) != 2 {
		t.Fatalf("CRL after age-out = %v, want both", got)
	}
	if crl3.Number.Cmp(crl2.Number) <= 0 {
		t.Fatal("CRL number not increasing")
	}

	w := get(t, h, "/crl.pem")
	blk, _ := pem.Decode(w.Body.Bytes())
	if w.Code != http.StatusOK || blk == nil || blk.Type != "X509 CRL" {
		t.Fatalf("GET /crl.pem = %d, block %v", w.Code, blk)
	}
}

func TestCRLNumberMonotonicWithinOneSecond(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.svc.Handler()
	var last *big.Int
	for i := range 3 {
		f.revoke(t, f.issue(t, fmt.Sprintf("dev-%d", i)))
		n := fetchCRL(t, f, h).Number
		if last != nil && n.Cmp(last) <= 0 {
			t.Fatalf("CRL number %s after %s", n, last)
		}
		last = n
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name    string
		handler http.Handler
		method  string
		path    string
		body    string
		want    int
	}{
		{"https/acme_directory", f.svc.Handler(), http.MethodGet, "/acme/directory", "", http.StatusOK},
		{"https/crl", f.svc.Handler(), http.MethodGet, "/crl", "", http.StatusOK},
		{"https/scep", f.svc.Handler(), http.MethodPost, "/scep", "x", http.StatusOK},
		{"plain/no_acme", f.svc.PlainHandler(), http.MethodGet, "/acme/directory", "", http.StatusNotFound},
		{"plain/scep_get", f.svc.PlainHandler(), http.MethodGet, "/scep?operation=GetCACaps", "", http.StatusOK},
		{"plain/crl", f.svc.PlainHandler(), http.MethodGet, "/crl", "", http.StatusOK},
		{"plain/oversize_scep_body", f.svc.PlainHandler(), http.MethodPost, "/scep", strings.Repeat("x", 2<<10), http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			tc.handler.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("%s %s = %d, want %d (%s)", tc.method, tc.path, w.Code, tc.want, w.Body)
			}
		})
	}
}

func TestDirectoryUsesBaseURL(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := get(t, f.svc.Handler(), "/acme/directory")
	var d map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d["newNonce"] != "https://enroll.example.test:8443/acme/new-nonce" {
		t.Fatalf("newNonce = %v", d["newNonce"])
	}
}

func TestNewHTTPServerSetsTimeouts(t *testing.T) {
	t.Parallel()
	srv := enroll.NewHTTPServer("127.0.0.1:0", http.NotFoundHandler(), &tls.Config{MinVersion: tls.VersionTLS10})
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Fatalf("server timeouts not set: %+v", srv)
	}
	if srv.TLSConfig.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS floor = %x", srv.TLSConfig.MinVersion)
	}
	if plain := enroll.NewHTTPServer(":0", http.NotFoundHandler(), nil); plain.TLSConfig != nil {
		t.Fatal("plain server got a TLS config")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deps := enroll.Deps{CA: f.ca, Store: f.store, Attester: attest.New(attest.Roots{})}
	tests := []struct {
		name string
		cfg  enroll.Config
		deps enroll.Deps
	}{
		{"reject/no_profiles", enroll.Config{}, deps},
		{"reject/unknown_format", enroll.Config{Profiles: []enroll.Profile{{Name: "p", Formats: []string{"bogus"}}}}, deps},
		{"reject/duplicate_profile", enroll.Config{Profiles: []enroll.Profile{{Name: "p"}, {Name: "p"}}}, deps},
		{"reject/unknown_default", enroll.Config{Profiles: []enroll.Profile{{Name: "p"}}, DefaultProfile: "q"}, deps},
		{"reject/missing_ca", enroll.Config{Profiles: []enroll.Profile{{Name: "p"}}}, enroll.Deps{Store: f.store, Attester: deps.Attester}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := enroll.New(tc.cfg, tc.deps); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}
