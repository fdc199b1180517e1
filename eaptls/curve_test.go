package eaptls

import (
	"crypto/tls"
	"testing"
)

// TestKeyExchangeGroup: with the default group list the server settles on
// X25519 for full and resumed TLS 1.3 handshakes, whatever the peer
// offers first. A peer that sends a hybrid X25519MLKEM768 key share next
// to an X25519 one (Go's and OpenSSL 3.5's own defaults) still gets
// X25519 without a HelloRetryRequest, and pays for its larger ClientHello
// with one more round trip at Framed-MTU 1400 (docs/radius.md, "Key
// exchange groups"); a server that prefers the hybrid gets it.
func TestKeyExchangeGroup(t *testing.T) {
	tests := []struct {
		name       string
		peer       []tls.CurveID
		server     []tls.CurveID
		want       tls.CurveID
		fullRounds int
		resRounds  int
	}{
		{"x25519_peer", []tls.CurveID{tls.X25519, tls.CurveP256}, nil, tls.X25519, 4, 4},
		{"hybrid_first_peer", []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}, nil, tls.X25519, 5, 5},
		{"p256_only_peer", []tls.CurveID{tls.CurveP256}, nil, tls.CurveP256, 4, 4},
		{"hybrid_server", []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, tls.X25519MLKEM768, 6, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newResumeEnv(t, tls.VersionTLS13, 1400, func(c *ServerConfig) { c.TLS.CurvePreferences = tc.server })
			e.ptls.CurvePreferences = tc.peer
			for i, resumed := range []bool{false, true} {
				r := e.mustAccept(resumed)
				cs := r.sess.ConnectionState()
				if cs.CurveID != tc.want {
					t.Errorf("handshake %d (resumed %v): group %v, want %v", i, resumed, cs.CurveID, tc.want)
				}
				if cs.HelloRetryRequest {
					t.Errorf("handshake %d: HelloRetryRequest", i)
				}
				want := tc.fullRounds
				if resumed {
					want = tc.resRounds
				}
				if r.rounds != want {
					t.Errorf("handshake %d (resumed %v): %d round trips, want %d", i, resumed, r.rounds, want)
				}
			}
		})
	}
}
