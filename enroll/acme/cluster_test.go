package acme_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/limit"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
	"hardbound/store/policy"
	"hardbound/store/storetest"
)

// clusterBase is the URL every node of a test cluster answers as, the
// way nodes behind one load balancer name share one base URL.
const clusterBase = "https://acme.cluster.test/acme"

// cluster is n acme.Servers over one store, with one CA and one nonce
// key, as the nodes of a deployment have them (docs/acme.md).
type cluster struct {
	nodes []*acme.Server
	store *badger.Store
	ca    *ca.CA
}

func newCluster(t *testing.T, n int, nonceKeys func(i int) []byte) *cluster {
	t.Helper()
	return newClusterTB(t, n, nonceKeys)
}

func newBenchCluster(b *testing.B, n int) *cluster { return newClusterTB(b, n, sharedKey) }

func newClusterTB(t testing.TB, n int, nonceKeys func(i int) []byte) *cluster {
	t.Helper()
	c := &cluster{store: badgertest.Memory(t), ca: catest.New(t, t.TempDir())}
	auth := authority(t)
	for i := range n {
		s, err := acme.New(acme.Config{BaseURL: clusterBase, Profiles: []acme.Profile{{Name: "devices"}}, MaxOrdersPerAccount: benchOrders}, acme.Deps{
			Issuer: c.ca, Attester: attest.New(auth.Roots()), Store: c.store, Limiter: limit.New(limit.Config{}),
			Accounts: acme.StoreAccounts(c.store), NonceKey: nonceKeys(i),
		})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, s)
	}
	return c
}

func sharedKey(int) []byte { return bytes.Repeat([]byte{0x5a}, acme.NonceKeyLen) }

// roundRobin is a load balancer without affinity: each request goes to
// the next node. It records which node served what.
type roundRobin struct {
	nodes []*acme.Server
	mu    sync.Mutex
	next  int
	log   []string // "node path"
}

func (rr *roundRobin) RoundTrip(r *http.Request) (*http.Response, error) {
	rr.mu.Lock()
	i := rr.next % len(rr.nodes)
	rr.next++
	rr.log = append(rr.log, fmt.Sprintf("%d %s %s", i, r.Method, r.URL.Path))
	rr.mu.Unlock()
	w := httptest.NewRecorder()
	rr.nodes[i].Handler().ServeHTTP(w, r)
	return w.Result(), nil
}

// onNode is a client pinned to one node.
func onNode(s *acme.Server) *http.Client {
	return &http.Client{Transport: &roundRobin{nodes: []*acme.Server{s}}}
}

// TestEnrollmentRoundRobinOverTwoServers: every request of an enrollment
// (newNonce, newAccount, newOrder, authz, challenge, finalize, order,
// certificate download) goes to the other of two Servers sharing a
// store; the enrollment completes and the certificate is bound.
func TestEnrollmentRoundRobinOverTwoServers(t *testing.T) {
	t.Parallel()
	for _, format := range []string{policy.FormatApple, policy.FormatTPM} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 2, sharedKey)
			rr := &roundRobin{nodes: c.nodes}
			ctx := context.Background()
			cl, err := acmetest.New(ctx, &http.Client{Transport: rr}, clusterBase+"/directory", p256(t), jose.ES256)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.Register(ctx); err != nil {
				t.Fatal(err)
			}
			dev := p256(t)
			serial := "RR-" + strings.ToUpper(format)
			o, err := cl.NewOrder(ctx, acme.TypePermanentIdentifier, serial)
			if err != nil {
				t.Fatal(err)
			}
			ch, keyAuth, err := cl.DeviceAttestChallenge(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cl.AnswerDeviceAttest(ctx, ch, attestFor(t, authority(t), format, dev, serial, keyAuth)); err != nil {
				t.Fatal(err)
			}
			csr, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, dev)
			fin, err := cl.Finalize(ctx, o, csr)
			if err != nil {
				t.Fatal(err)
			}
			var again acmetest.Order
			if _, err := cl.Post(ctx, o.URL, nil, &again); err != nil || again.Status != "valid" || again.Certificate != fin.Certificate {
				t.Fatalf("order read on the other node: %+v, %v", again, err)
			}
			chain, err := cl.Certificate(ctx, fin.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.store.GetCert(ctx, store.HashCert(chain[0])); err != nil {
				t.Fatalf("downloaded certificate not bound: %v", err)
			}
			// Every request went to the other node than the one before.
			seen := map[string]bool{}
			for i, l := range rr.log {
				if node := l[0] - '0'; int(node) != i%2 {
					t.Fatalf("request %d (%s) not round-robin", i, l)
				}
				f := strings.Fields(l)
				seen[strings.SplitN(strings.TrimPrefix(f[2], "/acme/"), "/", 2)[0]] = true
			}
			for _, want := range []string{"directory", "new-nonce", "new-account", "new-order", "authz", "chall", "order", "cert"} {
				if !seen[want] {
					t.Errorf("no %s request in %v", want, rr.log)
				}
			}
			t.Logf("%d requests alternated over two servers: %v", len(rr.log), rr.log)
		})
	}
}

