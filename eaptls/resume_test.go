package eaptls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// resumeEnv is one server with resumption and one supplicant whose session
// cache persists across its conversations, as wpa_supplicant's does.
type resumeEnv struct {
	t       *testing.T
	srv     *Server
	ptls    *tls.Config
	metrics *countingMetrics
	mtu     int
	opts    SessionOptions
	policy  TicketPolicy[string]
	// clock is the server's time (tls.Config.Time), movable by tests.
	clock atomic.Int64
	// calls records every Authorizer run: was it on a resumed session,
	// and on which certificate.
	mu    sync.Mutex
	calls []authCall
}

type authCall struct {
	resumed bool
	cn      string
}

func newResumeEnv(t *testing.T, version uint16, mtu int, mod func(*ServerConfig)) *resumeEnv {
	f := getFixture(t)
	e := &resumeEnv{t: t, metrics: &countingMetrics{}, mtu: mtu}
	e.clock.Store(time.Now().UnixNano())
	e.srv = f.newServer(t, func(c *ServerConfig) {
		c.TLS.Time = func() time.Time { return time.Unix(0, e.clock.Load()) }
		c.Resumption = Resumption{MaxLifetime: time.Hour}
		c.Metrics = e.metrics
		c.OmitCANames = true
		if mod != nil {
			mod(c)
		}
	})
	e.ptls = f.peerTLS(&f.client, version)
	e.ptls.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	e.opts = SessionOptions{MTU: mtu}
	return e
}

func (e *resumeEnv) advance(d time.Duration) { e.clock.Add(int64(d)) }

func (e *resumeEnv) authorize(deny error) Authorizer[string] {
	return func(_ context.Context, cs tls.ConnectionState) (string, error) {
		e.mu.Lock()
		e.calls = append(e.calls, authCall{resumed: cs.DidResume, cn: cs.PeerCertificates[0].Subject.CommonName})
		e.mu.Unlock()
		if deny != nil {
			return "denied", deny
		}
		return "device-1", nil
	}
}

func (e *resumeEnv) lastCall() authCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.calls) == 0 {
		e.t.Fatal("the Authorizer never ran")
	}
	return e.calls[len(e.calls)-1]
}

// run is one authentication; it returns the conversation, whether both
// sides resumed, and the MSK.
type runResult struct {
	conv
	resumed bool
	msk     []byte
	sess    *Session[string]
}

func (e *resumeEnv) run(deny error) runResult {
	e.t.Helper()
	peer := NewPeer(context.Background(), PeerConfig{TLS: e.ptls, Identity: "anonymous@hb", MTU: e.mtu})
	defer peer.Close()
	sess := NewSession[string](context.Background(), e.srv, e.opts)
	defer sess.Close()
	sess.SetTicketPolicy(e.policy)
	c := converse(e.t, sess, peer, e.authorize(deny))
	r := runResult{conv: c, sess: sess}
	if c.res.Outcome == Success {
		if !c.peerDone || c.peerErr != nil {
			e.t.Fatalf("peer done=%v err=%v", c.peerDone, c.peerErr)
		}
		if sess.Resumed() != peer.Resumed() {
			e.t.Fatalf("server resumed %v, peer resumed %v", sess.Resumed(), peer.Resumed())
		}
		msk, _ := sess.Keys()
		pmsk, _ := peer.Keys()
		if len(msk) != 64 || !bytes.Equal(msk, pmsk) {
			e.t.Fatalf("MSK differs between server and peer (resumed %v)", sess.Resumed())
		}
		r.resumed, r.msk = sess.Resumed(), msk
	}
	return r
}

func (e *resumeEnv) mustAccept(wantResumed bool) runResult {
	e.t.Helper()
	r := e.run(nil)
	if r.res.Outcome != Success || r.err != nil {
		e.t.Fatalf("outcome %v err %v", r.res.Outcome, r.err)
	}
	if r.resumed != wantResumed {
		e.t.Fatalf("resumed = %v, want %v (metrics %v)", r.resumed, wantResumed, e.metrics.got)
	}
	if c := e.lastCall(); c.resumed != wantResumed || c.cn != "dev1" {
		e.t.Fatalf("Authorizer saw %+v, want resumed=%v on dev1", c, wantResumed)
	}
	return r
}

func (m *countingMetrics) count(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.got[k]
}

