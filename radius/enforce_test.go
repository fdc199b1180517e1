package radius

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/radius/dynauth"
	"hardbound/radius/packet"
)

// testDAS is a NAS's RFC 5176 Dynamic Authorization Server: it checks the
// Request Authenticator and Message-Authenticator, requires
// Event-Timestamp (as hostapd does) and ACKs, recording the Acct-Session-Id
// of every request.
type testDAS struct {
	conn   *net.UDPConn
	secret []byte
	mu     sync.Mutex
	got    []string
}

func (d *testDAS) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		v, err := packet.Parse(buf[:n])
		if err != nil || packet.NewSecret(d.secret).VerifyRequest(&v, packet.Policy{RequireMessageAuthenticator: true}) != nil {
			continue
		}
		if _, ok := v.Uint32(attrEventTimestamp); !ok || v.Code() != lradius.CodeDisconnectRequest {
			continue
		}
		id, _ := v.Lookup(attrAcctSessionID)
		d.mu.Lock()
		d.got = append(d.got, string(id))
		d.mu.Unlock()
		resp, err := packet.NewSecret(d.secret).EncodeResponse(&v, lradius.CodeDisconnectACK, true, nil)
		if err == nil {
			_, _ = d.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (d *testDAS) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.got...)
}

// startDASes listens on the same port at each loopback address (the
// client's NASes share their CoA port, as a client entry's NASes do).
func startDASes(t *testing.T, addrs ...string) (int, []*testDAS) {
	t.Helper()
	for try := 0; try < 20; try++ {
		var das []*testDAS
		port := 0
		ok := true
		for _, a := range addrs {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(a), uint16(port))))
			if err != nil {
				ok = false
				break
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			das = append(das, &testDAS{conn: c, secret: []byte(testSecret)})
		}
		if !ok {
			for _, d := range das {
				d.conn.Close()
			}
			continue
		}
		for _, d := range das {
			go d.serve()
			t.Cleanup(func() { d.conn.Close() })
		}
		return port, das
	}
	t.Fatal("no common free port on the loopback addresses")
	return 0, nil
}

type eventFeed struct{ ch chan posture.Event }

func (f eventFeed) Subscribe(int) (<-chan posture.Event, func()) { return f.ch, func() {} }

