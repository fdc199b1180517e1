package radius

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lradius "layeh.com/radius"
	"layeh.com/radius/vendors/microsoft"

	"hardbound/eaptls"
	"hardbound/radius/packet"
	"hardbound/store"
)

// liveServer is the real server on 127.0.0.1 UDP with the real eaptls.
type liveServer struct {
	s          *Server
	auth, acct netip.AddrPort
	metrics    *countMetrics
	sessions   *memSessions
	audit      *memAudit
	pki        *testPKI
	stop       func() // cancels Serve and waits for it; also run at cleanup
}

func startLive(t *testing.T, mod func(*Config)) *liveServer {
	t.Helper()
	return startLiveWith(t, mod, nil)
}

// startLiveWith is startLive with the Decider made by dec (nil: the PKI's
// table decider).
func startLiveWith(t *testing.T, mod func(*Config), dec func(*testPKI) Decider) *liveServer {
	t.Helper()
	pki := newPKI(t)
	ls := &liveServer{metrics: newCountMetrics(), sessions: newMemSessions(), audit: &memAudit{}, pki: pki}
	cfg := Config{Clients: []Client{{
		Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Secret: []byte(testSecret),
		RequireMessageAuthenticator: true, LimitProxyState: true,
	}}}
	if mod != nil {
		mod(&cfg)
	}
	var d Decider = pki.decider()
	if dec != nil {
		d = dec(pki)
	}
	s, err := New(cfg, pki.eapServer(t), d, ls.sessions, ls.audit,
		WithMetrics(ls.metrics), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ls.s = s
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := listen(), listen()
	ls.auth = a.LocalAddr().(*net.UDPAddr).AddrPort()
	ls.acct = b.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, a, b) }()
	var once sync.Once
	ls.stop = func() { once.Do(func() { stopLive(t, s, cancel, done) }) }
	t.Cleanup(ls.stop)
	return ls
}

func stopLive(t *testing.T, s *Server, cancel context.CancelFunc, done <-chan error) {
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after cancel")
	}
	if n := s.convs.len(); n != 0 {
		t.Errorf("%d conversations left after shutdown", n)
	}
}

var stationSeq atomic.Uint32

type eapRun struct {
	final   *lradius.Packet
	lastReq *lradius.Packet
	peerErr error
	msk     []byte
	rounds  int
}

// runEAP drives one EAP-TLS authentication through the UDP server as a NAS
// would: EAP-Response/Identity first, then one Access-Request per EAP packet.
func runEAP(t *testing.T, nas *udpNAS, peer *eaptls.Peer, mtu uint32) eapRun {
	t.Helper()
	eap := peer.Identity(0)
	var state []byte
	// Each supplicant its own MAC: one conversation per station and NAS.
	mac := fmt.Sprintf("02-00-00-%02X-%02X-%02X", byte(stationSeq.Add(1)>>16), byte(stationSeq.Load()>>8), byte(stationSeq.Load()))
	id := byte(0)
	for round := 1; round <= 100; round++ {
		attrs := lradius.Attributes{
			{Type: attrUserName, Attribute: []byte("anonymous@example.org")},
			{Type: attrCallingStationID, Attribute: []byte(mac)},
		}
		if mtu != 0 {
			attrs = append(attrs, &lradius.AVP{Type: attrFramedMTU, Attribute: u32(mtu)})
		}
		attrs = append(attrs, packet.AppendEAP(nil, eap)...)
		if state != nil {
			attrs = append(attrs, &lradius.AVP{Type: attrState, Attribute: state})
		}
		id++
		reqB := buildRequest(t, lradius.CodeAccessRequest, id, nas.secret, attrs, true, false)
		respB, err := nas.exchange(reqB, 10*time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		p := checkResponse(t, respB, reqB, nas.secret)
		req, _ := lradius.Parse(reqB, nas.secret)
		switch p.Code {
		case lradius.CodeAccessChallenge:
			state = p.Get(attrState)
			out, _, err := peer.Step(eapOf(p))
			if err != nil {
				t.Fatalf("round %d: peer: %v", round, err)
			}
			eap = out
		case lradius.CodeAccessAccept, lradius.CodeAccessReject:
			_, done, err := peer.Step(eapOf(p))
			r := eapRun{final: p, lastReq: req, peerErr: err, rounds: round}
			if done {
				r.msk, _ = peer.Keys()
			}
			return r
		default:
			t.Fatalf("round %d: unexpected %v", round, p.Code)
		}
	}
	t.Fatal("no final answer after 100 rounds")
	return eapRun{}
}

func TestIntegrationEAPTLSAccept(t *testing.T) {
	t.Parallel()
	ls := startLive(t, func(c *Config) { c.AcctInterimInterval = 5 * time.Minute })
	tests := []struct {
		name    string
		version uint16
		mtu     uint32
	}{
		{"accept/tls1.2", tls.VersionTLS12, 1400},
		{"accept/tls1.3", tls.VersionTLS13, 1400},
		{"accept/tls1.3-small-mtu-many-fragments", tls.VersionTLS13, 300},
		{"accept/tls1.2-no-framed-mtu", tls.VersionTLS12, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nas := newUDPNAS(t, ls.auth, []byte(testSecret))
			peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("ok", tt.version), Identity: "anonymous@example.org", MTU: int(tt.mtu)})
			defer peer.Close()
			r := runEAP(t, nas, peer, tt.mtu)
			if r.final.Code != lradius.CodeAccessAccept || r.peerErr != nil || len(r.msk) != 64 {
				t.Fatalf("code %v, peer err %v, msk %d", r.final.Code, r.peerErr, len(r.msk))
			}
			recv, err := microsoft.MSMPPERecvKey_Lookup(r.final, r.lastReq)
			if err != nil {
				t.Fatal(err)
			}
			send, err := microsoft.MSMPPESendKey_Lookup(r.final, r.lastReq)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(recv, r.msk[:32]) || !bytes.Equal(send, r.msk[32:]) {
				t.Fatal("MPPE keys differ from the peer's MSK halves")
			}
			if string(r.final.Get(attrUserName)) != "dev-ok" {
				t.Fatalf("User-Name %q", r.final.Get(attrUserName))
			}
			if v, _ := lradius.Integer(r.final.Get(attrAcctInterimInterval)); v != 300 {
				t.Fatalf("Acct-Interim-Interval %d", v)
			}

			// Accounting Start echoing the Class maps the session to the device.
			acct := newUDPNAS(t, ls.acct, []byte(testSecret))
			sid := "SID-" + tt.name
			req := acctRequest(t, []byte(testSecret), 1, acctStart, sid, &lradius.AVP{Type: attrClass, Attribute: r.final.Get(attrClass)})
			resp, err := acct.exchange(req, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if p := checkResponse(t, resp, req, []byte(testSecret)); p.Code != lradius.CodeAccountingResponse {
				t.Fatalf("acct code %v", p.Code)
			}
			s, ok := ls.sessions.get("lo", sid)
			if !ok || s.DeviceID != "dev-ok" || s.CertSHA256 != store.HashCert(ls.pki.clients["ok"].cert) {
				t.Fatalf("session %+v", s)
			}
		})
	}
}