// TestNonceKeysMustAgree: with a key of its own per server (the default
// without Deps.NonceKey), a nonce from one is a badNonce on the other,
// which is why the nodes of a store share the key.
func TestNonceKeysMustAgree(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, func(int) []byte { return nil })
	ctx := context.Background()
	cl, err := acmetest.New(ctx, onNode(c.nodes[0]), clusterBase+"/directory", p256(t), jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	nonce, err := cl.Nonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, err := cl.Sign(ctx, clusterBase+"/new-account", map[string]any{"termsOfServiceAgreed": true}, acmetest.SignOptions{Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	cl.HTTP = onNode(c.nodes[1])
	r, err := cl.Send(ctx, clusterBase+"/new-account", body)
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Problem(); p == nil || p.Type != acme.ProblemBadNonce {
		t.Fatalf("node B took node A's nonce under another key: %d %s", r.Status, r.Body)
	}
}

// readyClusterOrder registers on node 0 and takes an order up to ready.
func readyClusterOrder(t *testing.T, c *cluster, serial string) (*acmetest.Client, *acmetest.Order, []byte) {
	t.Helper()
	ctx := context.Background()
	cl, err := acmetest.New(ctx, onNode(c.nodes[0]), clusterBase+"/directory", p256(t), jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	dev := p256(t)
	o, err := cl.NewOrder(ctx, acme.TypePermanentIdentifier, serial)
	if err != nil {
		t.Fatal(err)
	}
	ch, keyAuth, err := cl.DeviceAttestChallenge(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AnswerDeviceAttest(ctx, ch, attestFor(t, authority(t), policy.FormatApple, dev, serial, keyAuth)); err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, dev)
	return cl, o, csr
}

// TestConcurrentFinalizeOnTwoServersIssuesOnce: the same order finalized
// on two servers at once ends in one certificate; the other request is
// told the order is not ready, and the order names the one bound
// certificate.
func TestConcurrentFinalizeOnTwoServersIssuesOnce(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		c := newCluster(t, 2, sharedKey)
		serial := fmt.Sprintf("RACE-%d", round)
		cl, o, csr := readyClusterOrder(t, c, serial)
		ctx := context.Background()
		var bodies [2][]byte
		for i := range 2 {
			cl.HTTP = onNode(c.nodes[i])
			b, err := cl.Sign(ctx, o.Finalize, map[string]string{"csr": b64(csr)}, acmetest.SignOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bodies[i] = b
		}
		var wg sync.WaitGroup
		resps := make([]*acmetest.Response, 2)
		for i := range 2 {
			wg.Go(func() {
				r := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, o.Finalize, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/jose+json")
				c.nodes[i].Handler().ServeHTTP(r, req)
				resps[i] = &acmetest.Response{Status: r.Code, Header: r.Header(), Body: r.Body.Bytes()}
			})
		}
		wg.Wait()
		ok, notReady := 0, 0
		for _, r := range resps {
			switch p := r.Problem(); {
			case p == nil && r.Status == http.StatusOK:
				ok++
			case p != nil && p.Type == acme.ProblemOrderNotReady:
				notReady++
			default:
				t.Fatalf("finalize answered %d %s", r.Status, r.Body)
			}
		}
		certs, _, err := c.store.ListCerts(ctx, store.CertFilter{DeviceID: serial}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if ok != 1 || notReady != 1 || len(certs) != 1 {
			t.Fatalf("round %d: %d finalizes succeeded, %d not ready, %d certificates bound; want 1, 1, 1", round, ok, notReady, len(certs))
		}
		id := o.URL[strings.LastIndex(o.URL, "/")+1:]
		rec, err := c.store.GetACMEOrder(ctx, id)
		if err != nil || rec.Status != acme.StatusValid || rec.CertSHA256 != certs[0].SHA256 {
			t.Fatalf("round %d: order %+v, %v; bound %s", round, rec, err, certs[0].SHA256)
		}
	}
}

// TestIssuanceOverAMovedOrderBindsNothing: an issuance whose order moved
// on since it was read (another node) aborts whole: no certificate is
// bound, and the order can still be finalized from where it stands.
func TestIssuanceOverAMovedOrderBindsNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, sharedKey)
	cl, o, csr := readyClusterOrder(t, c, "MOVED-1")
	ctx := context.Background()
	id := o.URL[strings.LastIndex(o.URL, "/")+1:]
	before, err := c.store.GetACMEOrder(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	bumped := store.CloneACMEOrder(before)
	if err := c.store.UpdateACMEOrder(ctx, bumped, before.Version); err != nil {
		t.Fatal(err)
	}
	stale := store.CloneACMEOrder(before)
	stale.Status = acme.StatusValid
	err = c.store.RecordIssuance(ctx, store.Issuance{
		Device: &store.Device{ID: "MOVED-1", Status: store.DeviceActive}, Cert: &store.Cert{SHA256: store.Hash{9}, Serial: "abc", DeviceID: "MOVED-1"},
		Audit: &store.AuditEvent{Action: "enroll.acme", Result: "ok"}, Order: stale, OrderPrev: before.Version,
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("issuance over a moved order: %v, want ErrConflict", err)
	}
	if _, err := c.store.GetCert(ctx, store.Hash{9}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the aborted issuance bound its certificate: %v", err)
	}
	fin, err := cl.Finalize(ctx, o, csr)
	if err != nil || fin.Status != acme.StatusValid {
		t.Fatalf("finalize: %+v, %v", fin, err)
	}
}

// TestFinalizeWithTheStoreAwayBindsNothing: when the issuance cannot be
// recorded the client gets a server error, no certificate is bound and
// the order does not say valid: nothing the client was told is missing.
func TestFinalizeWithTheStoreAwayBindsNothing(t *testing.T) {
	t.Parallel()
	st := badgertest.Memory(t)
	faulty := &storetest.Faulty{Store: st}
	s, err := acme.New(acme.Config{BaseURL: clusterBase, Profiles: []acme.Profile{{Name: "devices"}}}, acme.Deps{
		Issuer: catest.New(t, t.TempDir()), Attester: attest.New(authority(t).Roots()), Store: faulty,
		Limiter: limit.New(limit.Config{}), Accounts: acme.StoreAccounts(st), NonceKey: sharedKey(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, o, csr := readyClusterOrder(t, &cluster{nodes: []*acme.Server{s}, store: st}, "AWAY-1")
	faulty.Fail = storetest.FailOn("RecordIssuance", 0, errors.New("database away"))
	_, err = cl.Finalize(context.Background(), o, csr)
	var p *acmetest.Problem
	if !errors.As(err, &p) || p.Type != acme.ProblemServerInternal {
		t.Fatalf("finalize with the store away: %v, want serverInternal", err)
	}
	certs, _, err := st.ListCerts(context.Background(), store.CertFilter{DeviceID: "AWAY-1"}, store.Page{})
	if err != nil || len(certs) != 0 {
		t.Fatalf("%d certificates bound (%v), want none", len(certs), err)
	}
	rec, err := st.GetACMEOrder(context.Background(), o.URL[strings.LastIndex(o.URL, "/")+1:])
	if err != nil || rec.Status != acme.StatusInvalid || !rec.CertSHA256.IsZero() {
		t.Fatalf("order after the failed issuance: %+v, %v", rec, err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestStoreWritesPerRequest counts the store writes each request of an
// enrollment makes (docs/acme.md, "What each request writes"): newNonce
// none, every POST one nonce claim, and the order's own compare-and-swap
// writes where its state changes.
func TestStoreWritesPerRequest(t *testing.T) {
	t.Parallel()
	st := badgertest.Memory(t)
	var (
		mu     sync.Mutex
		writes []string
	)
	faulty := &storetest.Faulty{Store: st, Fail: func(m string) error {
		switch m {
		case "ClaimNonce", "CreateACMEOrder", "UpdateACMEOrder", "RecordIssuance", "PutACMEAccount", "AppendAudit":
			mu.Lock()
			writes = append(writes, m)
			mu.Unlock()
		}
		return nil
	}}
	s, err := acme.New(acme.Config{BaseURL: clusterBase, Profiles: []acme.Profile{{Name: "devices"}}}, acme.Deps{
		Issuer: catest.New(t, t.TempDir()), Attester: attest.New(authority(t).Roots()), Store: faulty,
		Limiter: limit.New(limit.Config{}), Accounts: acme.StoreAccounts(faulty), NonceKey: sharedKey(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl, err := acmetest.New(ctx, onNode(s), clusterBase+"/directory", p256(t), jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	step := func(name string, want []string, fn func() error) {
		t.Helper()
		mu.Lock()
		writes = nil
		mu.Unlock()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mu.Lock()
		got := append([]string(nil), writes...)
		mu.Unlock()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s wrote %v, want %v", name, got, want)
		}
		t.Logf("%-28s %d writes %v", name, len(got), got)
	}
	dev := p256(t)
	const serial = "WRITES-1"
	var (
		o       *acmetest.Order
		ch      *acmetest.Challenge
		keyAuth string
		fin     *acmetest.Order
	)
	step("newNonce", nil, func() error { _, err := cl.Nonce(ctx); return err })
	step("newAccount (new)", []string{"ClaimNonce", "PutACMEAccount"}, func() error { return cl.Register(ctx) })
	step("newAccount (existing)", []string{"ClaimNonce"}, func() error {
		kid := cl.KID
		cl.KID = "" // newAccount is signed with the jwk
		err := cl.Register(ctx)
		if cl.KID != kid {
			return fmt.Errorf("existing account answered as %q, want %q", cl.KID, kid)
		}
		return err
	})
	step("newOrder", []string{"ClaimNonce", "CreateACMEOrder"}, func() error {
		o, err = cl.NewOrder(ctx, acme.TypePermanentIdentifier, serial)
		return err
	})
	step("authz (POST-as-GET)", []string{"ClaimNonce"}, func() error {
		ch, keyAuth, err = cl.DeviceAttestChallenge(ctx, o)
		return err
	})
	step("challenge (device-attest-01)", []string{"ClaimNonce", "UpdateACMEOrder"}, func() error {
		_, err := cl.AnswerDeviceAttest(ctx, ch, attestFor(t, authority(t), policy.FormatApple, dev, serial, keyAuth))
		return err
	})
	csr, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, dev)
	step("finalize", []string{"ClaimNonce", "UpdateACMEOrder", "RecordIssuance"}, func() error {
		fin, err = cl.Finalize(ctx, o, csr)
		return err
	})
	step("order (POST-as-GET)", []string{"ClaimNonce"}, func() error { _, err := cl.Post(ctx, o.URL, nil, nil); return err })
	step("certificate", []string{"ClaimNonce"}, func() error { _, err := cl.Certificate(ctx, fin.Certificate); return err })
}

// TestConcurrentChallengeOnTwoServers: one challenge answered on two
// servers at once (a client retrying through a balancer): both answers
// say valid, the order is ready once, and it finalizes.
func TestConcurrentChallengeOnTwoServers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, sharedKey)
	ctx := context.Background()
	cl, err := acmetest.New(ctx, onNode(c.nodes[0]), clusterBase+"/directory", p256(t), jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	const serial = "CHRACE-1"
	dev := p256(t)
	o, err := cl.NewOrder(ctx, acme.TypePermanentIdentifier, serial)
	if err != nil {
		t.Fatal(err)
	}
	ch, keyAuth, err := cl.DeviceAttestChallenge(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	payload := map[string]string{"attObj": b64(attestFor(t, authority(t), policy.FormatApple, dev, serial, keyAuth))}
	var bodies [2][]byte
	for i := range 2 {
		cl.HTTP = onNode(c.nodes[i])
		if bodies[i], err = cl.Sign(ctx, ch.URL, payload, acmetest.SignOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			r := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, ch.URL, bytes.NewReader(bodies[i]))
			req.Header.Set("Content-Type", "application/jose+json")
			c.nodes[i].Handler().ServeHTTP(r, req)
			codes[i] = r.Code
			if !strings.Contains(r.Body.String(), `"status":"valid"`) {
				t.Errorf("node %d answered %d %s", i, r.Code, r.Body)
			}
		})
	}
	wg.Wait()
	rec, err := c.store.GetACMEOrder(ctx, o.URL[strings.LastIndex(o.URL, "/")+1:])
	if err != nil || rec.Status != acme.StatusReady || rec.Version != 2 {
		t.Fatalf("order after two answers: %+v, %v (codes %v); want ready at version 2", rec, err, codes)
	}
	csr, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, dev)
	if fin, err := cl.Finalize(ctx, o, csr); err != nil || fin.Status != acme.StatusValid {
		t.Fatalf("finalize: %+v, %v", fin, err)
	}
}
