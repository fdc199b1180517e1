package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/eaptls"
	"hardbound/enroll/devbind"
	"hardbound/radius/eapclient"
	"hardbound/store"
	"hardbound/store/config"
	"hardbound/store/postgres/pgtest"
)

// TestResumeRotateKeysShared: two nodes on one PostgreSQL store with one
// shared ticket-key file. A ticket issued by one node resumes on the
// other; `hardbound resume rotate-keys` on node A replaces the shared
// keys, after which a ticket from before the rotation resumes on neither:
// at once on A, and on B as soon as it has read the store (its poll is 10 s
// with key_rotation 160s). Tickets issued after the rotation resume on
// both nodes again.
func TestResumeRotateKeysShared(t *testing.T) {
	t.Parallel()
	cl, err := pgtest.Start()
	if err != nil {
		pgtest.Require(t, nil, err)
	}
	t.Cleanup(cl.Stop)
	var kek [32]byte
	_, _ = rand.Read(kek[:])
	keyFile := writeSecret(t, "ticket-kek", hex.EncodeToString(kek[:]))
	nodes := startNodesWith(t, cl, 2, func(cfg *node.Config) {
		cfg.RADIUS.Resumption.SharedKeyFile = keyFile
		cfg.RADIUS.Resumption.KeyRotation = config.Duration(160 * time.Second)
	})
	a, b := nodes[0], nodes[1]
	nasA, nasB := a.nasClient(t, "", nil), b.nasClient(t, "", nil)
	dev := a.bind(t, devbind.Request{DeviceID: "shared-rotate", Posture: store.ComplianceCompliant})
	x, y := tls.NewLRUClientSessionCache(1), tls.NewLRUClientSessionCache(1)
	auth := func(in *instance, c *eapclient.Client, cache tls.ClientSessionCache) bool {
		t.Helper()
		res := in.authenticateResuming(t, c, dev.Certificate, cache)
		if !res.Accepted || !res.KeysMatch {
			t.Fatalf("not accepted with matching keys: %+v; last audit: %s", res, in.lastAudit(t, "radius.auth"))
		}
		return res.Resumed
	}
	// B verifies the device's chain once (it then knows the issuing CA a
	// lean ticket names); A issues X's ticket, which resumes on B.
	auth(b, nasB, y)
	if auth(a, nasA, x) {
		t.Fatal("the first authentication on A resumed")
	}
	if !auth(b, nasB, x) {
		t.Fatal("a ticket from node A did not resume on node B (shared keys)")
	}
	if !auth(a, nasA, y) {
		t.Fatal("a ticket from node B did not resume on node A (shared keys)")
	}

	out := a.cliOK(t, "resume", "rotate-keys")
	if !strings.Contains(out, "shared: true") {
		t.Fatalf("resume rotate-keys on a shared-key node said %q", out)
	}
	if auth(a, nasA, y) {
		t.Fatal("a ticket from before the rotation resumed on the node that rotated")
	}
	start := time.Now()
	for auth(b, nasB, x) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node B still resumes tickets from before the rotation 30s after it")
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("node B dropped the old ticket keys %v after node A's rotation", time.Since(start).Round(100*time.Millisecond))
	if !auth(b, nasB, x) || !auth(a, nasA, x) {
		t.Fatal("tickets issued after the rotation do not resume on both nodes")
	}
	a.waitAuditEvent(t, "resumption.rotate_keys", "ticket_keys", "ok", "")
}

// authenticateResuming is authenticate with a client session cache, so
// the supplicant offers the ticket its last authentication got.
func (in *instance) authenticateResuming(t *testing.T, c *eapclient.Client, cert tls.Certificate, cache tls.ClientSessionCache) eapclient.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	roots := x509.NewCertPool()
	roots.AddCert(in.ca.Root())
	peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{
		TLS: &tls.Config{
			RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13, ClientSessionCache: cache,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		},
		Identity: "anonymous@e2e.test",
	})
	defer peer.Close()
	res, err := c.Authenticate(ctx, peer)
	if err != nil {
		t.Fatalf("EAP-TLS conversation failed: %v (result %+v)", err, res)
	}
	return res
}