// TestResumptionRoundsAndKeys: the second and third authentications
// resume, each with fresh keys that both sides agree on, the Authorizer
// runs on every one of them with the ticket's certificate, and the rounds
// are the floor RFC 5216/9190 and crypto/tls allow (docs/radius.md).
func TestResumptionRoundsAndKeys(t *testing.T) {
	tests := []struct {
		name        string
		version     uint16
		mtu         int
		fullRounds  int
		resumeRound int
	}{
		{"tls12/mtu1400", tls.VersionTLS12, 1400, 4, 3},
		{"tls13/mtu1400", tls.VersionTLS13, 1400, 4, 4},
		// At 1020 the ticket (which carries the peer's chain) fragments
		// the ClientHello and the server's flight: measured, not a floor.
		{"tls12/mtu1020", tls.VersionTLS12, 1020, 0, 0},
		{"tls13/mtu1020", tls.VersionTLS13, 1020, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newResumeEnv(t, tc.version, tc.mtu, nil)
			full := e.mustAccept(false)
			if tc.fullRounds != 0 && full.rounds != tc.fullRounds {
				t.Errorf("full handshake took %d rounds, want %d", full.rounds, tc.fullRounds)
			}
			seen := [][]byte{full.msk}
			for i := range 2 {
				r := e.mustAccept(true)
				if tc.resumeRound != 0 && r.rounds != tc.resumeRound {
					t.Errorf("resumption %d took %d rounds, want %d", i+1, r.rounds, tc.resumeRound)
				}
				for _, m := range seen {
					if bytes.Equal(m, r.msk) {
						t.Fatal("a resumed session reused an earlier MSK")
					}
				}
				seen = append(seen, r.msk)
				if v := r.sess.ConnectionState().Version; v != tc.version {
					t.Fatalf("resumed version %#x", v)
				}
			}
			if got := e.metrics.count("resumed/" + versionName(tc.version) + "/ok"); got != 2 {
				t.Errorf("resumed/ok = %d, want 2 (%v)", got, e.metrics.got)
			}
			last := e.mustAccept(true)
			t.Logf("full %d rounds, resumed %d rounds; resumed ClientHello %d bytes", full.rounds, last.rounds, len(last.resps[1]))
		})
	}
}

func TestResumptionRefusedOrFull(t *testing.T) {
	errQuarantined := errors.New("device quarantined")
	tests := []struct {
		name string
		mod  func(*ServerConfig)
		// between runs after the first full handshake
		between func(e *resumeEnv)
		opts    SessionOptions
		policy  TicketPolicy[string]
		cause   string // Metrics.TicketIgnored cause expected, "" none
	}{
		{name: "key_rotation_forces_full", between: func(e *resumeEnv) {
			if err := e.srv.RotateTicketKey(); err != nil {
				e.t.Fatal(err)
			}
		}, cause: TicketUndecryptable},
		{name: "expired_ticket_forces_full", between: func(e *resumeEnv) { e.advance(time.Hour + time.Second) }, cause: TicketExpired},
		{name: "policy_lifetime_caps", policy: TicketPolicy[string]{Issue: func(string) (time.Duration, string) { return time.Minute, "device-1" }},
			between: func(e *resumeEnv) { e.advance(time.Minute + time.Second) }, cause: TicketExpired},
		{name: "policy_zero_issues_no_ticket", policy: TicketPolicy[string]{Issue: func(string) (time.Duration, string) { return 0, "" }}, cause: TicketUndecryptable},
		{name: "accept_refuses", policy: TicketPolicy[string]{
			Issue:  func(string) (time.Duration, string) { return time.Hour, "device-1" },
			Accept: func(t Ticket) bool { return t.Subject != "device-1" },
		}, cause: TicketRefused},
		{name: "session_no_resume", opts: SessionOptions{NoResume: true}},
		{name: "disabled_server", mod: func(c *ServerConfig) { c.Resumption = Resumption{} }},
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range tests {
			t.Run(versionName(version)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newResumeEnv(t, version, 1400, tc.mod)
				e.opts.NoResume = tc.opts.NoResume
				e.policy = tc.policy
				e.mustAccept(false)
				if tc.between != nil {
					tc.between(e)
				}
				e.mustAccept(false)
				if tc.cause != "" && e.metrics.count("ticket/"+tc.cause) == 0 {
					t.Errorf("no ticket/%s counted: %v", tc.cause, e.metrics.got)
				}
			})
		}
		t.Run(versionName(version)+"/refused_by_decision", func(t *testing.T) {
			t.Parallel()
			e := newResumeEnv(t, version, 1400, nil)
			e.mustAccept(false)
			r := e.run(errQuarantined)
			if r.res.Outcome != Failure || !errors.Is(r.err, errQuarantined) || !errors.Is(r.sess.AuthErr(), errQuarantined) {
				t.Fatalf("outcome %v err %v", r.res.Outcome, r.err)
			}
			if c := e.lastCall(); !c.resumed {
				t.Fatal("the refusal was not decided on the resumed session")
			}
			if !r.sess.Resumed() || r.res.Decision != "denied" || !r.res.Decided {
				t.Fatalf("resumed %v decision %q", r.sess.Resumed(), r.res.Decision)
			}
			if got := e.metrics.count("resumed/" + versionName(version) + "/refused"); got != 1 {
				t.Errorf("resumed/refused = %d (%v)", got, e.metrics.got)
			}
			if r.peerDone || r.peerErr == nil {
				t.Fatal("the peer did not see a failure")
			}
		})
	}
}

