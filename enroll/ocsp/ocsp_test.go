package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/enroll/limit"
	"hardbound/enroll/ocsp"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
	"hardbound/store/policy"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	ctx   context.Context
	ca    *ca.CA
	st    store.Store
	pos   *posture.Service
	resp  *ocsp.Responder
	clock *clock
}

var testProfiles = []posture.Profile{
	{Name: policy.DefaultProfile, Formats: policy.Formats{policy.FormatTPM, policy.FormatNone}},
	{Name: "strict", Formats: policy.Formats{policy.FormatTPM}, MaxAge: time.Hour},
	{Name: "plain", Formats: policy.Formats{policy.FormatTPM, policy.FormatNone}},
}

func newFixture(t testing.TB, cfg ocsp.Config, opts ...ocsp.Option) *fixture {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	c := catest.New(t, "", ca.WithClock(clk.now))
	st := badgertest.Memory(t, badger.WithClock(clk.now))
	// posture first: the feed delivers in subscription order, so the
	// decision's cache is dropped before the responder's.
	pos, err := posture.New(st, testProfiles, posture.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pos.Close)
	r, err := ocsp.New(cfg, c, st, pos, append([]ocsp.Option{ocsp.WithClock(clk.now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return &fixture{ctx: context.Background(), ca: c, st: st, pos: pos, resp: r, clock: clk}
}

func (f *fixture) bind(t testing.TB, id, profile string) *devbind.Device {
	t.Helper()
	d, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), devbind.Request{DeviceID: id, Profile: profile, Posture: store.ComplianceCompliant})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func request(t testing.TB, leaf, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := xocsp.CreateRequest(leaf, issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// check parses resp for leaf, verifying the delegated signer chains to
// the issuing CA and carries id-kp-OCSPSigning (x/crypto checks both).
func (f *fixture) check(t *testing.T, resp []byte, leaf *x509.Certificate) *xocsp.Response {
	t.Helper()
	r, err := xocsp.ParseResponseForCert(resp, leaf, f.ca.Issuing())
	if err != nil {
		t.Fatalf("parse response: %v", err)
	}
	if r.Certificate == nil || !slicesContains(r.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		t.Fatalf("response not signed by a delegated OCSP signer")
	}
	return r
}

func slicesContains(s []x509.ExtKeyUsage, u x509.ExtKeyUsage) bool {
	for _, v := range s {
		if v == u {
			return true
		}
	}
	return false
}

func TestStatusFollowsStoreAndPosture(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{Posture: true, PostureProfiles: []string{policy.DefaultProfile, "strict"}})
	issuer := f.ca.Issuing()
	tests := []struct {
		name       string
		profile    string
		change     func(t *testing.T, d *devbind.Device)
		wantStatus int
		wantReason int
	}{
		{name: "good", wantStatus: xocsp.Good},
		{name: "quarantined/hold", change: func(t *testing.T, d *devbind.Device) {
			if _, err := f.pos.Quarantine(f.ctx, d.ID, "test"); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: xocsp.Revoked, wantReason: xocsp.CertificateHold},
		{name: "released/good-again", change: func(t *testing.T, d *devbind.Device) {
			if _, err := f.pos.Quarantine(f.ctx, d.ID, "test"); err != nil {
				t.Fatal(err)
			}
			f.answer(t, d, issuer, xocsp.Revoked, xocsp.CertificateHold)
			if _, err := f.pos.Release(f.ctx, d.ID, "test"); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: xocsp.Good},
		{name: "noncompliant/hold", change: func(t *testing.T, d *devbind.Device) {
			if _, err := f.pos.SetCompliance(f.ctx, d.ID, store.ComplianceNoncompliant, "webhook", "test"); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: xocsp.Revoked, wantReason: xocsp.CertificateHold},
		{name: "stale/hold", profile: "strict", change: func(t *testing.T, d *devbind.Device) {
			f.answer(t, d, issuer, xocsp.Good, 0)
			f.clock.add(2 * time.Hour) // past MaxAge and the cache refresh
		}, wantStatus: xocsp.Revoked, wantReason: xocsp.CertificateHold},
		{name: "revoked/keyCompromise", change: func(t *testing.T, d *devbind.Device) {
			if _, err := f.pos.RevokeCert(f.ctx, d.Binding.Serial, xocsp.KeyCompromise, "test"); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: xocsp.Revoked, wantReason: xocsp.KeyCompromise},
		{name: "device-revoked", change: func(t *testing.T, d *devbind.Device) {
			if _, _, err := f.pos.RevokeDevice(f.ctx, d.ID, xocsp.CessationOfOperation, "test"); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: xocsp.Revoked, wantReason: xocsp.CessationOfOperation},
		{name: "posture-off-profile/quarantine-is-good", profile: "plain", change: func(t *testing.T, d *devbind.Device) {
			if _, err := f.pos.Quarantine(f.ctx, d.ID, "test"); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: xocsp.Good},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.bind(t, "dev-"+strings.ReplaceAll(tt.name, "/", "-")+string(rune('a'+i)), tt.profile)
			// Warm the cache first: every change must reach the next answer.
			f.answer(t, d, issuer, xocsp.Good, 0)
			if tt.change != nil {
				tt.change(t, d)
			}
			f.answer(t, d, issuer, tt.wantStatus, tt.wantReason)
		})
	}
}

func (f *fixture) answer(t *testing.T, d *devbind.Device, issuer *x509.Certificate, status, reason int) {
	t.Helper()
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		resp, _ := f.resp.Respond(f.ctx, request(t, d.Leaf, issuer, h))
		r := f.check(t, resp, d.Leaf)
		if r.Status != status || (status == xocsp.Revoked && r.RevocationReason != reason) {
			t.Fatalf("%s: status %d reason %d, want %d reason %d", h, r.Status, r.RevocationReason, status, reason)
		}
		if !r.NextUpdate.After(r.ThisUpdate) {
			t.Fatalf("nextUpdate %s not after thisUpdate %s", r.NextUpdate, r.ThisUpdate)
		}
	}
}

func TestUnknownUnauthorizedMalformed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{Posture: true})
	d := f.bind(t, "dev1", "")
	// A certificate of this CA that has no binding: unknown.
	other, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), devbind.Request{DeviceID: "ghost", NoBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := f.resp.Respond(f.ctx, request(t, other.Leaf, f.ca.Issuing(), crypto.SHA1))
	if r := f.check(t, resp, other.Leaf); r.Status != xocsp.Unknown {
		t.Fatalf("unbound cert: status %d, want unknown", r.Status)
	}
	// Another CA's certificate: unauthorized.
	foreign := catest.New(t, "")
	resp, _ = f.resp.Respond(f.ctx, request(t, d.Leaf, foreign.Issuing(), crypto.SHA1))
	if !bytes.Equal(resp, xocsp.UnauthorizedErrorResponse) {
		t.Fatalf("foreign issuer: % x", resp)
	}
	for name, der := range map[string][]byte{
		"empty":    nil,
		"garbage":  []byte("not der"),
		"trailing": append(request(t, d.Leaf, f.ca.Issuing(), crypto.SHA1), 0),
	} {
		if resp, _ := f.resp.Respond(f.ctx, der); !bytes.Equal(resp, xocsp.MalformedRequestErrorResponse) {
			t.Errorf("%s: % x, want malformedRequest", name, resp)
		}
	}
}

func TestNonceEchoed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{})
	d := f.bind(t, "dev1", "")
	der := withNonce(t, request(t, d.Leaf, f.ca.Issuing(), crypto.SHA1), []byte("0123456789abcdef"))
	for range 2 { // the second is answered from the cached decision
		resp, cacheable := f.resp.Respond(f.ctx, der)
		if cacheable {
			t.Fatal("an answer with a nonce must not be cacheable")
		}
		f.check(t, resp, d.Leaf)
		if !bytes.Contains(resp, []byte("0123456789abcdef")) {
			t.Fatal("nonce not echoed")
		}
	}
	long := withNonce(t, request(t, d.Leaf, f.ca.Issuing(), crypto.SHA1), bytes.Repeat([]byte{1}, 33))
	if resp, _ := f.resp.Respond(f.ctx, long); !bytes.Equal(resp, xocsp.MalformedRequestErrorResponse) {
		t.Fatal("33-octet nonce accepted (RFC 8954 caps it at 32)")
	}
}

// withNonce adds a nonce requestExtension to a DER request built by
// x/crypto (which has no option for it).
func withNonce(t testing.TB, der, nonce []byte) []byte {
	t.Helper()
	var req struct {
		TBS struct {
			Raw  asn1.RawContent
			List asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal(nonce)
	ext, _ := asn1.Marshal([]struct {
		ID    asn1.ObjectIdentifier
		Value []byte
	}{{asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, val}})
	exts, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: ext})
	tbs, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: append(append([]byte{}, req.TBS.List.FullBytes...), exts...)})
	out, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: tbs})
	return out
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{})
	d := f.bind(t, "dev1", "")
	srv := httptest.NewServer(f.resp.Handler("/ocsp"))
	t.Cleanup(srv.Close)
	der := request(t, d.Leaf, f.ca.Issuing(), crypto.SHA1)

	res, err := http.Post(srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/ocsp-response" {
		t.Fatalf("content type %q", ct)
	}
	f.check(t, body, d.Leaf)

	res, err = http.Get(srv.URL + "/ocsp/" + ocspGETPath(der))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	f.check(t, body, d.Leaf)
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Fatalf("GET answer without caching headers: %q", cc)
	}

	res, err = http.Post(srv.URL+"/ocsp", "text/plain", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("wrong content type: status %d", res.StatusCode)
	}
	res, err = http.Post(srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(make([]byte, ocsp.MaxRequestBytes+10)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(body, xocsp.MalformedRequestErrorResponse) {
		t.Fatalf("oversized body: % x", body)
	}
}

func TestSignerRotates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{SignerValidity: 2 * time.Hour, Validity: 10 * time.Minute})
	d := f.bind(t, "dev1", "")
	der := request(t, d.Leaf, f.ca.Issuing(), crypto.SHA1)
	resp, _ := f.resp.Respond(f.ctx, der)
	first := f.check(t, resp, d.Leaf).Certificate
	if first.NotAfter.Sub(first.NotBefore) > 2*time.Hour+time.Minute {
		t.Fatalf("signer lives %s", first.NotAfter.Sub(first.NotBefore))
	}
	f.clock.add(61 * time.Minute)
	resp, _ = f.resp.Respond(f.ctx, der)
	second := f.check(t, resp, d.Leaf).Certificate
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("signer not rotated at half life")
	}
}

