package acme_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/store/badger/badgertest"

	"hardbound/enroll/acme"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/ca"
	"hardbound/enroll/limit"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/policy"
)

type recMetrics struct {
	mu          sync.Mutex
	enrollments map[string]int // format/result
	latencies   int
}

func (m *recMetrics) Enrollment(protocol, format, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enrollments[protocol+"/"+format+"/"+result]++
}

func (m *recMetrics) IssuanceLatency(string, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latencies++
}

func (m *recMetrics) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enrollments[key]
}

type env struct {
	srv     *httptest.Server
	ca      *ca.CA
	store   *badger.Store
	auth    *attesttest.Authority
	metrics *recMetrics
	dirURL  string
}

type envOpts struct {
	limits   limit.Config
	profiles []acme.Profile
	maxBody  int64
	attest   []attest.Option
	caOpts   []ca.Option
	// onDisk opens the store in a directory (fsync per write) instead of
	// in memory.
	onDisk bool
	// maxOrders is Config.MaxOrdersPerAccount (0: the default).
	maxOrders int
}

var (
	authOnce sync.Once
	authVal  *attesttest.Authority
	authErr  error
)

// authority is shared: building the test roots is the slow part.
func authority(t testing.TB) *attesttest.Authority {
	t.Helper()
	authOnce.Do(func() { authVal, authErr = attesttest.NewAuthority() })
	if authErr != nil {
		t.Fatal(authErr)
	}
	return authVal
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	dir := t.TempDir()
	c := catest.New(t, dir, o.caOpts...)
	st := badgertest.Memory(t)
	if o.onDisk {
		var err error
		if st, err = badger.Open(context.Background(), t.TempDir()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
	}
	auth := authority(t)
	if o.profiles == nil {
		o.profiles = []acme.Profile{{Name: "devices", Validity: 7 * 24 * time.Hour}}
	}
	m := &recMetrics{enrollments: map[string]int{}}
	s, err := acme.New(acme.Config{Profiles: o.profiles, MaxBodyBytes: o.maxBody, MaxOrdersPerAccount: o.maxOrders}, acme.Deps{
		Issuer:   c,
		Attester: attest.New(auth.Roots(), o.attest...),
		Store:    st,
		Limiter:  limit.New(o.limits),
	}, acme.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/acme/", s.Handler())
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return &env{srv: srv, ca: c, store: st, auth: auth, metrics: m, dirURL: srv.URL + "/acme/directory"}
}

func (e *env) client(t *testing.T) *testClient {
	t.Helper()
	c := newTestClient(t, e.srv.Client(), e.dirURL)
	c.register()
	return c
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// attestFor builds a format's attestation object for key, proving serial.
func attestFor(t *testing.T, a *attesttest.Authority, format string, key crypto.Signer, serial, keyAuth string) []byte {
	t.Helper()
	var (
		obj []byte
		err error
	)
	switch format {
	case policy.FormatApple:
		obj, err = a.Apple(key.Public(), serial, "UDID-"+serial, keyAuth)
	case policy.FormatTPM:
		obj, err = a.TPM(key.Public(), serial, keyAuth)
	case policy.FormatAndroidKey:
		obj, err = a.Android(key, serial, keyAuth)
	default:
		t.Fatalf("unknown format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestEnrollIssuesAttestedCertificate(t *testing.T) {
	t.Parallel()
	for _, format := range []string{policy.FormatApple, policy.FormatTPM, policy.FormatAndroidKey} {
		t.Run("ok/"+format, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			c := e.client(t)
			serial := "SN-" + strings.ToUpper(strings.ReplaceAll(format, "-", ""))
			o := c.newOrder(acme.TypePermanentIdentifier, serial)
			if o.Status != "pending" {
				t.Fatalf("new order status %q", o.Status)
			}
			chURL, keyAuth := c.challenge(o)
			dev := p256(t)
			var ch struct{ Status string }
			c.mustPost(chURL, attPayload(attestFor(t, e.auth, format, dev, serial, keyAuth)), http.StatusOK, &ch)
			if ch.Status != "valid" {
				t.Fatalf("challenge status %q", ch.Status)
			}
			var ord orderObj
			c.mustPost(o.location, nil, http.StatusOK, &ord)
			if ord.Status != "ready" {
				t.Fatalf("order status after challenge %q", ord.Status)
			}
			c.mustPost(o.Finalize, csrFor(t, dev, "whatever-the-device-asks"), http.StatusOK, &ord)
			if ord.Status != "valid" || ord.Certificate == "" {
				t.Fatalf("finalized order = %+v", ord)
			}
			r := c.mustPost(ord.Certificate, nil, http.StatusOK, nil)
			if ct := r.header.Get("Content-Type"); ct != "application/pem-certificate-chain" {
				t.Errorf("cert Content-Type %q", ct)
			}
			chain := parsePEMChain(t, r.body)
			if len(chain) != 2 {
				t.Fatalf("chain has %d certs, want leaf + issuing", len(chain))
			}
			leaf := chain[0]
			roots := x509.NewCertPool()
			roots.AddCert(e.ca.Root())
			inter := x509.NewCertPool()
			inter.AddCert(chain[1])
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("chain does not verify to the CA root: %v", err)
			}
			if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(dev.Public()) {
				t.Fatal("leaf key is not the device key")
			}
			devID, ok := ca.DeviceID(leaf)
			if !ok {
				t.Fatal("leaf carries no device id")
			}

			ctx := context.Background()
			rec, err := e.store.GetCert(ctx, store.HashCert(leaf))
			if err != nil {
				t.Fatalf("binding not stored: %v", err)
			}
			if rec.Protocol != "acme" || !rec.Attested || rec.DeviceID != devID || rec.AttestationID == "" || rec.Profile != "devices" {
				t.Errorf("cert record = %+v", rec)
			}
			att, err := e.store.GetAttestation(ctx, rec.AttestationID)
			if err != nil {
				t.Fatalf("attestation not stored: %v", err)
			}
			if att.Format != format || att.DeviceID != devID || att.KeySHA256 != rec.KeySHA256 {
				t.Errorf("attestation record = %+v (cert key %s)", att, rec.KeySHA256)
			}
			d, err := e.store.GetDevice(ctx, devID)
			if err != nil {
				t.Fatalf("device not stored: %v", err)
			}
			if d.Status != store.DeviceActive {
				t.Errorf("device status %q", d.Status)
			}
			evs, err := e.store.TailAudit(ctx, 1)
			if err != nil || len(evs) != 1 || evs[0].Action != "enroll.acme" || evs[0].Result != "ok" || evs[0].Actor != "device:"+devID {
				t.Errorf("last audit event = %+v, %v", evs, err)
			}
			if n := e.metrics.count("acme/" + format + "/ok"); n != 1 {
				t.Errorf("ok enrollments metric = %d", n)
			}
		})
	}
}

func TestRenewalIsANewOrderWithFreshAttestation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client(t)
	for i := range 2 {
		o := c.newOrder(acme.TypePermanentIdentifier, "SN-RENEW")
		chURL, keyAuth := c.challenge(o)
		dev := p256(t)
		c.mustPost(chURL, attPayload(attestFor(t, e.auth, policy.FormatApple, dev, "SN-RENEW", keyAuth)), http.StatusOK, nil)
		var ord orderObj
		c.mustPost(o.Finalize, csrFor(t, dev, ""), http.StatusOK, &ord)
		if ord.Status != "valid" {
			t.Fatalf("round %d: order %q", i, ord.Status)
		}
	}
	certs, _, err := e.store.ListCerts(context.Background(), store.CertFilter{DeviceID: "SN-RENEW"}, store.Page{})
	if err != nil || len(certs) != 2 {
		t.Fatalf("device has %d certs (%v), want 2", len(certs), err)
	}
}

type ecdsaPrivateKey = ecdsa.PrivateKey

func storeRevocation() store.Revocation {
	return store.Revocation{At: time.Now(), Reason: 0, Actor: "admin:test"}
}
