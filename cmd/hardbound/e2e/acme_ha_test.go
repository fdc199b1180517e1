package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/ca"
	"hardbound/store"
	"hardbound/store/postgres"
	"hardbound/store/postgres/pgtest"
)

// balancer is an L4 load balancer without affinity in front of the
// enrollment listeners of some nodes: every request opens a connection to
// the next node in turn (no keep-alive), while the URL, and so the Host
// header and the TLS name, stay those of the first node, as a client
// behind one balancer name sees it. Nodes can be swapped (a restart
// binds new ports).
type balancer struct {
	mu    sync.Mutex
	nodes []*instance
	next  int
	dials map[int]int // node index -> connections
}

func (b *balancer) setNodes(nodes ...*instance) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nodes = nodes
}

func (b *balancer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	b.mu.Lock()
	i := b.next % len(b.nodes)
	b.next++
	addr := b.nodes[i].Addr("enroll-https")
	if b.dials == nil {
		b.dials = map[int]int{}
	}
	b.dials[i]++
	b.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (b *balancer) client(t *testing.T, root *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: root, MinVersion: tls.VersionTLS12},
		DialContext:       b.dial,
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 20 * time.Second, Transport: tr}
}

// acmeDevice is one TPM device enrolling with the --dev attestation
// authority of the nodes' shared data.
type acmeDevice struct {
	serial string
	key    *ecdsa.PrivateKey
	csr    []byte
}

func newACMEDevice(t *testing.T, serial string) *acmeDevice {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &acmeDevice{serial: serial, key: key, csr: csr}
}

// upToFinalize runs newOrder, the authorization, the device-attest-01
// answer and finalize, and returns the finalized order.
func (d *acmeDevice) upToFinalize(ctx context.Context, cl *acmetest.Client, auth *attesttest.Authority) (*acmetest.Order, error) {
	o, err := cl.NewOrder(ctx, acme.TypePermanentIdentifier, d.serial)
	if err != nil {
		return nil, err
	}
	ch, keyAuth, err := cl.DeviceAttestChallenge(ctx, o)
	if err != nil {
		return nil, err
	}
	obj, err := auth.TPM(d.key.Public(), d.serial, keyAuth)
	if err != nil {
		return nil, err
	}
	if _, err := cl.AnswerDeviceAttest(ctx, ch, obj); err != nil {
		return nil, err
	}
	fin, err := cl.Finalize(ctx, o, d.csr)
	if err != nil {
		return nil, err
	}
	if fin.Status != "valid" || fin.Certificate == "" {
		return nil, fmt.Errorf("finalized order is %q", fin.Status)
	}
	return fin, nil
}

