package eapclient

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"

	"layeh.com/radius"

	"hardbound/store"
)

// benchmarkAuth runs whole EAP-TLS authentications over loopback UDP through
// the real hardbound RADIUS server (posture.Decide on Badger deciding), one
// conversation at a time: ns/op is the latency of one authentication and,
// since client and server share the process, allocs/op counts both sides.
func benchmarkAuth(b *testing.B, version uint16, parallel bool) {
	benchmarkAuthResume(b, version, parallel, false)
}

// benchmarkAuthResume with resume: the device keeps its TLS session, so
// after the first every authentication resumes from a ticket (and is still
// decided in full by posture).
func benchmarkAuthResume(b *testing.B, version uint16, parallel, resume bool) {
	e := newEnv(b)
	d := e.device(b, "dev-bench", store.ComplianceCompliant, false)
	ctx := context.Background()
	var cache tls.ClientSessionCache
	if resume {
		cache = tls.NewLRUClientSessionCache(1)
	}
	var resumed atomic.Int64
	one := func(c *Client) {
		p := e.resumingPeer(d, version, 1400, cache)
		res, err := c.Authenticate(ctx, p)
		p.Close()
		if err != nil || !res.Accepted || !res.KeysMatch {
			b.Fatalf("accepted %v keys %v: %v", res.Accepted, res.KeysMatch, err)
		}
		if res.Resumed {
			resumed.Add(1)
		}
	}
	defer func() {
		if resume && b.N > 0 {
			b.ReportMetric(float64(resumed.Load())/float64(b.N), "resumed/op")
		}
	}()
	b.ReportAllocs()
	cpu := processCPU()
	if !parallel {
		c := e.client(b, e.auth, nil)
		for b.Loop() {
			one(c)
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			c := e.client(b, e.auth, nil)
			for pb.Next() {
				one(c)
			}
		})
	}
	// Wall time is meaningless on a shared machine; CPU per op is not
	// (both sides, GC included: compare with eaptls BenchmarkBareTLS*).
	if end := processCPU(); end > 0 && b.N > 0 {
		b.ReportMetric(float64(end-cpu)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkAuthUDPTLS12(b *testing.B)         { benchmarkAuth(b, tls.VersionTLS12, false) }
func BenchmarkAuthUDPTLS13(b *testing.B)         { benchmarkAuth(b, tls.VersionTLS13, false) }
func BenchmarkAuthUDPTLS12Parallel(b *testing.B) { benchmarkAuth(b, tls.VersionTLS12, true) }
func BenchmarkAuthUDPTLS13Parallel(b *testing.B) { benchmarkAuth(b, tls.VersionTLS13, true) }
func BenchmarkAuthUDPTLS12Resumed(b *testing.B) {
	benchmarkAuthResume(b, tls.VersionTLS12, false, true)
}
func BenchmarkAuthUDPTLS13Resumed(b *testing.B) {
	benchmarkAuthResume(b, tls.VersionTLS13, false, true)
}

// BenchmarkVerifyReply is the per-reply cost the load generator adds:
// Response Authenticator, Message-Authenticator and a parse.
func BenchmarkVerifyReply(b *testing.B) {
	secret := []byte(testSecret)
	c := testClient(secret)
	req := c.accessRequest([]byte("anonymous"), make([]byte, 1200), make([]byte, 16))
	reqB, err := c.seal(req)
	if err != nil {
		b.Fatal(err)
	}
	resp := reply(b, req, radius.CodeAccessChallenge, true, func(p *radius.Packet) {
		for range 5 {
			p.Add(attrEAPMessage, make([]byte, 253))
		}
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.verifyReply(resp, reqB); err != nil {
			b.Fatal(err)
		}
	}
}
