package scep_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/store/badger/badgertest"

	smscep "github.com/smallstep/scep"

	"hardbound/enroll/ca"
	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/policy"
)

// env is one SCEP server over httptest with a real CA and an in-memory store.
type env struct {
	t       testing.TB
	ca      *ca.CA
	store   *badger.Store
	ra      *scep.RA
	handler *scep.Handler
	minter  *scep.Minter
	srv     *httptest.Server
	metrics *recMetrics
	clock   *clock
}

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

type recMetrics struct {
	mu      sync.Mutex
	results []string
}

func (m *recMetrics) Enrollment(protocol, format, result string) {
	m.mu.Lock()
	m.results = append(m.results, protocol+"/"+format+"/"+result)
	m.mu.Unlock()
}
func (m *recMetrics) Latency(string, string, time.Duration) {}

func (m *recMetrics) last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.results) == 0 {
		return ""
	}
	return m.results[len(m.results)-1]
}

type limiterFunc func(device, ip, profile string) error

func (f limiterFunc) Allow(device, ip, profile string) error { return f(device, ip, profile) }

func defaultProfiles() []scep.Profile {
	return []scep.Profile{
		// The migration profiles admit unattested keys ("none"), as the
		// posture side of the same profile would.
		{Name: "corp", Platform: "apple", Formats: policy.Formats{policy.FormatNone, policy.FormatTPM}},
		{Name: "static", StaticChallenge: "let-me-in", Formats: policy.Formats{policy.FormatNone}},
		{Name: "attested", RequireAttestation: true, Formats: policy.Formats{policy.FormatNone, policy.FormatTPM}},
		{Name: "jamf", Identity: scep.Identity{Source: scep.IdentityCN, Alias: "serial"}, Formats: policy.Formats{policy.FormatNone, policy.FormatApple}},
		// strict is the built-in default's view: hardware formats only.
		{Name: "strict"},
		{Name: "apple-only", Formats: policy.Formats{policy.FormatApple}},
	}
}

func newEnv(t testing.TB, mutate func(*scep.Config)) *env {
	t.Helper()
	return newEnvKeyType(t, ca.KeyECDSA, mutate)
}