func TestIntegrationShutdownWritesAnsweredDecisions(t *testing.T) {
	t.Parallel()
	// An hour's flush window: only Serve's shutdown can write the group.
	ls := startLive(t, func(c *Config) { c.AuditFlush = time.Hour })
	nas := newUDPNAS(t, ls.auth, []byte(testSecret))
	peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("ok", tls.VersionTLS13), Identity: "anonymous@example.org", MTU: 1400})
	defer peer.Close()
	if r := runEAP(t, nas, peer, 1400); r.final.Code != lradius.CodeAccessAccept {
		t.Fatalf("code %v", r.final.Code)
	}
	if n := len(ls.audit.all()); n != 0 {
		t.Fatalf("%d events written before the window closed; the test needs them pending", n)
	}
	ls.stop()
	evs := ls.audit.all()
	if len(evs) != 1 || evs[0].Action != "radius.auth" || evs[0].Result != "ok" {
		t.Fatalf("after shutdown audit = %+v, want the answered accept", evs)
	}
}

func TestIntegrationEAPTLSRejects(t *testing.T) {
	t.Parallel()
	ls := startLive(t, nil)
	tests := []struct {
		name    string
		client  string // "" = no client certificate
		version uint16
		reason  string
	}{
		{"reject/unbound-cert", "unbound", tls.VersionTLS13, "unknown_cert"},
		{"reject/revoked-cert", "cert_revoked", tls.VersionTLS13, "cert_revoked"},
		{"reject/revoked-device", "device_revoked", tls.VersionTLS12, "device_revoked"},
		{"reject/quarantined-device", "device_quarantined", tls.VersionTLS13, "device_quarantined"},
		// Refusals of the certificate itself, in both versions: crypto/tls
		// asks eaptls about it after the peer's ClientKeyExchange in TLS
		// 1.2, right after its Certificate in TLS 1.3, and eaptls names
		// the cause either way.
		{"reject/expired-cert-tls1.3", "expired", tls.VersionTLS13, RejectCertExpired},
		{"reject/expired-cert-tls1.2", "expired", tls.VersionTLS12, RejectCertExpired},
		{"reject/foreign-ca-tls1.2", "foreign", tls.VersionTLS12, RejectUnknownIssuer},
		{"reject/foreign-ca-tls1.3", "foreign", tls.VersionTLS13, RejectUnknownIssuer},
		{"reject/no-client-cert-tls1.3", "", tls.VersionTLS13, RejectNoClientCert},
		{"reject/no-client-cert-tls1.2", "", tls.VersionTLS12, RejectNoClientCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counted := ls.metrics.get("reject/" + tt.reason)
			nas := newUDPNAS(t, ls.auth, []byte(testSecret))
			peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS(tt.client, tt.version), Identity: "anonymous@example.org"})
			defer peer.Close()
			r := runEAP(t, nas, peer, 1400)
			if r.final.Code != lradius.CodeAccessReject {
				t.Fatalf("code %v", r.final.Code)
			}
			if e := eapOf(r.final); len(e) != 4 || e[0] != eaptls.CodeFailure {
				t.Fatalf("EAP %x", e)
			}
			if !errors.Is(r.peerErr, eaptls.ErrFailure) {
				t.Fatalf("peer err %v", r.peerErr)
			}
			if ls.metrics.get("reject/"+tt.reason) != counted+1 {
				t.Fatalf("reject/%s not counted once: %v", tt.reason, ls.metrics)
			}
		})
	}
	var rejects int
	for _, ev := range ls.audited() {
		if ev.Action == "radius.auth" && ev.Result == "reject" && ev.Actor == "nas:lo" {
			rejects++
		}
	}
	if rejects != len(tests) {
		t.Fatalf("%d reject audit events, want %d", rejects, len(tests))
	}
}

