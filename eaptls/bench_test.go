package eaptls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// benchConverse runs one full EAP-TLS conversation, server and peer in
// process, and fails the benchmark unless both succeed.
func benchConverse(b *testing.B, srv *Server, ptls *tls.Config) {
	benchConverseResumed(b, srv, ptls, false)
}

// benchConverseResumed also fails unless the peer resumed as wanted.
func benchConverseResumed(b *testing.B, srv *Server, ptls *tls.Config, resumed bool) {
	benchConverseRounds(b, srv, ptls, resumed)
}

// benchConverseRounds is benchConverseResumed returning the EAP round
// trips (server Steps) of the conversation.
func benchConverseRounds(b *testing.B, srv *Server, ptls *tls.Config, resumed bool) int {
	peer := NewPeer(context.Background(), PeerConfig{TLS: ptls, Identity: "bench", MTU: 1400})
	sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
	msg := peer.Identity(1)
	for i := range 20 {
		res, err := sess.Step(context.Background(), msg, nil)
		if res.Outcome == Success {
			if _, done, err := peer.Step(res.Reply); !done || err != nil {
				b.Fatalf("peer: %v %v", done, err)
			}
			if peer.Resumed() != resumed {
				b.Fatalf("resumed %v, want %v", peer.Resumed(), resumed)
			}
			sess.Close()
			peer.Close()
			return i + 1
		}
		if res.Outcome != Continue || err != nil {
			b.Fatalf("server: %v %v", res.Outcome, err)
		}
		if msg, _, err = peer.Step(res.Reply); err != nil {
			b.Fatal(err)
		}
	}
	b.Fatal("conversation did not end")
	return 0
}

func benchmarkHandshake(b *testing.B, version uint16, mod func(*ServerConfig)) {
	f := getFixture(b)
	srv := f.newServer(b, mod)
	ptls := f.peerTLS(&f.client, version)
	ptls.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		benchConverse(b, srv, ptls)
	}
	reportCPU(b, cpu)
}

// The Resumed benchmarks keep the peer's session cache: after the first
// iteration every handshake resumes from a ticket, chain check and
// Authorizer (nil here) included.
func benchmarkResumed(b *testing.B, version uint16) {
	f := getFixture(b)
	srv := f.newServer(b, func(c *ServerConfig) { c.Resumption.MaxLifetime = time.Hour })
	ptls := f.peerTLS(&f.client, version)
	ptls.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	ptls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	benchConverse(b, srv, ptls)
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		benchConverseResumed(b, srv, ptls, true)
	}
	reportCPU(b, cpu)
}

func BenchmarkHandshakeTLS12Resumed(b *testing.B) { benchmarkResumed(b, tls.VersionTLS12) }
func BenchmarkHandshakeTLS13Resumed(b *testing.B) { benchmarkResumed(b, tls.VersionTLS13) }

// Full handshakes that also issue a (lean) ticket the peer never uses
// (it asks for tickets and forgets them): the cost resumption adds to a
// full handshake.
func benchmarkTickets(b *testing.B, version uint16) {
	f := getFixture(b)
	srv := f.newServer(b, func(c *ServerConfig) { c.Resumption.MaxLifetime = time.Hour })
	ptls := f.peerTLS(&f.client, version)
	ptls.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	ptls.ClientSessionCache = forgetfulCache{}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		benchConverse(b, srv, ptls)
	}
	reportCPU(b, cpu)
}

type forgetfulCache struct{}

