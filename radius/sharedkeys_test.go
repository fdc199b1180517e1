package radius

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
)

// node is one hardbound node of a shared store: its eaptls server with
// resumption and its radius Server (whose key sync is driven by hand).
type node struct {
	eap *eaptls.Server
	srv *Server
}

func newNode(t *testing.T, pki *testPKI, st store.Store, kek []byte, now func() time.Time) node {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca.cert)
	eap, err := eaptls.NewServer(eaptls.ServerConfig{
		TLS:        &tls.Config{Certificates: []tls.Certificate{pki.server.tls}, ClientCAs: pool},
		Resumption: eaptls.Resumption{MaxLifetime: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Clients:    []Client{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret), RequireMessageAuthenticator: true}},
		Resumption: Resumption{KeyRotation: time.Hour, SharedKey: kek},
	}, eap, pki.decider(), st, st, WithClock(now), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return node{eap: eap, srv: srv}
}

// authOn runs one EAP-TLS conversation of the "ok" device against n's
// eaptls server and reports whether it resumed.
func authOn(t *testing.T, n node, ptls *tls.Config) bool {
	t.Helper()
	ctx := context.Background()
	peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{TLS: ptls, Identity: "anon", MTU: 1400})
	defer peer.Close()
	sess := eaptls.NewSession[posture.Verdict](ctx, n.eap, eaptls.SessionOptions{MTU: 1400})
	defer sess.Close()
	msg := peer.Identity(1)
	for range 30 {
		res, err := sess.Step(ctx, msg, nil)
		if res.Outcome != eaptls.Continue {
			if res.Outcome != eaptls.Success || err != nil {
				t.Fatalf("server outcome %v: %v", res.Outcome, err)
			}
			if _, done, err := peer.Step(res.Reply); !done || err != nil {
				t.Fatalf("peer: %v %v", done, err)
			}
			return peer.Resumed()
		}
		if msg, _, err = peer.Step(res.Reply); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("conversation did not end")
	return false
}

