package eaptls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"
)

func parseChain(t testing.TB, c tls.Certificate) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func TestChainCacheAnswersRepeatsAndRechecksTime(t *testing.T) {
	f := getFixture(t)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	m := &countingMetrics{}
	srv := f.newServer(t, func(c *ServerConfig) {
		c.TLS.Time = func() time.Time { return time.Unix(0, now.Load()) }
		c.Metrics = m
	})
	certs := parseChain(t, f.client)
	later := certs[0].NotAfter.Add(time.Minute)
	earlier := certs[0].NotBefore.Add(-time.Minute)

	// Refusals carry the sentinel of their cause, whether the chain was in
	// the cache (its validity window then makes the lookup a miss) or not.
	tests := []struct {
		name     string
		certs    []*x509.Certificate
		at       time.Time
		wantErr  error
		wantHit  int
		wantMiss int
	}{
		{name: "first_verification_misses", certs: certs, wantMiss: 1},
		{name: "same_certificates_hit", certs: certs, wantHit: 1, wantMiss: 1},
		// A fresh parse of the same bytes is the next handshake's view.
		{name: "same_bytes_reparsed_hit", certs: parseChain(t, f.client), wantHit: 2, wantMiss: 1},
		{name: "leaf_alone_is_another_key", certs: certs[:1], wantErr: ErrUnknownIssuer, wantHit: 2, wantMiss: 2},
		{name: "past_not_after_misses_and_fails", certs: certs, at: later, wantErr: ErrCertExpired, wantHit: 2, wantMiss: 3},
		{name: "before_not_before_misses_and_fails", certs: certs, at: earlier, wantErr: ErrCertExpired, wantHit: 2, wantMiss: 4},
		{name: "foreign_chain_misses", certs: parseChain(t, f.foreign), wantErr: ErrUnknownIssuer, wantHit: 2, wantMiss: 5},
		{name: "failures_are_not_cached", certs: parseChain(t, f.foreign), wantErr: ErrUnknownIssuer, wantHit: 2, wantMiss: 6},
		{name: "no_certificate_is_no_lookup", certs: nil, wantErr: ErrNoClientCert, wantHit: 2, wantMiss: 6},
	}
	for _, tc := range tests {
		at := time.Now()
		if !tc.at.IsZero() {
			at = tc.at
		}
		now.Store(at.UnixNano())
		chains, err := srv.verifyClientChain(tc.certs)
		if (err != nil) != (tc.wantErr != nil) || !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s: err %v, want %v", tc.name, err, tc.wantErr)
		}
		// The x509 cause stays reachable as crypto/tls reports it.
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); err != nil && tc.certs != nil && !ok {
			t.Fatalf("%s: err %v is no tls.CertificateVerificationError", tc.name, err)
		}
		if err == nil {
			if len(chains) == 0 || chains[0][0] != tc.certs[0] || len(chains[0]) != 3 {
				t.Fatalf("%s: chain %v does not start at this handshake's leaf and end at the root", tc.name, chains)
			}
			if !chains[0][2].Equal(f.pki.root) {
				t.Fatalf("%s: chain does not end at the root", tc.name)
			}
		}
		if h, ms := m.got["chain/hit"], m.got["chain/miss"]; h != tc.wantHit || ms != tc.wantMiss {
			t.Fatalf("%s: hits %d misses %d, want %d and %d", tc.name, h, ms, tc.wantHit, tc.wantMiss)
		}
	}
}

func TestChainCacheDisabled(t *testing.T) {
	f := getFixture(t)
	m := &countingMetrics{}
	srv := f.newServer(t, func(c *ServerConfig) { c.ChainCache = -1; c.Metrics = m })
	if srv.chains != nil {
		t.Fatal("negative ChainCache still built a cache")
	}
	for range 2 {
		if _, err := srv.verifyClientChain(parseChain(t, f.client)); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.got) != 0 {
		t.Fatalf("cache lookups reported without a cache: %v", m.got)
	}
}

func TestChainCacheStaysBounded(t *testing.T) {
	f := getFixture(t)
	certs := parseChain(t, f.client)
	chains := [][]*x509.Certificate{certs}
	c := newChainCache(64) // 4 per shard
	for i := range 1000 {
		c.put(chainKey([]*x509.Certificate{{Raw: fmt.Appendf(nil, "cert %d", i)}}), chains)
	}
	total := 0
	for i := range c.shards {
		if n := len(c.shards[i].m); n > c.perShard {
			t.Fatalf("shard %d holds %d entries, cap %d", i, n, c.perShard)
		}
		total += len(c.shards[i].m)
	}
	if total == 0 {
		t.Fatal("nothing cached")
	}
	if len(c.tails) != len(certs)-1 {
		t.Fatalf("%d interned CA certificates for one chain of %d", len(c.tails), len(certs))
	}
}

func TestChainCacheRefusesUnboundedTails(t *testing.T) {
	f := getFixture(t)
	leaf := parseChain(t, f.client)[0]
	c := newChainCache(1024)
	for i := range maxChainTails + 10 {
		ca := &x509.Certificate{Raw: fmt.Appendf(nil, "ca %d", i), SerialNumber: big.NewInt(int64(i)),
			Subject: pkix.Name{CommonName: "ca"}, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
		certs := []*x509.Certificate{leaf, ca}
		key := chainKey(certs)
		c.put(key, [][]*x509.Certificate{certs})
		_, ok := c.get(key, certs, time.Now())
		if want := i < maxChainTails; ok != want {
			t.Fatalf("chain %d cached = %v, want %v (tail cap %d)", i, ok, want, maxChainTails)
		}
	}
}

// TestChainCacheHandshakes runs full EAP-TLS conversations: the second
// handshake of the same device is answered from the cache and still
// succeeds with the same outcome and keys.
func TestChainCacheHandshakes(t *testing.T) {
	f := getFixture(t)
	m := &countingMetrics{}
	srv := f.newServer(t, func(c *ServerConfig) { c.Metrics = m })
	for i, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12, tls.VersionTLS13} {
		sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
		peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, version), MTU: 1400})
		c := converse(t, sess, peer, nil)
		if c.res.Outcome != Success || c.err != nil {
			t.Fatalf("handshake %d: outcome %v err %v", i, c.res.Outcome, c.err)
		}
		if vc := sess.ConnectionState().VerifiedChains; len(vc) == 0 || len(vc[0]) != 3 {
			t.Fatalf("handshake %d: verified chains %v", i, vc)
		}
		sess.Close()
		peer.Close()
	}
	if m.got["chain/hit"] != 2 || m.got["chain/miss"] != 1 {
		t.Fatalf("chain cache %v, want 1 miss then 2 hits", m.got)
	}
	// A foreign device is still refused on every attempt.
	for range 2 {
		sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
		peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.foreign, 0), MTU: 1400})
		c := converse(t, sess, peer, nil)
		if c.res.Outcome == Success {
			t.Fatal("foreign certificate accepted")
		}
		var cve *tls.CertificateVerificationError
		if err := sess.AuthErr(); err != nil && !errors.As(err, &cve) {
			t.Logf("auth err %v", err)
		}
		sess.Close()
		peer.Close()
	}
}