func (d *acmeDevice) tlsCert(chain []*x509.Certificate) tls.Certificate {
	c := tls.Certificate{PrivateKey: d.key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// TestE2EACMEKillAfterFinalize: a node on Badger is killed with SIGKILL
// right after it answered a finalize, five times; after each restart the
// client downloads the certificate it was told about (no orphans: the
// order and its certificate are durable with the issuance), and the
// certificate is the one bound and authenticates.
func TestE2EACMEKillAfterFinalize(t *testing.T) {
	t.Parallel()
	const rounds = 5
	in := startE2E(t, nil)
	ctx := e2eContext(t)
	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	lb := &balancer{}
	lb.setNodes(in)
	hc := lb.client(t, in.rootPool(t))
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := acmetest.New(ctx, hc, "https://"+in.Addr("enroll-https")+"/acme/directory", accountKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	orphans := 0
	for round := range rounds {
		d := newACMEDevice(t, fmt.Sprintf("tpm-kill-%d", round))
		in.cliOK(t, "device", "add", d.serial, "--platform", "linux")
		fin, err := d.upToFinalize(ctx, cl, auth)
		if err != nil {
			t.Fatalf("round %d: enrollment up to finalize: %v", round, err)
		}
		if err := in.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-in.exited
		in = startTest(t, in.cfg)
		lb.setNodes(in)
		chain, err := cl.Certificate(ctx, fin.Certificate)
		if err != nil {
			orphans++
			t.Errorf("round %d: certificate committed before the kill does not download after the restart: %v", round, err)
			continue
		}
		rec, err := in.st.GetCert(ctx, chain[0])
		if err != nil || rec.DeviceID != d.serial || rec.SHA256 != store.HashCert(chain[0]) {
			t.Fatalf("round %d: downloaded certificate's binding: %+v, %v", round, rec, err)
		}
		in.mustAccept(t, in.nasClient(t, "", nil), d.tlsCert(chain))
	}
	t.Logf("kill -9 right after finalize, %d rounds: %d orphaned certificates", rounds, orphans)
	if out := in.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify after the kills: %s", out)
	}
}

// startNodesSharingAttest is startNodes where every node also trusts the
// first node's --dev test attestation authority, as the nodes of a
// deployment trust the same attestation roots: the challenge of an
// enrollment may be verified on any of them.
func startNodesSharingAttest(t *testing.T, cl *pgtest.Cluster, n int) []*instance {
	t.Helper()
	dsn, err := cl.CreateDatabase(e2eContext(t))
	if err != nil {
		t.Fatal(err)
	}
	dsnFile := writeSecret(t, "dsn", dsn)
	var nodes []*instance
	for i := range n {
		cfg := testConfig(t)
		cfg.Store.Backend = postgres.BackendPostgres
		cfg.Store.Postgres.DSNFile = dsnFile
		if i > 0 {
			for _, dir := range []string{ca.SubDir, "audit", "dev-attest"} {
				copyDir(t, filepath.Join(nodes[0].cfg.DataDir, dir), filepath.Join(cfg.DataDir, dir))
			}
		}
		nodes = append(nodes, startTest(t, cfg))
	}
	return nodes
}

// TestE2EACMEThreeNodesRoundRobin: three nodes on one PostgreSQL behind
// a balancer without affinity. An ACME device-attest-01 enrollment whose
// every request goes to the next node completes, and the certificate
// authenticates on each node (eapol_test on one); a device enrolled with
// SCEP through node A authenticates with eapol_test on node B. Then a node is killed
// right after it answered a finalize: the certificate downloads from the
// others at once.
func TestE2EACMEThreeNodesRoundRobin(t *testing.T) {
	t.Parallel()
	requireTools(t, "eapol_test")
	cl, err := pgtest.Start()
	if err != nil {
		pgtest.Require(t, nil, err)
	}
	t.Cleanup(cl.Stop)
	nodes := startNodesSharingAttest(t, cl, 3)
	a := nodes[0]
	ctx := e2eContext(t)
	auth, err := attesttest.Load(filepath.Join(a.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	lb := &balancer{}
	lb.setNodes(nodes...)
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := acmetest.New(ctx, lb.client(t, a.rootPool(t)), "https://"+a.Addr("enroll-https")+"/acme/directory", accountKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if err := acl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	d := newACMEDevice(t, "tpm-rr-1")
	nodes[1].cliOK(t, "device", "add", d.serial, "--platform", "linux")
	fin, err := d.upToFinalize(ctx, acl, auth)
	if err != nil {
		t.Fatalf("round-robin enrollment up to finalize: %v", err)
	}
	chain, err := acl.Certificate(ctx, fin.Certificate)
	if err != nil {
		t.Fatalf("round-robin certificate download: %v", err)
	}
	lb.mu.Lock()
	dials, total := lb.dials, lb.next
	lb.mu.Unlock()
	t.Logf("enrollment over three nodes: %d requests, connections per node %v", total, dials)
	for i := range nodes {
		if dials[i] < 2 {
			t.Fatalf("node %d served %d requests of the enrollment, want at least 2 (%v)", i, dials[i], dials)
		}
	}
	cert := d.tlsCert(chain)
	for i, n := range nodes {
		if rec, err := n.st.GetCert(ctx, chain[0]); err != nil || rec.DeviceID != d.serial {
			t.Fatalf("node %d's binding: %+v, %v", i, rec, err)
		}
		n.mustAccept(t, n.nasClient(t, "", nil), cert)
	}
	caPath, certPath, keyPath := writeChainPEM(t, t.TempDir(), a.ca.Root(), chain, d.key)
	if out, err := eapolTest(t, nodes[2], caPath, certPath, keyPath); err != nil || !strings.Contains(out, "\nSUCCESS") {
		t.Fatalf("eapol_test against node C: %v\n%s", err, tailLines(out, 30))
	}
	// SCEP through node A (TPM-attested, key-bound challenge), then
	// eapol_test on node B.
	scepLeaf, scepKey := scepTPMEnroll(t, a)
	if rec, err := nodes[1].st.GetCert(ctx, scepLeaf); err != nil || rec.Protocol != "scep" || !rec.Attested {
		t.Fatalf("node B's binding for the SCEP certificate from node A: %+v, %v", rec, err)
	}
	scepCA, scepCert, scepKeyPath := writeChainPEM(t, t.TempDir(), a.ca.Root(), []*x509.Certificate{scepLeaf, a.ca.Issuing()}, scepKey)
	if out, err := eapolTest(t, nodes[1], scepCA, scepCert, scepKeyPath); err != nil || !strings.Contains(out, "\nSUCCESS") {
		t.Fatalf("eapol_test against node B with the certificate SCEP issued on node A: %v\n%s", err, tailLines(out, 30))
	}

	// Kill the node that answered the next enrollment's finalize (its
	// last request), download from the other two at once.
	d2 := newACMEDevice(t, "tpm-rr-2")
	nodes[0].cliOK(t, "device", "add", d2.serial, "--platform", "linux")
	lb.mu.Lock()
	lb.next = 0
	lb.mu.Unlock()
	lb.setNodes(nodes[1], nodes[2], nodes[0])
	fin2, err := d2.upToFinalize(ctx, acl, auth)
	if err != nil {
		t.Fatal(err)
	}
	lb.mu.Lock()
	last := lb.nodes[(lb.next-1)%len(lb.nodes)]
	lb.mu.Unlock()
	if err := last.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-last.exited
	var alive []*instance
	for _, n := range nodes {
		if n != last {
			alive = append(alive, n)
		}
	}
	lb.setNodes(alive...)
	chain2, err := acl.Certificate(ctx, fin2.Certificate)
	if err != nil {
		t.Fatalf("certificate finalized by the killed node, downloaded from another: %v", err)
	}
	alive[0].mustAccept(t, alive[0].nasClient(t, "", nil), d2.tlsCert(chain2))
	if out := alive[1].cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify: %s", out)
	}
}