// TestAIA: with ca.WithOCSPServer, issued device certificates name the
// responder, which is how relying parties find it.
func TestAIA(t *testing.T) {
	t.Parallel()
	c := catest.New(t, "", ca.WithOCSPServer("http://enroll.example.com:8080/ocsp"))
	st := badgertest.Memory(t)
	d, err := devbind.Bind(context.Background(), c, st, time.Now(), devbind.Request{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Leaf.OCSPServer; len(got) != 1 || got[0] != "http://enroll.example.com:8080/ocsp" {
		t.Fatalf("AIA OCSP %v", got)
	}
}

// TestNonceRateLimited: past the per-address budget of signed nonce
// answers, the pre-signed answer is served without the nonce.
func TestNonceRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{NonceRate: limit.Rate{Every: time.Hour, Burst: 1}})
	d := f.bind(t, "dev1", "")
	srv := httptest.NewServer(f.resp.Handler("/ocsp"))
	t.Cleanup(srv.Close)
	der := withNonce(t, request(t, d.Leaf, f.ca.Issuing(), crypto.SHA1), []byte("0123456789abcdef"))
	for i, wantNonce := range []bool{true, false} {
		res, err := http.Post(srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		f.check(t, body, d.Leaf)
		if got := bytes.Contains(body, []byte("0123456789abcdef")); got != wantNonce {
			t.Fatalf("request %d: nonce echoed %v, want %v", i, got, wantNonce)
		}
	}
}

// TestHolds: the CRL's holds are the certificates of quarantined and
// noncompliant devices the responder answers certificateHold for, and
// leave with the hold.
func TestHolds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ocsp.Config{Posture: true})
	q := f.bind(t, "held-q", "")
	n := f.bind(t, "held-n", "")
	f.bind(t, "fine", "")
	if _, err := f.pos.Quarantine(f.ctx, q.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pos.SetCompliance(f.ctx, n.ID, store.ComplianceNoncompliant, "webhook", "test"); err != nil {
		t.Fatal(err)
	}
	held, err := f.resp.Holds(f.ctx, f.st)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range held {
		got[ca.SerialString(e.SerialNumber)] = e.ReasonCode
	}
	if len(got) != 2 || got[q.Binding.Serial] != xocsp.CertificateHold || got[n.Binding.Serial] != xocsp.CertificateHold {
		t.Fatalf("holds %v", got)
	}
	if _, err := f.pos.Release(f.ctx, q.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if held, _ = f.resp.Holds(f.ctx, f.st); len(held) != 1 {
		t.Fatalf("after release: %d holds, want 1", len(held))
	}
}