// TestIntegrationParallel runs several authentications at once through the
// worker pool (State isolation, per-conversation serialization).
func TestIntegrationParallel(t *testing.T) {
	t.Parallel()
	ls := startLive(t, func(c *Config) { c.Workers = 4 })
	for i := range 8 {
		v := uint16(tls.VersionTLS13)
		if i%2 == 0 {
			v = tls.VersionTLS12
		}
		t.Run(fmt.Sprintf("accept/%d", i), func(t *testing.T) {
			t.Parallel()
			nas := newUDPNAS(t, ls.auth, []byte(testSecret))
			peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("ok", v), Identity: "x"})
			defer peer.Close()
			if r := runEAP(t, nas, peer, 1400); r.final.Code != lradius.CodeAccessAccept {
				t.Fatalf("code %v", r.final.Code)
			}
		})
	}
}

// TestIntegrationAbandonedConversationsAreReaped starts handshakes and walks
// away: the janitor must expire them (ending their TLS coroutines) and a
// shutdown must leave no goroutines behind.
func TestIntegrationAbandonedConversationsAreReaped(t *testing.T) {
	base := runtime.NumGoroutine()
	// Registered before startLive's cleanup, so it runs after the shutdown.
	t.Cleanup(func() {
		waitFor(t, func() bool { return runtime.NumGoroutine() <= base+2 })
	})
	ls := startLive(t, func(c *Config) { c.ConversationIdle = 500 * time.Millisecond })
	for i := range 5 {
		nas := newUDPNAS(t, ls.auth, []byte(testSecret))
		peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: ls.pki.peerTLS("ok", tls.VersionTLS13), Identity: "x"})
		// Identity, then the ClientHello: the server's TLS coroutine runs.
		eap := peer.Identity(0)
		var state []byte
		for round := range 2 {
			attrs := packet.AppendEAP(nil, eap)
			if state != nil {
				attrs = append(attrs, &lradius.AVP{Type: attrState, Attribute: state})
			}
			req := buildRequest(t, lradius.CodeAccessRequest, byte(i*10+round), nas.secret, attrs, true, false)
			resp, err := nas.exchange(req, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			p := checkResponse(t, resp, req, nas.secret)
			state = p.Get(attrState)
			var err2 error
			if eap, _, err2 = peer.Step(eapOf(p)); err2 != nil {
				t.Fatal(err2)
			}
		}
		if ls.s.convs.len() == 0 {
			t.Fatal("conversation not live after its second round")
		}
		peer.Close()
	}
	waitFor(t, func() bool { return ls.s.convs.len() == 0 })
}

// waitFor polls cond until it holds or 10 s pass; it asserts an eventual
// state, not a duration.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationClientTLSMaxVersion caps a NAS at TLS 1.2 while the peer
// offers 1.3 (FreeRADIUS-style tls_max_version per client).
func TestIntegrationClientTLSMaxVersion(t *testing.T) {
	t.Parallel()
	ls := startLive(t, func(c *Config) { c.Clients[0].TLSMaxVersion = tls.VersionTLS12 })
	nas := newUDPNAS(t, ls.auth, []byte(testSecret))
	cfg := ls.pki.peerTLS("ok", tls.VersionTLS13)
	var version uint16
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { version = cs.Version; return nil }
	peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: cfg, Identity: "x"})
	defer peer.Close()
	if r := runEAP(t, nas, peer, 1400); r.final.Code != lradius.CodeAccessAccept {
		t.Fatalf("code %v", r.final.Code)
	}
	if version != tls.VersionTLS12 {
		t.Fatalf("negotiated %x, want TLS 1.2", version)
	}
}

// audited returns the audit events once every decision made so far is
// written (decisions reach the chain in groups, after their replies).
func (ls *liveServer) audited() []store.AuditEvent {
	ls.s.groups.Flush()
	return ls.audit.all()
}