// Nodes sharing a store and a key-encryption key share their ticket keys:
// a ticket from one resumes on the other; a rotation by one reaches the
// other at its next read, and the previous key still decrypts; two nodes
// rotating at once end with the same keys; a node with another
// key-encryption key cannot open them and keeps its own.
func TestSharedTicketKeys(t *testing.T) {
	t.Parallel()
	st, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pki := newPKI(t)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	kek := make([]byte, SharedKeyLen)
	kek[0] = 1
	a, b := newNode(t, pki, st, kek, now), newNode(t, pki, st, kek, now)
	ctx := context.Background()

	va, err := a.srv.refreshSharedKeys(ctx, st, 0)
	if err != nil || va != 1 {
		t.Fatalf("first node created version %d: %v", va, err)
	}
	vb, err := b.srv.refreshSharedKeys(ctx, st, 0)
	if err != nil || vb != 1 {
		t.Fatalf("second node adopted version %d: %v", vb, err)
	}
	rec, _ := st.GetTicketKeys(ctx)
	if keys, err := openTicketKeys(kek, rec.Sealed); err != nil || len(keys) != 1 {
		t.Fatalf("stored keys %d: %v", len(keys), err)
	}

	ptls := pki.peerTLS("ok", tls.VersionTLS13)
	ptls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	if authOn(t, a, ptls) {
		t.Fatal("the first authentication resumed")
	}
	if !authOn(t, b, ptls) {
		t.Fatal("a ticket from node a did not resume on node b")
	}

	// A rotation by b; a adopts it at its next read, and the ticket b
	// issued before the rotation still resumes on a (previous key).
	advance(time.Hour + time.Second)
	if vb, err = b.srv.refreshSharedKeys(ctx, st, vb); err != nil || vb != 2 {
		t.Fatalf("rotation wrote version %d: %v", vb, err)
	}
	if va, err = a.srv.refreshSharedKeys(ctx, st, va); err != nil || va != 2 {
		t.Fatalf("node a applied version %d after b's rotation: %v", va, err)
	}
	if !authOn(t, a, ptls) {
		t.Fatal("a ticket under the previous key did not resume after the rotation")
	}

	// Both due at once: one writes, the other adopts its keys.
	advance(time.Hour + time.Second)
	var wg sync.WaitGroup
	var got [2]uint64
	var errs [2]error
	for i, n := range []node{a, b} {
		wg.Go(func() { got[i], errs[i] = n.srv.refreshSharedKeys(ctx, st, 2) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || got[0] != 3 || got[1] != 3 {
		t.Fatalf("concurrent rotation: versions %v, errors %v", got, errs)
	}
	if !authOn(t, b, ptls) || !authOn(t, a, ptls) {
		t.Fatal("no resumption across nodes after a concurrent rotation")
	}

	other := make([]byte, SharedKeyLen)
	c := newNode(t, pki, st, other, now)
	if _, err := c.srv.refreshSharedKeys(ctx, st, 0); !errors.Is(err, errSealed) {
		t.Fatalf("a node with another key-encryption key: %v, want errSealed", err)
	}
	if authOn(t, c, ptls) {
		t.Fatal("a node without the shared keys resumed a shared ticket")
	}
}

func TestNewRefusesSharedKeysWithoutStore(t *testing.T) {
	pki := newPKI(t)
	_, err := New(Config{
		Clients:    []Client{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret)}},
		Resumption: Resumption{SharedKey: make([]byte, SharedKeyLen)},
	}, pki.eapServer(t), pki.decider(), newMemSessions(), &memAudit{})
	if err == nil {
		t.Fatal("New accepted shared ticket keys without a store that holds them")
	}
}

// RotateTicketKeys on one node of a shared store replaces the store's keys
// with one fresh key: a ticket from before resumes on neither node (the
// other once it read the store), and both resume the tickets issued after.
// Without a shared key it replaces this node's keys only, and a scheduled
// rotation afterwards never brings a dropped key back.
func TestRotateTicketKeysNow(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	ctx := context.Background()
	t.Run("shared", func(t *testing.T) {
		st, err := badger.Open(t.Context(), "", badger.WithInMemory())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		kek := make([]byte, SharedKeyLen)
		kek[0] = 2
		a, b := newNode(t, pki, st, kek, time.Now), newNode(t, pki, st, kek, time.Now)
		for _, n := range []node{a, b} {
			if _, err := n.srv.refreshSharedKeys(ctx, st, n.srv.tk.applied); err != nil {
				t.Fatal(err)
			}
		}
		ptls := pki.peerTLS("ok", tls.VersionTLS13)
		ptls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		authOn(t, a, ptls)
		if !authOn(t, b, ptls) {
			t.Fatal("no resumption across nodes before the rotation")
		}
		rot, err := a.srv.RotateTicketKeys(ctx)
		if err != nil || !rot.Shared || rot.Version != 2 {
			t.Fatalf("RotateTicketKeys = %+v, %v; want shared version 2", rot, err)
		}
		rec, _ := st.GetTicketKeys(ctx)
		if keys, err := openTicketKeys(kek, rec.Sealed); err != nil || len(keys) != 1 {
			t.Fatalf("stored keys after the rotation: %d, %v; want the new one alone", len(keys), err)
		}
		if v, err := b.srv.refreshSharedKeys(ctx, st, 1); err != nil || v != 2 {
			t.Fatalf("node b applied version %d: %v", v, err)
		}
		if authOn(t, b, ptls) {
			t.Fatal("a ticket from before the rotation resumed on the other node")
		}
		if !authOn(t, a, ptls) {
			t.Fatal("a ticket issued after the rotation (by b) did not resume on a")
		}
	})
	t.Run("local", func(t *testing.T) {
		eap := pki.eapServerResuming(t)
		s, err := New(Config{
			Clients:    []Client{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret)}},
			Resumption: Resumption{KeyRotation: time.Hour},
		}, eap, pki.decider(), newMemSessions(), &memAudit{})
		if err != nil {
			t.Fatal(err)
		}
		n := node{eap: eap, srv: s}
		ptls := pki.peerTLS("ok", tls.VersionTLS12)
		ptls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		if err := s.newLocalKey(true); err != nil { // a scheduled rotation
			t.Fatal(err)
		}
		authOn(t, n, ptls)
		if rot, err := s.RotateTicketKeys(ctx); err != nil || rot.Shared {
			t.Fatalf("RotateTicketKeys = %+v, %v", rot, err)
		}
		if err := s.newLocalKey(true); err != nil { // the next scheduled rotation
			t.Fatal(err)
		}
		if authOn(t, n, ptls) {
			t.Fatal("a ticket under a dropped key resumed after the next scheduled rotation")
		}
		if !authOn(t, n, ptls) {
			t.Fatal("no resumption after the drop")
		}
	})
	t.Run("off", func(t *testing.T) {
		s, err := New(Config{
			Clients: []Client{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret)}},
		}, pki.eapServer(t), pki.decider(), newMemSessions(), &memAudit{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.RotateTicketKeys(ctx); !errors.Is(err, ErrNoResumption) {
			t.Fatalf("RotateTicketKeys without resumption: %v, want ErrNoResumption", err)
		}
	})
}

// eapServerResuming is eapServer with resumption on.
func (p *testPKI) eapServerResuming(t testing.TB) *eaptls.Server {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	srv, err := eaptls.NewServer(eaptls.ServerConfig{
		TLS:        &tls.Config{Certificates: []tls.Certificate{p.server.tls}, ClientCAs: pool},
		Resumption: eaptls.Resumption{MaxLifetime: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