func (forgetfulCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (forgetfulCache) Put(string, *tls.ClientSessionState)        {}

func BenchmarkHandshakeTLS12Tickets(b *testing.B) { benchmarkTickets(b, tls.VersionTLS12) }
func BenchmarkHandshakeTLS13Tickets(b *testing.B) { benchmarkTickets(b, tls.VersionTLS13) }

func BenchmarkHandshakeTLS12(b *testing.B) { benchmarkHandshake(b, tls.VersionTLS12, nil) }
func BenchmarkHandshakeTLS13(b *testing.B) { benchmarkHandshake(b, tls.VersionTLS13, nil) }

// The same device every time: the benchmarks above hit the chain cache
// after the first iteration; these verify the chain in every handshake,
// as for a device seen for the first time.
func BenchmarkHandshakeTLS12NoChainCache(b *testing.B) {
	benchmarkHandshake(b, tls.VersionTLS12, func(c *ServerConfig) { c.ChainCache = -1 })
}
func BenchmarkHandshakeTLS13NoChainCache(b *testing.B) {
	benchmarkHandshake(b, tls.VersionTLS13, func(c *ServerConfig) { c.ChainCache = -1 })
}

// BenchmarkVerifyClientChain is the client chain check alone: a cache hit
// (hash of the certificates, lookup, validity window) against x509.Verify.
func BenchmarkVerifyClientChain(b *testing.B) {
	f := getFixture(b)
	certs := parseChain(b, f.client)
	for _, tc := range []struct {
		name  string
		cache int
	}{{"hit", 0}, {"verify", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := f.newServer(b, func(c *ServerConfig) { c.ChainCache = tc.cache })
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.verifyClientChain(certs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshakeTLS12IssuerAnchor trusts the issuing intermediate
// directly (ClientCAs = intermediate): one ECDSA verification less per
// authentication on the server.
func BenchmarkHandshakeTLS12IssuerAnchor(b *testing.B) {
	f := getFixture(b)
	pool := x509.NewCertPool()
	pool.AddCert(f.pki.inter)
	benchmarkHandshake(b, tls.VersionTLS12, func(c *ServerConfig) { c.TLS.ClientCAs = pool })
}

// benchmarkBare is the comparison point: the same mutual-auth handshake
// with plain crypto/tls over net.Pipe, same certificates and groups.
func benchmarkBare(b *testing.B, version uint16) {
	f := getFixture(b)
	scfg := &tls.Config{
		Certificates:           []tls.Certificate{f.server},
		ClientCAs:              f.pki.rootPool,
		ClientAuth:             tls.RequireAndVerifyClientCert,
		SessionTicketsDisabled: true,
		CurvePreferences:       []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	ccfg := f.peerTLS(&f.client, version)
	ccfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		cc, sc := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			c := tls.Client(cc, ccfg)
			err := c.Handshake()
			if err == nil && version == tls.VersionTLS13 {
				// Wait for the server's application byte, as EAP-TLS does.
				var buf [1]byte
				_, err = c.Read(buf[:])
			}
			errc <- err
			cc.Close()
		}()
		s := tls.Server(sc, scfg)
		err := s.Handshake()
		if err == nil && version == tls.VersionTLS13 {
			_, err = s.Write([]byte{0})
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		sc.Close()
	}
	reportCPU(b, cpu)
}

// reportCPU adds process CPU per op (both sides of the handshake, plus GC).
func reportCPU(b *testing.B, start time.Duration) {
	if end := processCPU(); end > 0 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkBareTLS12(b *testing.B) { benchmarkBare(b, tls.VersionTLS12) }
func BenchmarkBareTLS13(b *testing.B) { benchmarkBare(b, tls.VersionTLS13) }

// The hybrid post-quantum group (X25519MLKEM768, Go's default first
// choice) against the X25519 this package defaults to, on both sides:
// CPU per handshake (both sides, in process) and EAP round trips at
// Framed-MTU 1400, full and resumed (docs/radius.md, "Key exchange").
func benchmarkCurve(b *testing.B, curve tls.CurveID, resume bool) {
	f := getFixture(b)
	curves := []tls.CurveID{curve}
	srv := f.newServer(b, func(c *ServerConfig) {
		c.TLS.CurvePreferences = curves
		if resume {
			c.Resumption.MaxLifetime = time.Hour
		}
	})
	ptls := f.peerTLS(&f.client, tls.VersionTLS13)
	ptls.CurvePreferences = curves
	if resume {
		ptls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		benchConverse(b, srv, ptls)
	}
	b.ReportAllocs()
	cpu := processCPU()
	rounds := 0
	for b.Loop() {
		rounds += benchConverseRounds(b, srv, ptls, resume)
	}
	reportCPU(b, cpu)
	b.ReportMetric(float64(rounds)/float64(b.N), "rounds/op")
}

func BenchmarkCurveX25519Full(b *testing.B)         { benchmarkCurve(b, tls.X25519, false) }
func BenchmarkCurveX25519Resumed(b *testing.B)      { benchmarkCurve(b, tls.X25519, true) }
func BenchmarkCurveX25519MLKEM768Full(b *testing.B) { benchmarkCurve(b, tls.X25519MLKEM768, false) }
func BenchmarkCurveX25519MLKEM768Resumed(b *testing.B) {
	benchmarkCurve(b, tls.X25519MLKEM768, true)
}