// TestResumptionNeverExtendsTicket: re-issued tickets keep the full
// handshake's bounds, and the certificate's remaining life caps them.
func TestResumptionNeverExtendsTicket(t *testing.T) {
	f := getFixture(t)
	short := f.pki.leaf(t, leafOpts{cn: "dev1", eku: x509.ExtKeyUsageClientAuth,
		notBefore: time.Now().Add(-time.Hour), notAfter: time.Now().Add(20 * time.Minute)})
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(versionName(version), func(t *testing.T) {
			t.Parallel()
			e := newResumeEnv(t, version, 1400, nil)
			e.ptls.Certificates = []tls.Certificate{short}
			e.policy.Issue = func(string) (time.Duration, string) { return 24 * time.Hour, "device-1" }
			e.mustAccept(false)
			e.advance(5 * time.Minute)
			r1 := e.mustAccept(true)
			t1, ok := r1.sess.Ticket()
			if !ok {
				t.Fatal("no ticket on a resumed session")
			}
			leaf := short.Leaf
			if t1.Expires.After(leaf.NotAfter) {
				t.Fatalf("ticket expires %v after the certificate %v", t1.Expires, leaf.NotAfter)
			}
			if t1.CertSHA256 != sha256.Sum256(leaf.Raw) || t1.Subject != "device-1" {
				t.Fatalf("ticket %+v", t1)
			}
			e.advance(5 * time.Minute)
			r2 := e.mustAccept(true)
			t2, _ := r2.sess.Ticket()
			if !t2.Expires.Equal(t1.Expires) || !t2.Authenticated.Equal(t1.Authenticated) {
				t.Fatalf("re-issued ticket moved: %+v then %+v", t1, t2)
			}
			// Past the certificate's end the ticket is expired as well
			// (and crypto/tls would refuse the certificate anyway).
			e.advance(11 * time.Minute)
			if r := e.run(nil); r.res.Outcome == Success && r.resumed {
				t.Fatal("resumed past the certificate's end")
			}
		})
	}
}

func TestTicketEncoding(t *testing.T) {
	in := Ticket{Authenticated: time.Unix(1700000000, 0), Expires: time.Unix(1700003600, 0), Subject: "dev-ü"}
	out, ok := decodeTicket([][]byte{[]byte("other"), in.encode()})
	if !ok || !out.Authenticated.Equal(in.Authenticated) || !out.Expires.Equal(in.Expires) || out.Subject != in.Subject {
		t.Fatalf("round trip %+v -> %+v %v", in, out, ok)
	}
	b := in.encode()
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte(nil), b...), 0), []byte("hb1")} {
		if _, ok := decodeTicket([][]byte{bad}); ok {
			t.Errorf("decoded a malformed extension of %d bytes", len(bad))
		}
	}
	if err := (&Server{}).SetTicketKeys(nil); err != nil {
		t.Errorf("SetTicketKeys on a server without resumption: %v", err)
	}
}

// Two servers with the same ticket keys (two nodes): a ticket from one
// resumes on the other once that one holds the intermediate the lean
// ticket names; before, the ticket is ignored and the handshake is full.
func TestResumptionAcrossServersSharingKeys(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(versionName(version), func(t *testing.T) {
			t.Parallel()
			a := newResumeEnv(t, version, 1400, nil)
			b := newResumeEnv(t, version, 1400, nil)
			b.ptls = a.ptls // one supplicant, one session cache
			key, err := NewTicketKey()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []*resumeEnv{a, b} {
				if err := e.srv.SetTicketKeys([][32]byte{key}); err != nil {
					t.Fatal(err)
				}
			}
			a.mustAccept(false)
			a.mustAccept(true)
			// b never saw the device's issuing CA.
			b.mustAccept(false)
			if b.metrics.count("ticket/"+TicketUnknownChain) != 1 {
				t.Fatalf("b's metrics %v", b.metrics.got)
			}
			// b issued the ticket in the cache now; a holds the CA too.
			a.mustAccept(true)
			b.mustAccept(true)
		})
	}
}

// A lean ticket keeps the leaf only, and the SessionState it came from
// parses back unchanged otherwise.
func TestLeafOnly(t *testing.T) {
	e := newResumeEnv(t, tls.VersionTLS13, 1400, nil)
	var sizes []int
	e.srv.cfg.Metrics = e.metrics
	for range 2 {
		r := e.mustAccept(len(sizes) > 0)
		sizes = append(sizes, len(r.resps[1]))
	}
	if sizes[1] > 900 {
		t.Fatalf("resumed ClientHello %d bytes: the ticket still carries the chain", sizes[1])
	}
	if _, ok := leafOnly(&tls.SessionState{}); ok {
		t.Fatal("leafOnly accepted a session without certificates")
	}
}

// decodeTicket reads what a ticket key decrypted; whatever the octets, it
// must not panic, and what it accepts must encode back to the same octets.
func FuzzDecodeTicket(f *testing.F) {
	f.Add(Ticket{Authenticated: time.Unix(1, 0), Expires: time.Unix(2, 0), Subject: "d", inters: []interID{{1}}}.encode())
	f.Add([]byte("hb1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, ok := decodeTicket([][]byte{b})
		if ok && !bytes.Equal(tk.encode(), b) {
			t.Fatalf("decoded %+v does not encode back to % x", tk, b)
		}
	})
}