// TestIntegrationEnforcementReachesOnlyTheNASThatHoldsTheSession puts three
// NASes under one client prefix (127.0.0.0/8): A (.1) and B (.2)
// authenticate a device each with the real EAP-TLS, C (.3) forges B's
// device's session with B's Class. A's Accounting-On leaves B's session
// live; quarantining B's device disconnects it at B and nowhere else; A's
// next Interim-Update reopens its session, and a quarantine then reaches
// A; a standing change between an Accept and its Accounting-Start is
// enforced when the Start arrives.
func TestIntegrationEnforcementReachesOnlyTheNASThatHoldsTheSession(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	sessions, audit, metrics := newMemSessions(), &memAudit{}, newCountMetrics()
	port, das := startDASes(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	events := eventFeed{ch: make(chan posture.Event, 16)}
	enf, err := dynauth.NewEnforcer(dynauth.EnforcerConfig{
		Events: events, Sessions: sessions, Sender: dynauth.NewSender(dynauth.SenderConfig{Timeout: 200 * time.Millisecond, Tries: 3}),
		NAS: func(name string) (dynauth.NAS, bool) {
			return dynauth.NAS{Name: name, Port: port, Secret: []byte(testSecret)}, name == "access"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Clients: []Client{{Name: "access", Prefix: netip.MustParsePrefix("127.0.0.0/8"),
		Secret: []byte(testSecret), RequireMessageAuthenticator: true}}},
		pki.eapServer(t), pki.decider(), sessions, audit, WithMetrics(metrics), WithSessionStarts(enf),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	auth, acct := listenLoopback(t), listenLoopback(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ctx, auth, acct) }()
	ready := make(chan struct{})
	go func() { done <- enf.Run(ctx, ready) }()
	<-ready
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		}
	})
	authAddr := auth.LocalAddr().(*net.UDPAddr).AddrPort()
	acctAddr := acct.LocalAddr().(*net.UDPAddr).AddrPort()

	admit := func(local, client string) []byte {
		t.Helper()
		nas := newUDPNASAt(t, authAddr, []byte(testSecret), local)
		peer := eaptls.NewPeer(context.Background(), eaptls.PeerConfig{TLS: pki.peerTLS(client, tls.VersionTLS13), Identity: "anonymous@example.org", MTU: 1400})
		defer peer.Close()
		r := runEAP(t, nas, peer, 1400)
		if r.final.Code != lradius.CodeAccessAccept {
			t.Fatalf("%s via %s: %v", client, local, r.final.Code)
		}
		return r.final.Get(attrClass)
	}
	account := func(local string, id byte, status uint32, sid string, extra ...*lradius.AVP) {
		t.Helper()
		nas := newUDPNASAt(t, acctAddr, []byte(testSecret), local)
		req := acctRequest(t, []byte(testSecret), id, status, sid, extra...)
		resp, err := nas.exchange(req, 5*time.Second)
		if err != nil {
			t.Fatalf("accounting %d from %s: %v", status, local, err)
		}
		if p := checkResponse(t, resp, req, []byte(testSecret)); p.Code != lradius.CodeAccountingResponse {
			t.Fatalf("accounting answer %v", p.Code)
		}
	}
	class := func(v []byte) *lradius.AVP { return &lradius.AVP{Type: attrClass, Attribute: v} }
	ident := func(s string) *lradius.AVP { return &lradius.AVP{Type: attrNASIdentifier, Attribute: []byte(s)} }
	ts := func() *lradius.AVP {
		return &lradius.AVP{Type: attrEventTimestamp, Attribute: u32(uint32(time.Now().Unix() + 1))}
	}
	waitDisconnect := func(d *testDAS, sid string) {
		t.Helper()
		waitFor(t, func() bool { return strings.Contains(strings.Join(d.seen(), ","), sid) })
	}

	classA, classB := admit("127.0.0.1", "ok"), admit("127.0.0.2", "vlan")
	account("127.0.0.1", 1, acctStart, "A-1", class(classA), ident("sw-a"))
	account("127.0.0.2", 2, acctStart, "B-1", class(classB), ident("sw-b"))

	// C replays B's Class: refused as dev-vlan's session, counted, audited.
	account("127.0.0.3", 3, acctStart, "C-1", class(classB), ident("sw-c"))
	if c, _ := sessions.get("access", "C-1"); c.DeviceID != "" {
		t.Fatalf("forged Class recorded as %q's session", c.DeviceID)
	}
	if metrics.get("acct/start/bad_class") != 1 {
		t.Fatalf("forged Class not counted: %v", metrics)
	}
	waitFor(t, func() bool {
		for _, ev := range audit.all() {
			if ev.Action == "radius.accounting" && ev.Result == "reject" && ev.Subject == "dev-vlan" &&
				strings.Contains(ev.Reason, "from=127.0.0.3") && strings.Contains(ev.Reason, "acct_session_id=C-1") {
				return true
			}
		}
		return false
	})

	// A reboots: its session closes, its neighbour's stays live.
	account("127.0.0.1", 4, acctOn, "", ts(), ident("sw-a"))
	if a, _ := sessions.get("access", "A-1"); a.Live() || !a.ClosedByOnOff {
		t.Fatalf("A's session after its Accounting-On: %+v", a)
	}
	if b, _ := sessions.get("access", "B-1"); !b.Live() {
		t.Fatalf("A's Accounting-On closed B's session: %+v", b)
	}

	events.ch <- posture.Event{Kind: posture.EventQuarantined, DeviceID: "dev-vlan", At: time.Now()}
	waitDisconnect(das[1], "B-1")
	time.Sleep(300 * time.Millisecond) // a wrong target would have been sent by now
	if got := das[2].seen(); len(got) != 0 {
		t.Fatalf("the forging NAS got Disconnect-Requests for %v", got)
	}
	if got := das[0].seen(); len(got) != 0 {
		t.Fatalf("NAS A got Disconnect-Requests for %v", got)
	}

	// Closed by mistake (A had not really lost it): the next Interim
	// reopens it, and enforcement reaches A again.
	account("127.0.0.1", 5, acctInterimUpdate, "A-1", class(classA), ident("sw-a"),
		&lradius.AVP{Type: attrEventTimestamp, Attribute: u32(uint32(time.Now().Unix() + 2))})
	if a, _ := sessions.get("access", "A-1"); !a.Live() || metrics.get("acct/interim_update/reopened") != 1 {
		t.Fatalf("Interim did not reopen A's session: %+v %v", a, metrics)
	}
	events.ch <- posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "dev-ok", At: time.Now()}
	waitDisconnect(das[0], "A-1")

	// A standing change lands between an Accept and its Accounting-Start:
	// no session to act on then; the Start brings the enforcement.
	classA2 := admit("127.0.0.1", "ok")
	events.ch <- posture.Event{Kind: posture.EventQuarantined, DeviceID: "dev-ok", At: time.Now()}
	time.Sleep(50 * time.Millisecond)
	account("127.0.0.1", 6, acctStart, "A-2", class(classA2), ident("sw-a"))
	waitDisconnect(das[0], "A-2")
}