// newEnvKeyType is newEnv over a CA of the given key type (ca.KeyRSA for
// the clients that need RSA throughout the GetCACert chain).
func newEnvKeyType(t testing.TB, keyType string, mutate func(*scep.Config)) *env {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	var c *ca.CA
	if keyType == ca.KeyECDSA {
		// The attested profile names the attested facts (enroll/ca).
		c = catest.New(t, dir, ca.WithNames(map[string]ca.Names{"attested": {PermanentIdentifier: true, HardwareModuleName: true}}))
	} else {
		if err := ca.Init(ca.InitOptions{Dir: dir, KeyType: keyType}); err != nil {
			t.Fatal(err)
		}
		var err error
		if c, err = ca.Load(dir); err != nil {
			t.Fatal(err)
		}
	}
	st := badgertest.Memory(t)
	// A fixture RA key keeps setup fast (RSA key generation is slow under
	// the fuzzer's coverage instrumentation); LoadOrCreateRA issues its cert.
	if err := os.MkdirAll(filepath.Join(dir, "scep"), 0o700); err != nil {
		t.Fatal(err)
	}
	raPEM, err := os.ReadFile(filepath.Join("testdata", "ra.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scep", "ra.key"), raPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ra, err := scep.LoadOrCreateRA(ctx, dir, c)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ca: c, store: st, ra: ra, metrics: &recMetrics{}, clock: &clock{}}
	cfg := scep.Config{
		CA: c, Store: st, RA: ra,
		Profiles: defaultProfiles(),
		Metrics:  e.metrics,
		Now:      e.clock.now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e.handler, err = scep.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range cfg.Profiles {
		names = append(names, p.Name)
	}
	e.minter, err = scep.NewMinter(scep.MinterConfig{Store: st, Profiles: names, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/scep", e.handler)
	mux.Handle("/scep/", e.handler)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) client(profile string) *sceptest.Client {
	u := e.srv.URL + "/scep"
	if profile != "" {
		u += "/" + profile
	}
	return &sceptest.Client{URL: u, HTTP: e.srv.Client()}
}

func (e *env) mint(req scep.MintRequest) string {
	e.t.Helper()
	v, _, err := e.minter.Mint(e.t.Context(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func newKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := sceptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fixtureKey loads an RSA key from testdata.
func fixtureKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

func keyHash(t *testing.T, k *rsa.PrivateKey) store.Hash {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return store.HashKey(der)
}

func wantFailure(t *testing.T, err error, info smscep.FailInfo) {
	t.Helper()
	var f *sceptest.Failure
	if !errors.As(err, &f) {
		t.Fatalf("want CertRep FAILURE %s, got %v", string(info), err)
	}
	if f.FailInfo != info {
		t.Fatalf("failInfo = %s, want %s", string(f.FailInfo), string(info))
	}
}

// lastAudit returns the newest audit event.
func (e *env) lastAudit() *store.AuditEvent {
	e.t.Helper()
	evs, err := e.store.TailAudit(e.t.Context(), 1)
	if err != nil || len(evs) != 1 {
		e.t.Fatalf("tail audit: %v (%d events)", err, len(evs))
	}
	return evs[0]
}

func TestGetCACaps(t *testing.T) {
	e := newEnv(t, nil)
	caps, err := e.client("").GetCACaps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POSTPKIOperation", "SHA-256", "AES", "SCEPStandard", "Renewal"} {
		if !slices.Contains(caps, want) {
			t.Errorf("GetCACaps lacks %q: %v", want, caps)
		}
	}
	if slices.Contains(caps, "SHA-1") || slices.Contains(caps, "DES3") {
		t.Errorf("GetCACaps advertises weak algorithms: %v", caps)
	}
}

func TestGetCACert(t *testing.T) {
	e := newEnv(t, nil)
	certs, ct, err := e.client("").GetCACert(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ct != "application/x-x509-ca-ra-cert" {
		t.Errorf("content type %q", ct)
	}
	if len(certs) != 3 {
		t.Fatalf("got %d certs, want RA + issuing + root", len(certs))
	}
	ra := certs[0]
	if _, ok := ra.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("RA key is %T, want RSA", ra.PublicKey)
	}
	if ra.KeyUsage&x509.KeyUsageKeyEncipherment == 0 || ra.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("RA key usage %v lacks keyEncipherment/digitalSignature", ra.KeyUsage)
	}
	if err := ra.CheckSignatureFrom(e.ca.Issuing()); err != nil {
		t.Errorf("RA cert not issued by our CA: %v", err)
	}
	if !certs[1].Equal(e.ca.Issuing()) || !certs[2].Equal(e.ca.Root()) {
		t.Error("chain is not issuing, root")
	}
}

func TestLoadOrCreateRAReusesKey(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	c := catest.New(t, dir)
	first, err := scep.LoadOrCreateRA(ctx, dir, c)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "scep", "ra.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("ra.key mode %v, want 0600", fi.Mode().Perm())
	}
	second, err := scep.LoadOrCreateRA(ctx, dir, c)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Key.Equal(second.Key) || !first.Cert.Equal(second.Cert) {
		t.Error("second load did not return the stored RA")
	}
}

func TestPKCSReqMintedChallengeIssues(t *testing.T) {
	for _, useGET := range []bool{false, true} {
		name := "post"
		if useGET {
			name = "get"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := t.Context()
			value := e.mint(scep.MintRequest{DeviceID: "C02ABC", Profile: "corp"})
			key := newKey(t)
			cert, err := e.client("").Enroll(ctx, sceptest.Request{
				Key: key, Challenge: value, Subject: pkix.Name{CommonName: "C02ABC"}, UseGET: useGET,
			})
			if err != nil {
				t.Fatal(err)
			}
			if id, ok := ca.DeviceID(cert); !ok || id != "C02ABC" {
				t.Errorf("cert device id %q %v", id, ok)
			}
			if !cert.PublicKey.(*rsa.PublicKey).Equal(&key.PublicKey) {
				t.Error("cert is not for the CSR key")
			}
			b, err := e.store.GetCert(ctx, store.HashCert(cert))
			if err != nil {
				t.Fatal(err)
			}
			if b.DeviceID != "C02ABC" || b.Protocol != "scep" || b.Profile != "corp" || b.Attested || b.KeySHA256 != keyHash(t, key) {
				t.Errorf("binding %+v", b)
			}
			d, err := e.store.GetDevice(ctx, "C02ABC")
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != store.DeviceActive || d.Platform != "apple" {
				t.Errorf("device %+v", d)
			}
			ch, err := e.store.GetChallenge(ctx, store.HashChallenge(value))
			if err != nil {
				t.Fatal(err)
			}
			if ch.ConsumedAt.IsZero() {
				t.Error("challenge not consumed")
			}
			ev := e.lastAudit()
			if ev.Action != "enroll.scep.issue" || ev.Result != "ok" || ev.Subject != "C02ABC" {
				t.Errorf("audit %+v", ev)
			}
			if got := e.metrics.last(); got != "scep/none/ok" {
				t.Errorf("metric %q", got)
			}
		})
	}
}

func TestPKCSReqRefusals(t *testing.T) {
	tests := []struct {
		name    string
		profile string // URL profile
		// setup returns the request to send.
		setup  func(t *testing.T, e *env) sceptest.Request
		info   smscep.FailInfo
		reason scep.Reason
	}{
		{
			name: "reject/challenge_consumed",
			setup: func(t *testing.T, e *env) sceptest.Request {
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
				r := sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
				if _, err := e.client("").Enroll(t.Context(), r); err != nil {
					t.Fatalf("first use: %v", err)
				}
				r.Key = newKey(t)
				return r
			},
			info: smscep.BadRequest, reason: scep.ReasonChallengeConsumed,
		},
		{
			name: "reject/device_mismatch",
			setup: func(t *testing.T, e *env) sceptest.Request {
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
				return sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev2"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonDeviceMismatch,
		},
		{
			name: "reject/key_mismatch",
			setup: func(t *testing.T, e *env) sceptest.Request {
				other := newKey(t)
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp", KeySHA256: keyHash(t, other), AttestationID: "att1"})
				return sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonKeyMismatch,
		},
		{
			name: "reject/challenge_expired",
			setup: func(t *testing.T, e *env) sceptest.Request {
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp", TTL: time.Minute})
				e.clock.advance(2 * time.Minute)
				return sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonChallengeExpired,
		},
		{
			name: "reject/static_disabled_by_default",
			setup: func(t *testing.T, e *env) sceptest.Request {
				return sceptest.Request{Key: newKey(t), Challenge: "let-me-in", Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonChallengeUnknown,
		},
		{
			name:    "reject/static_wrong_value",
			profile: "static",
			setup: func(t *testing.T, e *env) sceptest.Request {
				return sceptest.Request{Key: newKey(t), Challenge: "let-me-in!", Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonChallengeUnknown,
		},
		{
			name: "reject/challenge_missing",
			setup: func(t *testing.T, e *env) sceptest.Request {
				return sceptest.Request{Key: newKey(t), Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonChallengeMissing,
		},
		{
			name:    "reject/profile_mismatch",
			profile: "static",
			setup: func(t *testing.T, e *env) sceptest.Request {
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
				return sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonProfileMismatch,
		},
		{
			name: "reject/attestation_required",
			setup: func(t *testing.T, e *env) sceptest.Request {
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "attested"})
				return sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonAttestationRequired,
		},
		{
			name: "reject/no_identity",
			setup: func(t *testing.T, e *env) sceptest.Request {
				v := e.mint(scep.MintRequest{Profile: "jamf", Source: scep.SourceJamf})
				return sceptest.Request{Key: newKey(t), Challenge: v}
			},
			info: smscep.BadRequest, reason: scep.ReasonNoIdentity,
		},
		{
			name: "reject/device_revoked",
			setup: func(t *testing.T, e *env) sceptest.Request {
				if err := e.store.PutDevice(t.Context(), &store.Device{V: 1, ID: "dev1", Status: store.DeviceRevoked,
					CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
				return sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonDeviceRevoked,
		},
		{
			name: "reject/csr_policy_small_rsa_key",
			setup: func(t *testing.T, e *env) sceptest.Request {
				k, err := rsa.GenerateKey(rand.Reader, 1024)
				if err != nil {
					t.Fatal(err)
				}
				v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
				return sceptest.Request{Key: k, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}}
			},
			info: smscep.BadRequest, reason: scep.ReasonBadCSR,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			r := tc.setup(t, e)
			_, err := e.client(tc.profile).Enroll(t.Context(), r)
			wantFailure(t, err, tc.info)
			ev := e.lastAudit()
			if ev.Result != "reject" || !strings.HasPrefix(ev.Reason, string(tc.reason)) {
				t.Errorf("audit %+v, want reject %s", ev, tc.reason)
			}
			if got := e.metrics.last(); !strings.HasSuffix(got, "/"+string(tc.reason)) {
				t.Errorf("metric %q, want reason %s", got, tc.reason)
			}
			certs, _, err := e.store.ListCerts(t.Context(), store.CertFilter{}, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if tc.reason == scep.ReasonChallengeConsumed {
				want = 1 // the first, successful use
			}
			if len(certs) != want {
				t.Errorf("%d certs recorded, want %d", len(certs), want)
			}
		})
	}
}

func TestKeyBoundChallengeIssuesAttested(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := newKey(t)
	kh := keyHash(t, key)
	// The TPM activation flow copies the identifiers into the facts.
	if err := e.store.PutAttestation(ctx, &store.Attestation{V: 1, ID: "att1", DeviceID: "ek-1", Format: "tpm", KeySHA256: kh, VerifiedAt: time.Now(),
		Facts: map[string]string{"ek_sha256": "0a1b2c3d"}}); err != nil {
		t.Fatal(err)
	}
	v := e.mint(scep.MintRequest{DeviceID: "ek-1", Profile: "attested", KeySHA256: kh, AttestationID: "att1", Source: scep.SourceAttestation})
	cert, err := e.client("attested").Enroll(ctx, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "ek-1"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.store.GetCert(ctx, store.HashCert(cert))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Attested || b.AttestationID != "att1" || b.DeviceID != "ek-1" {
		t.Errorf("binding %+v, want attested by att1", b)
	}
	checkAttestedNames(t, cert, "ek-1", ca.HWTypeTPM20, "0a1b2c3d")
	if got := e.metrics.last(); got != "scep/tpm/ok" {
		t.Errorf("metric %q", got)
	}
}

func TestStaticChallengeEnabledIssuesUnattested(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := newKey(t)
	// Even an attestation of the key does not make a static enrollment attested.
	if err := e.store.PutAttestation(ctx, &store.Attestation{V: 1, ID: "att1", DeviceID: "dev9", Format: "tpm", KeySHA256: keyHash(t, key), VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cert, err := e.client("static").Enroll(ctx, sceptest.Request{Key: key, Challenge: "let-me-in", Subject: pkix.Name{CommonName: "dev9"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.store.GetCert(ctx, store.HashCert(cert))
	if err != nil {
		t.Fatal(err)
	}
	if b.Attested || b.AttestationID != "" || b.Profile != "static" {
		t.Errorf("binding %+v, want unattested static", b)
	}
}

func TestJamfChallengeBindsDeviceAtRedemption(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := newKey(t)
	// An attestation of the same key for the same device upgrades the cert.
	if err := e.store.PutAttestation(ctx, &store.Attestation{V: 1, ID: "att7", DeviceID: "SERIAL7", Format: "apple", KeySHA256: keyHash(t, key), VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	v := e.mint(scep.MintRequest{Profile: "jamf", Source: scep.SourceJamf})
	cert, err := e.client("jamf").Enroll(ctx, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "SERIAL7"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.store.GetCert(ctx, store.HashCert(cert))
	if err != nil {
		t.Fatal(err)
	}
	if b.DeviceID != "SERIAL7" || !b.Attested || b.AttestationID != "att7" {
		t.Errorf("binding %+v", b)
	}
	d, err := e.store.FindDeviceByAlias(ctx, "serial", "SERIAL7")
	if err != nil || d.ID != "SERIAL7" {
		t.Errorf("alias lookup: %v %+v", err, d)
	}
	// The same Jamf challenge cannot enroll a second device.
	_, err = e.client("jamf").Enroll(ctx, sceptest.Request{Key: newKey(t), Challenge: v, Subject: pkix.Name{CommonName: "SERIAL8"}})
	wantFailure(t, err, smscep.BadRequest)
}

func TestRenewalReq(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := newKey(t)
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	old, err := e.client("").Enroll(ctx, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ok/new_key_same_device", func(t *testing.T) {
		nk := newKey(t)
		cert, err := e.client("").Enroll(ctx, sceptest.Request{Key: nk, Subject: pkix.Name{CommonName: "dev1"}, Renew: old, RenewKey: key})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.store.GetCert(ctx, store.HashCert(cert))
		if err != nil {
			t.Fatal(err)
		}
		if b.DeviceID != "dev1" || b.KeySHA256 != keyHash(t, nk) || b.Profile != "corp" {
			t.Errorf("binding %+v", b)
		}
		if ev := e.lastAudit(); ev.Action != "enroll.scep.renew" || ev.Result != "ok" {
			t.Errorf("audit %+v", ev)
		}
	})
	t.Run("reject/other_device_in_csr", func(t *testing.T) {
		_, err := e.client("").Enroll(ctx, sceptest.Request{Key: newKey(t), Subject: pkix.Name{CommonName: "dev2"}, Renew: old, RenewKey: key})
		wantFailure(t, err, smscep.BadRequest)
	})
	t.Run("reject/foreign_cert", func(t *testing.T) {
		fk := newKey(t)
		foreign, _, err := sceptest.SelfSigned(fk, pkix.Name{CommonName: "dev1"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.client("").Enroll(ctx, sceptest.Request{Key: newKey(t), Subject: pkix.Name{CommonName: "dev1"}, Renew: foreign, RenewKey: fk})
		wantFailure(t, err, smscep.BadCertID)
	})
	t.Run("reject/revoked_cert", func(t *testing.T) {
		if _, err := e.store.RevokeCert(ctx, store.HashCert(old), store.Revocation{At: time.Now(), Reason: 1, Actor: "test"}, nil); err != nil {
			t.Fatal(err)
		}
		_, err := e.client("").Enroll(ctx, sceptest.Request{Key: newKey(t), Subject: pkix.Name{CommonName: "dev1"}, Renew: old, RenewKey: key})
		wantFailure(t, err, smscep.BadCertID)
		if ev := e.lastAudit(); !strings.HasPrefix(ev.Reason, string(scep.ReasonRenewalRevoked)) {
			t.Errorf("audit %+v", ev)
		}
	})
}

func TestMalformedMessagesAreClientErrors(t *testing.T) {
	e := newEnv(t, nil)
	post := func(body string) int {
		resp, err := e.srv.Client().Post(e.srv.URL+"/scep?operation=PKIOperation", "application/x-pki-message", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("not a pkcs7"); got != http.StatusBadRequest {
		t.Errorf("garbage POST: %d", got)
	}
	if got := post(""); got != http.StatusBadRequest {
		t.Errorf("empty POST: %d", got)
	}
	get := func(q string) int {
		resp, err := e.srv.Client().Get(e.srv.URL + "/scep?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("operation=PKIOperation&message=%%%"); got != http.StatusBadRequest {
		t.Errorf("bad query: %d", got)
	}
	if got := get("operation=PKIOperation&message=" + url.QueryEscape("!!notbase64")); got != http.StatusBadRequest {
		t.Errorf("non-base64 message: %d", got)
	}
	if got := get("operation=Nope"); got != http.StatusBadRequest {
		t.Errorf("unknown operation: %d", got)
	}
	big := strings.Repeat("A", scep.DefaultMaxBodyBytes+1)
	if got := post(big); got != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized POST: %d", got)
	}
}

func TestWrongRecipientIsBadMessageCheck(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	// Encrypted to some other RSA certificate: the RA cannot decrypt it.
	otherKey := newKey(t)
	other, _, err := sceptest.SelfSigned(otherKey, pkix.Name{CommonName: "not the RA"})
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	signerCert, _, err := sceptest.SelfSigned(key, pkix.Name{CommonName: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sceptest.BuildMessage([]*x509.Certificate{other}, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client("").Send(ctx, raw, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sceptest.ParseCertRep(resp, signerCert, key)
	wantFailure(t, err, smscep.BadMessageCheck)
	if ev := e.lastAudit(); !strings.HasPrefix(ev.Reason, string(scep.ReasonBadMessage)) {
		t.Errorf("audit %+v", ev)
	}
}

func TestNonRSASignerIsBadAlg(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client("")
	certs, _, err := c.GetCACert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sceptest.BuildMessage(certs, sceptest.Request{Key: ek, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Send(ctx, raw, false)
	if err != nil {
		t.Fatal(err)
	}
	signerCert, _, _ := sceptest.SelfSigned(ek, pkix.Name{CommonName: "dev1"})
	_, err = sceptest.ParseCertRep(resp, signerCert, ek)
	wantFailure(t, err, smscep.BadAlg)
}

func TestRateLimitRefuses(t *testing.T) {
	tests := []struct {
		name      string
		refuse    func(device, ip, profile string) bool
		wantCalls []string
	}{
		{"reject/ip_before_decryption", func(d, ip, p string) bool { return ip != "" }, []string{"|127.0.0.1|corp"}},
		{"reject/device_after_decryption", func(d, ip, p string) bool { return d != "" }, []string{"|127.0.0.1|corp", "dev1||"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			var mu sync.Mutex
			e := newEnv(t, func(c *scep.Config) {
				c.Limiter = limiterFunc(func(device, ip, profile string) error {
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, device+"|"+ip+"|"+profile)
					if tc.refuse(device, ip, profile) {
						return errors.New("limit: rate limited")
					}
					return nil
				})
			})
			v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
			_, err := e.client("").Enroll(t.Context(), sceptest.Request{Key: fixtureKey(t, "device.key"), Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
			wantFailure(t, err, smscep.BadRequest)
			mu.Lock()
			if !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("limiter calls %q, want %q", calls, tc.wantCalls)
			}
			mu.Unlock()
			if got := e.metrics.last(); got != "scep/none/rate_limited" {
				t.Errorf("metric %q", got)
			}
			// The challenge survives a rate-limited attempt.
			ch, err := e.store.GetChallenge(t.Context(), store.HashChallenge(v))
			if err != nil || !ch.ConsumedAt.IsZero() {
				t.Errorf("challenge after refusal: %v %+v", err, ch)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	e := newEnv(t, nil)
	base := scep.Config{CA: e.ca, Store: e.store, RA: e.ra, Profiles: []scep.Profile{{Name: "a"}}}
	tests := []struct {
		name   string
		mutate func(*scep.Config)
	}{
		{"reject/no_profiles", func(c *scep.Config) { c.Profiles = nil }},
		{"reject/duplicate_profile", func(c *scep.Config) { c.Profiles = []scep.Profile{{Name: "a"}, {Name: "a"}} }},
		{"reject/slash_in_name", func(c *scep.Config) { c.Profiles = []scep.Profile{{Name: "a/b"}} }},
		{"reject/san_uri_without_prefix", func(c *scep.Config) {
			c.Profiles = []scep.Profile{{Name: "a", Identity: scep.Identity{Source: scep.IdentitySANURI}}}
		}},
		{"reject/unknown_default", func(c *scep.Config) { c.DefaultProfile = "zzz" }},
		{"reject/no_ra", func(c *scep.Config) { c.RA = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			if _, err := scep.New(cfg); !errors.Is(err, scep.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
}

func TestMintValidation(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name string
		req  scep.MintRequest
	}{
		{"reject/no_profile", scep.MintRequest{DeviceID: "d"}},
		{"reject/unknown_profile", scep.MintRequest{DeviceID: "d", Profile: "nope"}},
		{"reject/no_device_for_admin", scep.MintRequest{Profile: "corp"}},
		{"reject/ttl_over_24h", scep.MintRequest{DeviceID: "d", Profile: "corp", TTL: 25 * time.Hour}},
		{"reject/negative_ttl", scep.MintRequest{DeviceID: "d", Profile: "corp", TTL: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := e.minter.Mint(t.Context(), tc.req); !errors.Is(err, scep.ErrInvalidRequest) {
				t.Errorf("Mint: %v, want ErrInvalidRequest", err)
			}
		})
	}
	t.Run("ok/defaults", func(t *testing.T) {
		v, ch, err := e.minter.Mint(t.Context(), scep.MintRequest{DeviceID: "d", Profile: "corp"})
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 64 || ch.SHA256 != store.HashChallenge(v) || ch.Source != scep.SourceAdmin {
			t.Errorf("value %q record %+v", v, ch)
		}
		if ttl := ch.ExpiresAt.Sub(ch.CreatedAt); ttl != scep.DefaultChallengeTTL {
			t.Errorf("ttl %s", ttl)
		}
		stored, err := e.store.GetChallenge(t.Context(), ch.SHA256)
		if err != nil || stored.DeviceID != "d" {
			t.Errorf("stored %v %+v", err, stored)
		}
	})
}

// TestMintDefaultProfile: a request naming no profile gets the configured
// default, and a default that is not one of the profiles is refused at once.
func TestMintDefaultProfile(t *testing.T) {
	e := newEnv(t, nil)
	m, err := scep.NewMinter(scep.MinterConfig{Store: e.store, Profiles: []string{"corp", "static"}, DefaultProfile: "static"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, profile, want string
	}{
		{"ok/unnamed_gets_default", "", "static"},
		{"ok/named_kept", "corp", "corp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ch, err := m.Mint(t.Context(), scep.MintRequest{DeviceID: "d", Profile: tc.profile})
			if err != nil || ch.Profile != tc.want {
				t.Fatalf("Mint(profile %q) = %+v, %v; want profile %q", tc.profile, ch, err, tc.want)
			}
		})
	}
	if _, err := scep.NewMinter(scep.MinterConfig{Store: e.store, Profiles: []string{"corp"}, DefaultProfile: "nope"}); !errors.Is(err, scep.ErrConfig) {
		t.Errorf("NewMinter with a default outside Profiles: %v, want ErrConfig", err)
	}
}

func TestStaticChallengeLogsWarningAtStartup(t *testing.T) {
	var buf bytes.Buffer
	newEnv(t, func(c *scep.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "WARNING") || !strings.Contains(out, "profile=static") {
		t.Errorf("no startup warning for the static profile in:\n%s", out)
	}
	if strings.Contains(out, "let-me-in") {
		t.Error("the static challenge value was logged")
	}
	if strings.Contains(out, "profile=corp") {
		t.Error("warned about a profile without a static challenge")
	}
}

func TestConcurrentRedemptionIssuesOnce(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	key := fixtureKey(t, "device.key")
	const n = 6
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := e.client("").Enroll(ctx, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, sceptest.ErrFailure):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d enrollments succeeded with one challenge, want 1", ok)
	}
	certs, _, err := e.store.ListCerts(ctx, store.CertFilter{DeviceID: "dev1"}, store.Page{})
	if err != nil || len(certs) != 1 {
		t.Errorf("recorded certs: %v, %d", err, len(certs))
	}
}

func TestRenewalWithExpiredCertIsBadCertID(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	key := fixtureKey(t, "device.key")
	v := e.mint(scep.MintRequest{DeviceID: "dev1", Profile: "corp"})
	old, err := e.client("").Enroll(ctx, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: "dev1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(old.NotAfter.Sub(time.Now()) + time.Hour)
	_, err = e.client("").Enroll(ctx, sceptest.Request{Key: newKey(t), Subject: pkix.Name{CommonName: "dev1"}, Renew: old, RenewKey: key})
	wantFailure(t, err, smscep.BadCertID)
	if ev := e.lastAudit(); !strings.HasPrefix(ev.Reason, string(scep.ReasonRenewalExpired)) {
		t.Errorf("audit %+v", ev)
	}
}
