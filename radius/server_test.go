package radius

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lradius "layeh.com/radius"
	"layeh.com/radius/vendors/microsoft"

	"hardbound/eaptls"
	"hardbound/enroll/ca"
	"hardbound/posture"
	"hardbound/radius/packet"
	"hardbound/store"
)

// fakeSession scripts an EAP-TLS conversation without TLS: round 1 answers
// the identity with a Start-sized request, round 2 runs the Authorizer with
// the configured leaf, then Success (keys = msk) or Failure, carrying the
// verdict as eaptls does.
type fakeSession struct {
	opts    eaptls.SessionOptions
	leaf    *x509.Certificate
	msk     []byte
	reqSize int
	steps   atomic.Int32
	closed  atomic.Bool
	authErr error
	done    bool
	// authorize is the Authorizer of the last Step.
	authorize eaptls.Authorizer[posture.Verdict]
	// holdTLS answers EAP-TLS data with another request (a handshake
	// that goes on) instead of finishing.
	holdTLS bool
	lastID  uint8
}

type fakeResult = eaptls.Result[posture.Verdict]

func (f *fakeSession) Step(ctx context.Context, eap []byte, authorize eaptls.Authorizer[posture.Verdict]) (fakeResult, error) {
	f.steps.Add(1)
	f.authorize = authorize
	id := eapID(eap)
	switch {
	case len(eap) == 0:
		return fakeResult{Reply: []byte{1, 1, 0, 5, 1}, Outcome: eaptls.Continue}, nil
	case len(eap) >= 5 && eap[4] == eaptls.TypeIdentity:
		req := make([]byte, max(f.reqSize, 6))
		req[0], req[1], req[4] = 1, id+1, 13
		binary.BigEndian.PutUint16(req[2:4], uint16(len(req)))
		f.lastID = id + 1
		return fakeResult{Reply: req, Outcome: eaptls.Continue}, nil
	case f.holdTLS && isTLSData(eap):
		// A handshake in progress: another request, no decision yet.
		f.lastID = id + 1
		return fakeResult{Reply: []byte{1, id + 1, 0, 6, 13, 0}, Outcome: eaptls.Continue}, nil
	default:
		f.done = true
		v, err := authorize(ctx, tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.leaf}})
		if err != nil {
			f.authErr = err
			return fakeResult{Reply: []byte{4, id, 0, 4}, Outcome: eaptls.Failure, Decision: v, Decided: true}, err
		}
		return fakeResult{Reply: []byte{3, id, 0, 4}, Outcome: eaptls.Success, Decision: v, Decided: true}, nil
	}
}

func (f *fakeSession) Keys() (msk, emsk []byte) {
	if !f.done || f.authErr != nil {
		return nil, nil
	}
	return f.msk, make([]byte, 64)
}
func (f *fakeSession) Identity() string { return "anonymous@example.org" }
func (f *fakeSession) ConnectionState() tls.ConnectionState {
	if !f.done {
		return tls.ConnectionState{}
	}
	return tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{f.leaf}}
}
func (f *fakeSession) Close() { f.closed.Store(true) }

type harness struct {
	t        *testing.T
	s        *Server
	pki      *testPKI
	metrics  *countMetrics
	sessions *memSessions
	audit    *memAudit
	secret   []byte
	nasAddr  netip.AddrPort
	leaf     *x509.Certificate // next fake session's client cert
	reqSize  int
	holdTLS  bool
	mu       sync.Mutex
	fakes    []*fakeSession
	clock    atomic.Int64
	msk      []byte
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	pki := newPKI(t)
	h := &harness{
		t: t, pki: pki, metrics: newCountMetrics(), sessions: newMemSessions(), audit: &memAudit{},
		secret: []byte(testSecret), nasAddr: netip.MustParseAddrPort("192.0.2.10:40000"),
		leaf: pki.clients["ok"].cert, reqSize: 6,
	}
	h.clock.Store(time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC).UnixNano())
	h.msk = make([]byte, 64)
	for i := range h.msk {
		h.msk[i] = byte(i + 1)
	}
	cfg := Config{Clients: []Client{
		{Name: "ap1", Prefix: netip.MustParsePrefix("192.0.2.0/24"), Secret: h.secret, RequireMessageAuthenticator: true},
		{Name: "legacy", Prefix: netip.MustParsePrefix("198.51.100.0/24"), Secret: h.secret, LimitProxyState: true},
		{Name: "ap2", Prefix: netip.MustParsePrefix("203.0.113.0/24"), Secret: h.secret, RequireMessageAuthenticator: true, SendRejectReason: true},
	}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, pki.eapServer(t), pki.decider(), h.sessions, h.audit,
		WithMetrics(h.metrics), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithClock(func() time.Time { return time.Unix(0, h.clock.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	s.newSession = func(_ context.Context, o eaptls.SessionOptions) eapSession {
		h.mu.Lock()
		defer h.mu.Unlock()
		f := &fakeSession{opts: o, leaf: h.leaf, msk: h.msk, reqSize: h.reqSize, holdTLS: h.holdTLS}
		h.fakes = append(h.fakes, f)
		return f
	}
	h.s = s
	return h
}

func (h *harness) advance(d time.Duration) { h.clock.Add(int64(d)) }

func (h *harness) handle(from netip.AddrPort, port byte, b []byte) []byte {
	return h.s.handle(context.Background(), nil, port, from, b)
}

// accessRequest builds an Access-Request with an EAP-Response (type 1
// identity unless eap is given), optional State and extra attributes.
func (h *harness) accessRequest(id byte, eap []byte, state []byte, extra ...*lradius.AVP) []byte {
	if eap == nil {
		eap = []byte{2, 0, 0, 9, 1, 'a', 'n', 'o', 'n'}
	}
	attrs := lradius.Attributes(extra)
	attrs = append(attrs, &lradius.AVP{Type: attrUserName, Attribute: []byte("anon")})
	attrs = append(attrs, packet.AppendEAP(nil, eap)...)
	if state != nil {
		attrs = append(attrs, &lradius.AVP{Type: attrState, Attribute: state})
	}
	return buildRequest(h.t, lradius.CodeAccessRequest, id, h.secret, attrs, true, false)
}

func eapOf(p *lradius.Packet) []byte {
	var b []byte
	for _, a := range p.Attributes {
		if a.Type == attrEAPMessage {
			b = append(b, a.Attribute...)
		}
	}
	return b
}

// runToEnd drives a conversation: identity, then one TLS round.
func (h *harness) runToEnd(from netip.AddrPort, extra ...*lradius.AVP) (req, resp []byte) {
	h.t.Helper()
	req1 := h.accessRequest(1, nil, nil, extra...)
	r1 := h.handle(from, portAuth, req1)
	if r1 == nil {
		h.t.Fatal("no challenge")
	}
	c := checkResponse(h.t, r1, req1, h.secret)
	if c.Code != lradius.CodeAccessChallenge {
		h.t.Fatalf("first response %v", c.Code)
	}
	ch := eapOf(c)
	req2 := h.accessRequest(2, []byte{2, ch[1], 0, 6, 13, 0x00}, c.Get(attrState), extra...)
	r2 := h.handle(from, portAuth, req2)
	if r2 == nil {
		h.t.Fatal("no final response")
	}
	return req2, r2
}

func TestAccessRequestAuthenticity(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	legacy := netip.MustParseAddrPort("198.51.100.7:1812")
	eapAttr := packet.AppendEAP(nil, []byte{2, 0, 0, 9, 1, 'a', 'n', 'o', 'n'})
	plain := lradius.Attributes{{Type: attrUserName, Attribute: []byte("bob")}}
	withProxy := lradius.Attributes{{Type: attrUserName, Attribute: []byte("bob")}, {Type: attrProxyState, Attribute: []byte("ps")}}
	tests := []struct {
		name     string
		from     netip.AddrPort
		pkt      []byte
		wantCode lradius.Code // 0: silently discarded
		wantDrop string
	}{
		{"drop/missing-ma", h.nasAddr, buildRequest(t, lradius.CodeAccessRequest, 1, h.secret, eapAttr, false, false), 0, DropMissingMsgAuth},
		{"drop/bad-ma", h.nasAddr, buildRequest(t, lradius.CodeAccessRequest, 2, h.secret, eapAttr, true, true), 0, DropBadMsgAuth},
		{"drop/wrong-secret", h.nasAddr, buildRequest(t, lradius.CodeAccessRequest, 3, []byte("nope"), eapAttr, true, false), 0, DropBadMsgAuth},
		{"drop/unknown-client", netip.MustParseAddrPort("192.168.9.9:1000"), buildRequest(t, lradius.CodeAccessRequest, 4, h.secret, eapAttr, true, false), 0, DropUnknownClient},
		{"drop/legacy-eap-without-ma", legacy, buildRequest(t, lradius.CodeAccessRequest, 5, h.secret, eapAttr, false, false), 0, DropMissingMsgAuth},
		{"drop/legacy-proxy-state-without-ma", legacy, buildRequest(t, lradius.CodeAccessRequest, 6, h.secret, withProxy, false, false), 0, DropProxyStateNoMsgAuth},
		{"drop/malformed", h.nasAddr, []byte{1, 2, 0, 30, 0}, 0, DropMalformed},
		{"drop/too-large", h.nasAddr, make([]byte, 4097), 0, DropTooLarge},
		{"drop/accounting-code-on-auth-port", h.nasAddr, buildRequest(t, lradius.CodeAccountingRequest, 8, h.secret, nil, false, false), 0, DropUnexpectedCode},
		{"reject/legacy-no-eap-no-ma", legacy, buildRequest(t, lradius.CodeAccessRequest, 9, h.secret, plain, false, false), lradius.CodeAccessReject, ""},
		{"challenge/good-ma", h.nasAddr, buildRequest(t, lradius.CodeAccessRequest, 10, h.secret, eapAttr, true, false), lradius.CodeAccessChallenge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := 0
			if tt.wantDrop != "" {
				before = h.metrics.get("drop/" + tt.wantDrop)
			}
			resp := h.handle(tt.from, portAuth, tt.pkt)
			if tt.wantCode == 0 {
				if resp != nil {
					t.Fatalf("got a response, want silence")
				}
				if got := h.metrics.get("drop/" + tt.wantDrop); got != before+1 {
					t.Fatalf("drop/%s = %d, want %d", tt.wantDrop, got, before+1)
				}
				return
			}
			if resp == nil {
				t.Fatal("no response")
			}
			if p := checkResponse(t, resp, tt.pkt, h.secret); p.Code != tt.wantCode {
				t.Fatalf("code %v, want %v", p.Code, tt.wantCode)
			}
		})
	}
	if n := len(h.fakes); n != 1 {
		t.Fatalf("%d EAP sessions started, want 1 (discarded packets must not reach EAP)", n)
	}
}

func TestStatusServer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		name     string
		port     byte
		withMA   bool
		badMA    bool
		wantCode lradius.Code
	}{
		{"ok/auth-port-access-accept", portAuth, true, false, lradius.CodeAccessAccept},
		{"ok/acct-port-accounting-response", portAcct, true, false, lradius.CodeAccountingResponse},
		{"drop/no-ma", portAuth, false, false, 0},
		{"drop/bad-ma", portAcct, true, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := buildRequest(t, lradius.CodeStatusServer, 77, h.secret, nil, tt.withMA, tt.badMA)
			resp := h.handle(h.nasAddr, tt.port, req)
			if tt.wantCode == 0 {
				if resp != nil {
					t.Fatal("want silence")
				}
				return
			}
			if resp == nil {
				t.Fatal("no response")
			}
			p := checkResponse(t, resp, req, h.secret)
			if p.Code != tt.wantCode || p.Attributes[0].Type != attrMessageAuth {
				t.Fatalf("code %v attrs %v", p.Code, p.Attributes)
			}
		})
	}
	if h.s.convs.len() != 0 || len(h.fakes) != 0 {
		t.Fatal("Status-Server had side effects")
	}
}

func TestAcceptCarriesKeysAndAuthorization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client string
		check  func(t *testing.T, p, req *lradius.Packet)
	}{
		{"accept/session-timeout", "ok", func(t *testing.T, p, _ *lradius.Packet) {
			if v, err := lradius.Integer(p.Get(attrSessionTimeout)); err != nil || v != 3600 {
				t.Fatalf("Session-Timeout = %d, %v", v, err)
			}
			if v, _ := lradius.Integer(p.Get(attrTerminationAction)); v != 1 {
				t.Fatalf("Termination-Action = %d", v)
			}
			if p.Get(attrTunnelType) != nil {
				t.Fatal("VLAN attributes without a VLAN verdict")
			}
		}},
		{"accept/vlan", "vlan", func(t *testing.T, p, _ *lradius.Packet) {
			if !bytes.Equal(p.Get(attrTunnelType), []byte{0, 0, 0, 13}) ||
				!bytes.Equal(p.Get(attrTunnelMediumType), []byte{0, 0, 0, 6}) ||
				!bytes.Equal(p.Get(attrTunnelPrivateGroup), []byte{0, '4', '2'}) {
				t.Fatalf("VLAN attrs: %x %x %x", p.Get(attrTunnelType), p.Get(attrTunnelMediumType), p.Get(attrTunnelPrivateGroup))
			}
			if p.Get(attrSessionTimeout) != nil {
				t.Fatal("Session-Timeout without one in the verdict")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.leaf = h.pki.clients[tt.client].cert
			ps := []*lradius.AVP{{Type: attrProxyState, Attribute: []byte("first")}, {Type: attrProxyState, Attribute: []byte("second")}}
			reqB, resp := h.runToEnd(h.nasAddr, ps...)
			p := checkResponse(t, resp, reqB, h.secret)
			if p.Code != lradius.CodeAccessAccept {
				t.Fatalf("code %v", p.Code)
			}
			req, _ := lradius.Parse(reqB, h.secret)
			// MA first, then the Proxy-States in order.
			if p.Attributes[1].Type != attrProxyState || string(p.Attributes[1].Attribute) != "first" ||
				p.Attributes[2].Type != attrProxyState || string(p.Attributes[2].Attribute) != "second" {
				t.Fatalf("Proxy-State not echoed in order after MA: %v", p.Attributes[:3])
			}
			if e := eapOf(p); len(e) != 4 || e[0] != eaptls.CodeSuccess {
				t.Fatalf("EAP = %x, want Success", e)
			}
			recv, err := microsoft.MSMPPERecvKey_Lookup(p, req)
			if err != nil {
				t.Fatal(err)
			}
			send, err := microsoft.MSMPPESendKey_Lookup(p, req)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(recv, h.msk[:32]) || !bytes.Equal(send, h.msk[32:64]) {
				t.Fatalf("MPPE keys are not MSK[0:32] / MSK[32:64]")
			}
			var salts [][]byte
			for _, a := range p.Attributes {
				if a.Type == 26 {
					salts = append(salts, a.Attribute[6:8])
				}
			}
			if len(salts) != 2 || bytes.Equal(salts[0], salts[1]) || salts[0][0]&0x80 == 0 {
				t.Fatalf("salts %x", salts)
			}
			v := h.pki.decider().Decide(context.Background(), h.leaf)
			if got := string(p.Get(attrUserName)); got != v.DeviceID {
				t.Fatalf("User-Name = %q, want device id %q", got, v.DeviceID)
			}
			tok, err := h.s.class.decode(p.Get(attrClass), "ap1", h.nasAddr.Addr(), nil)
			if err != nil || tok.cert != store.HashCert(h.leaf) || tok.deviceID != v.DeviceID {
				t.Fatalf("Class = %q (%v)", p.Get(attrClass), err)
			}
			tt.check(t, p, req)
			ev := h.audited()
			if len(ev) != 1 || ev[0].Result != "ok" || ev[0].Actor != "nas:ap1" || ev[0].Subject != v.DeviceID || ev[0].Action != "radius.auth" {
				t.Fatalf("audit = %+v", ev)
			}
			if h.s.convs.len() != 0 || !h.fakes[0].closed.Load() {
				t.Fatal("conversation not finished and closed")
			}
		})
	}
}

func TestRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		client     string
		from       string
		wantReason string
		wantReply  bool
	}{
		{"reject/unknown_cert", "unbound", "192.0.2.10:1", "unknown_cert", false},
		{"reject/cert_revoked", "cert_revoked", "192.0.2.10:1", "cert_revoked", false},
		{"reject/device_quarantined-with-reply-message", "device_quarantined", "203.0.113.5:1", "device_quarantined", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.leaf = h.pki.clients[tt.client].cert
			from := netip.MustParseAddrPort(tt.from)
			req, resp := h.runToEnd(from)
			p := checkResponse(t, resp, req, h.secret)
			if p.Code != lradius.CodeAccessReject {
				t.Fatalf("code %v", p.Code)
			}
			if e := eapOf(p); len(e) != 4 || e[0] != eaptls.CodeFailure {
				t.Fatalf("EAP = %x, want Failure", e)
			}
			if got := p.Get(attrReplyMessage) != nil; got != tt.wantReply {
				t.Fatalf("Reply-Message present = %v", got)
			}
			for _, a := range p.Attributes {
				switch a.Type {
				case attrClass, attrUserName, attrSessionTimeout, 26, attrTunnelType:
					t.Fatalf("authorization attribute %d in Access-Reject", a.Type)
				}
			}
			if h.metrics.get("reject/"+tt.wantReason) != 1 {
				t.Fatalf("reject/%s not counted: %v", tt.wantReason, h.metrics)
			}
			ev := h.audited()
			if len(ev) != 1 || ev[0].Result != "reject" || strings.Fields(ev[0].Reason)[0] != tt.wantReason {
				t.Fatalf("audit = %+v", ev)
			}
		})
	}
}

func TestRetransmissionGetsCachedResponse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	req := h.accessRequest(1, nil, nil)
	r1 := h.handle(h.nasAddr, portAuth, req)
	r2 := h.handle(h.nasAddr, portAuth, req)
	if r1 == nil || !bytes.Equal(r1, r2) {
		t.Fatal("retransmission did not get the byte-identical response")
	}
	if n := h.fakes[0].steps.Load(); n != 1 {
		t.Fatalf("Step ran %d times, want 1", n)
	}
	if h.metrics.get("request/access_request/cached") != 1 {
		t.Fatal("cached answer not counted")
	}
	// From another source port it is a different request.
	other := netip.AddrPortFrom(h.nasAddr.Addr(), h.nasAddr.Port()+1)
	if r3 := h.handle(other, portAuth, req); bytes.Equal(r3, r1) {
		t.Fatal("different source port hit the cache")
	}
	// A bad-MA copy never touches the cache nor gets the cached answer.
	bad := append([]byte(nil), req...)
	bad[len(bad)-1] ^= 1
	if r := h.handle(h.nasAddr, portAuth, bad); r != nil {
		t.Fatal("bad MA answered")
	}
}

func TestStateHandling(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ConversationIdle = 30 * time.Second })
	req1 := h.accessRequest(1, nil, nil)
	c1 := checkResponse(t, h.handle(h.nasAddr, portAuth, req1), req1, h.secret)
	state := c1.Get(attrState)
	if len(state) != stateLen {
		t.Fatalf("State is %d bytes", len(state))
	}
	tests := []struct {
		name  string
		from  netip.AddrPort
		state []byte
	}{
		{"reject/unknown-state", h.nasAddr, bytes.Repeat([]byte{9}, 16)},
		{"reject/short-state", h.nasAddr, []byte{1, 2}},
		{"reject/state-from-another-nas", netip.MustParseAddrPort("203.0.113.9:5"), state},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := h.accessRequest(byte(10+i), []byte{2, 2, 0, 6, 13, 0}, tt.state)
			p := checkResponse(t, h.handle(tt.from, portAuth, req), req, h.secret)
			if p.Code != lradius.CodeAccessReject {
				t.Fatalf("code %v", p.Code)
			}
			if e := eapOf(p); len(e) != 4 || e[0] != eaptls.CodeFailure {
				t.Fatalf("EAP = %x", e)
			}
		})
	}
	// Idle expiry: the janitor closes the session and the State is dead.
	h.advance(31 * time.Second)
	gone, live := h.s.convs.expire(h.s.now())
	for _, c := range gone {
		c.close()
	}
	if len(gone) != 1 || live != 0 || !h.fakes[0].closed.Load() {
		t.Fatalf("expired %d, live %d", len(gone), live)
	}
	req := h.accessRequest(20, []byte{2, 2, 0, 6, 13, 0}, state)
	if p := checkResponse(t, h.handle(h.nasAddr, portAuth, req), req, h.secret); p.Code != lradius.CodeAccessReject {
		t.Fatalf("expired State: %v", p.Code)
	}
}

func TestConversationCapsEvictEarlyConversationsNotNewOnes(t *testing.T) {
	t.Parallel()
	station := func(mac string) *lradius.AVP { return &lradius.AVP{Type: attrCallingStationID, Attribute: []byte(mac)} }
	// start sends an EAP-Response/Identity and returns the State.
	start := func(h *harness, id byte, mac string) []byte {
		t.Helper()
		req := h.accessRequest(id, nil, nil, station(mac))
		p := checkResponse(t, h.handle(h.nasAddr, portAuth, req), req, h.secret)
		if p.Code != lradius.CodeAccessChallenge {
			t.Fatalf("%s: %v", mac, p.Code)
		}
		return p.Get(attrState)
	}
	// next sends one more round (EAP-TLS data when tls) on state.
	next := func(h *harness, id byte, state []byte, tls bool) (lradius.Code, []byte) {
		t.Helper()
		eap := []byte{2, 0, 0, 6, 13, 0}
		if tls {
			eap = []byte{2, 0, 0, 10, 13, 0, 0x16, 3, 1, 0}
		}
		h.mu.Lock()
		for _, f := range h.fakes {
			eap[1] = f.lastID
		}
		h.mu.Unlock()
		req := h.accessRequest(id, eap, state)
		p := checkResponse(t, h.handle(h.nasAddr, portAuth, req), req, h.secret)
		return p.Code, p.Get(attrState)
	}
	t.Run("per_nas_cap_evicts_the_oldest_early", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.MaxConversationsPerNAS = 2 })
		h.holdTLS = true
		s1 := start(h, 1, "02-00-00-00-00-01")
		_, s1 = next(h, 2, s1, true) // doing TLS: never evicted
		s2 := start(h, 3, "02-00-00-00-00-02")
		s3 := start(h, 4, "02-00-00-00-00-03") // evicts s2, the oldest early one
		if code, _ := next(h, 5, s2, false); code != lradius.CodeAccessReject {
			t.Fatalf("evicted conversation answered %v", code)
		}
		if code, _ := next(h, 6, s1, true); code != lradius.CodeAccessChallenge {
			t.Fatalf("TLS conversation answered %v after a newcomer", code)
		}
		_, s3 = next(h, 7, s3, true)
		// Both slots doing TLS: now the newcomer is refused.
		req := h.accessRequest(8, nil, nil, station("02-00-00-00-00-04"))
		if p := checkResponse(t, h.handle(h.nasAddr, portAuth, req), req, h.secret); p.Code != lradius.CodeAccessReject {
			t.Fatalf("newcomer with no early conversation to evict: %v", p.Code)
		}
		if h.metrics.get("drop/"+DropEvicted) != 1 || h.metrics.get("reject/"+RejectOverCapacity) != 1 {
			t.Fatalf("metrics %v", h.metrics)
		}
	})
	t.Run("same_station_replaces", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		s1 := start(h, 1, "02-00-00-00-00-01")
		start(h, 2, "02-00-00-00-00-01")
		if code, _ := next(h, 3, s1, false); code != lradius.CodeAccessReject {
			t.Fatalf("replaced conversation answered %v", code)
		}
		if h.s.convs.len() != 1 || h.metrics.get("drop/"+DropReplaced) != 1 || !h.fakes[0].closed.Load() {
			t.Fatalf("live %d, metrics %v", h.s.convs.len(), h.metrics)
		}
	})
	t.Run("memory_bound_evicts_early_for_a_handshake", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.MaxConversationBytes = tlsCost + earlyCost/2 })
		h.holdTLS = true
		s1 := start(h, 1, "02-00-00-00-00-01")
		s2 := start(h, 2, "02-00-00-00-00-02")
		if code, _ := next(h, 3, s1, true); code != lradius.CodeAccessChallenge { // evicts s2 for its handshake
			t.Fatalf("handshake refused: %v", code)
		}
		if code, _ := next(h, 4, s2, false); code != lradius.CodeAccessReject {
			t.Fatalf("evicted conversation answered %v", code)
		}
		if u := h.s.convs.usage(); u > tlsCost+earlyCost/2 {
			t.Fatalf("usage %d over the bound", u)
		}
	})
	t.Run("early_conversations_expire_sooner", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.EarlyIdle = time.Second; c.ConversationIdle = 30 * time.Second })
		h.holdTLS = true
		s1 := start(h, 1, "02-00-00-00-00-01")
		_, s1 = next(h, 2, s1, true)
		s2 := start(h, 3, "02-00-00-00-00-02")
		h.advance(2 * time.Second)
		gone, live := h.s.convs.expire(h.s.now())
		if len(gone) != 1 || live != 1 {
			t.Fatalf("expired %d, live %d: want the early one gone", len(gone), live)
		}
		if code, _ := next(h, 4, s2, false); code != lradius.CodeAccessReject {
			t.Fatalf("expired early conversation answered %v", code)
		}
		if code, _ := next(h, 5, s1, true); code != lradius.CodeAccessChallenge {
			t.Fatalf("TLS conversation answered %v", code)
		}
	})
	t.Run("global_cap_evicts_across_nases", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.MaxConversations = 2 })
		start(h, 1, "02-00-00-00-00-01")
		start(h, 2, "02-00-00-00-00-02")
		other := netip.MustParseAddrPort("203.0.113.1:9")
		req := h.accessRequest(3, nil, nil, station("02-00-00-00-00-03"))
		if p := checkResponse(t, h.handle(other, portAuth, req), req, h.secret); p.Code != lradius.CodeAccessChallenge {
			t.Fatalf("other NAS at the global cap: %v", p.Code)
		}
		if h.s.convs.len() != 2 || h.metrics.get("drop/"+DropEvicted) != 1 {
			t.Fatalf("live %d, metrics %v", h.s.convs.len(), h.metrics)
		}
	})
}

func TestChallengeSplitsLargeEAP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.reqSize = 1100
	req := h.accessRequest(1, nil, nil)
	p := checkResponse(t, h.handle(h.nasAddr, portAuth, req), req, h.secret)
	n := 0
	for _, a := range p.Attributes {
		if a.Type == attrEAPMessage {
			n++
			if len(a.Attribute) > 253 {
				t.Fatalf("EAP-Message of %d bytes", len(a.Attribute))
			}
		}
	}
	if n != 5 || len(eapOf(p)) != 1100 {
		t.Fatalf("%d EAP-Message attributes, %d bytes", n, len(eapOf(p)))
	}
}

func TestMalformedEAPIsRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	req := h.accessRequest(1, []byte{2, 7, 0, 99, 1, 'x'}, nil)
	p := checkResponse(t, h.handle(h.nasAddr, portAuth, req), req, h.secret)
	if p.Code != lradius.CodeAccessReject || !bytes.Equal(eapOf(p), []byte{4, 7, 0, 4}) {
		t.Fatalf("code %v eap %x", p.Code, eapOf(p))
	}
	if h.metrics.get("reject/"+RejectMalformedEAP) != 1 {
		t.Fatal("not counted")
	}
}

func acctRequest(t *testing.T, secret []byte, id byte, status uint32, sessionID string, extra ...*lradius.AVP) []byte {
	attrs := lradius.Attributes{
		{Type: attrAcctStatusType, Attribute: u32(status)},
		{Type: attrAcctSessionID, Attribute: []byte(sessionID)},
		{Type: attrCallingStationID, Attribute: []byte("02-00-00-00-00-01")},
	}
	attrs = append(attrs, extra...)
	return buildRequest(t, lradius.CodeAccountingRequest, id, secret, attrs, false, false)
}

func TestAccounting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	cert := store.HashCert(h.pki.clients["ok"].cert)
	class := &lradius.AVP{Type: attrClass, Attribute: h.s.class.encode("ap1", h.nasAddr.Addr(), h.s.now(), cert, "dev-ok")}
	send := func(req []byte) *lradius.Packet {
		t.Helper()
		resp := h.handle(h.nasAddr, portAcct, req)
		if resp == nil {
			return nil
		}
		p := checkResponse(t, resp, req, h.secret)
		if p.Code != lradius.CodeAccountingResponse {
			t.Fatalf("code %v", p.Code)
		}
		return p
	}
	if send(acctRequest(t, h.secret, 1, acctStart, "S1", class, &lradius.AVP{Type: attrProxyState, Attribute: []byte("px")})) == nil {
		t.Fatal("no response to Start")
	}
	s, ok := h.sessions.get("ap1", "S1")
	if !ok || s.DeviceID != "dev-ok" || s.CertSHA256 != cert || !s.Live() || s.CallingStationID != "02-00-00-00-00-01" || s.NASAddr != "192.0.2.10" {
		t.Fatalf("after Start: %+v", s)
	}
	h.advance(time.Minute)
	send(acctRequest(t, h.secret, 2, acctInterimUpdate, "S1", class,
		&lradius.AVP{Type: attrAcctInputOctets, Attribute: u32(5)}, &lradius.AVP{Type: attrAcctInputGigawords, Attribute: u32(1)}))
	s, _ = h.sessions.get("ap1", "S1")
	if s.InputOctets != 1<<32+5 || !s.Live() {
		t.Fatalf("after Interim: %+v", s)
	}
	stop := acctRequest(t, h.secret, 3, acctStop, "S1", class, &lradius.AVP{Type: attrAcctTerminateCause, Attribute: u32(1)})
	r1 := h.handle(h.nasAddr, portAcct, stop)
	s, _ = h.sessions.get("ap1", "S1")
	if s.Live() || s.TerminateCause != 1 {
		t.Fatalf("after Stop: %+v", s)
	}
	puts := h.sessions.puts
	if r2 := h.handle(h.nasAddr, portAcct, stop); !bytes.Equal(r1, r2) || h.sessions.puts != puts {
		t.Fatal("retransmitted Stop was reprocessed or answered differently")
	}
	// A late Interim does not reopen a stopped session.
	send(acctRequest(t, h.secret, 4, acctInterimUpdate, "S1", class))
	if s, _ = h.sessions.get("ap1", "S1"); s.Live() {
		t.Fatal("late Interim reopened the session")
	}

	tests := []struct {
		name       string
		req        []byte
		failPut    error
		wantResp   bool
		wantMetric string
	}{
		{"ok/no-class-counted", acctRequest(t, h.secret, 10, acctStart, "S2"), nil, true, "acct/start/no_class"},
		{"ok/foreign-class-counted", acctRequest(t, h.secret, 11, acctStart, "S3", &lradius.AVP{Type: attrClass, Attribute: []byte("other-server")}), nil, true, "acct/start/bad_class"},
		{"ok/accounting-on-without-timestamp-refused", acctRequest(t, h.secret, 12, acctOn, ""), nil, true, "acct/accounting_on/refused_no_timestamp"},
		{"drop/store-error-no-response", acctRequest(t, h.secret, 13, acctStart, "S4", class), errors.New("disk full"), false, "drop/store_error"},
		{"drop/missing-session-id", acctRequest(t, h.secret, 14, acctStart, ""), nil, false, "drop/malformed"},
		{"drop/bad-authenticator", func() []byte {
			b := acctRequest(t, h.secret, 15, acctStart, "S5")
			b[5] ^= 1
			return b
		}(), nil, false, "drop/bad_authenticator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.sessions.mu.Lock()
			h.sessions.failPut = tt.failPut
			h.sessions.mu.Unlock()
			before := h.metrics.get(tt.wantMetric)
			got := send(tt.req) != nil
			if got != tt.wantResp {
				t.Fatalf("response = %v, want %v", got, tt.wantResp)
			}
			if h.metrics.get(tt.wantMetric) != before+1 {
				t.Fatalf("%s not counted: %v", tt.wantMetric, h.metrics)
			}
		})
	}
	// After the store recovers, the NAS's retransmission is processed.
	h.sessions.mu.Lock()
	h.sessions.failPut = nil
	h.sessions.mu.Unlock()
	if send(acctRequest(t, h.secret, 13, acctStart, "S4", class)) == nil {
		t.Fatal("retransmission after store error not answered")
	}
}

func TestSessionOptionsFromRequestAndClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mtu     lradius.Attribute // nil: absent
		wantMTU int
	}{
		{"framed-mtu-1400", u32(1400), 1400},
		{"framed-mtu-below-100-ignored", u32(50), 0},
		{"framed-mtu-wrong-size-ignored", lradius.Attribute{1, 2}, 0},
		{"framed-mtu-absent", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.Clients[0].TLSMaxVersion = tls.VersionTLS12 })
			var extra []*lradius.AVP
			if tt.mtu != nil {
				extra = append(extra, &lradius.AVP{Type: attrFramedMTU, Attribute: tt.mtu})
			}
			req := h.accessRequest(1, nil, nil, extra...)
			if h.handle(h.nasAddr, portAuth, req) == nil {
				t.Fatal("no response")
			}
			o := h.fakes[0].opts
			if o.MTU != tt.wantMTU || o.MaxVersion != tls.VersionTLS12 {
				t.Fatalf("options %+v", o)
			}
			if h.fakes[0].authorize == nil {
				t.Fatal("Step without the Decider as Authorizer")
			}
		})
	}
}

func TestStatusServerIsRateLimitedPerClient(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	answered := 0
	for i := range statusServerBurst + 10 {
		req := buildRequest(t, lradius.CodeStatusServer, byte(i), h.secret, nil, true, false)
		if h.handle(h.nasAddr, portAuth, req) != nil {
			answered++
		}
	}
	// The limiter refills with time; the frozen test clock does not drive
	// it, so allow a refill of a few tokens on a slow machine.
	if answered < statusServerBurst || answered >= statusServerBurst+10 {
		t.Fatalf("answered %d of %d", answered, statusServerBurst+10)
	}
	if h.metrics.get("drop/"+DropRateLimited) == 0 {
		t.Fatal("rate-limited drops not counted")
	}
	// Another client has its own budget.
	req := buildRequest(t, lradius.CodeStatusServer, 1, h.secret, nil, true, false)
	if h.handle(netip.MustParseAddrPort("203.0.113.1:1"), portAuth, req) == nil {
		t.Fatal("other client limited too")
	}
}

func TestListenAndServeReportsBadAddress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	if err := h.s.ListenAndServe(context.Background(), "127.0.0.1:notaport", ""); err == nil {
		t.Fatal("no error for a bad address")
	}
}

// audited returns the audit events once every decision made so far is
// written (decisions reach the chain in groups, after their replies).
func (h *harness) audited() []store.AuditEvent {
	h.s.groups.Flush()
	return h.audit.all()
}

// TestRejectStormIsAuditedOnBudget: 1,000 rejects of one certificate from
// one station write one audit event in the window, then one carrying the
// count; the metric counts all of them.
func TestRejectStormIsAuditedOnBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.leaf = h.pki.clients["unbound"].cert
	station := &lradius.AVP{Type: attrCallingStationID, Attribute: []byte("02-00-00-00-00-99")}
	for range 1000 {
		h.runToEnd(h.nasAddr, station)
	}
	if got := h.metrics.get("reject/unknown_cert"); got != 1000 {
		t.Fatalf("metric counted %d rejects, want 1000", got)
	}
	if evs := h.audited(); len(evs) != 1 {
		t.Fatalf("%d audit events for 1,000 rejects in one window, want 1", len(evs))
	}
	h.advance(2 * time.Minute)
	h.runToEnd(h.nasAddr, station)
	evs := h.audited()
	if len(evs) != 2 || !strings.Contains(evs[1].Reason, "suppressed_before=999") {
		t.Fatalf("after the window: %d events, last %+v", len(evs), evs[len(evs)-1])
	}
}

// TestForgedLeafRefusalNamesWhatItClaimed: a leaf signed with the real
// issuing key, claiming a real device in its SAN URI but bound to nothing,
// is refused and audited with the device it claims, its hash and serial,
// the station and the protocol.
func TestForgedLeafRefusalNamesWhatItClaimed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0xd00001), Subject: pkix.Name{CommonName: "d-000001"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{ca.DeviceURI("d-000001")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, h.pki.ca.cert, key.Public(), h.pki.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if h.leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	_, resp := h.runToEnd(h.nasAddr, &lradius.AVP{Type: attrCallingStationID, Attribute: []byte("02-00-00-00-00-42")})
	if p, _ := lradius.Parse(resp, h.secret); p.Code != lradius.CodeAccessReject {
		t.Fatalf("forged leaf: %v", p.Code)
	}
	evs := h.audited()
	if len(evs) != 1 || evs[0].Subject != "d-000001" || evs[0].Result != "reject" {
		t.Fatalf("audit %+v", evs)
	}
	for _, want := range []string{"unknown_cert ", " cert_sha256=" + store.HashCert(h.leaf).String(), " serial=d00001",
		" claimed_device=d-000001", " calling_station=02-00-00-00-00-42", " protocol=eap-tls/tls1.3"} {
		if !strings.Contains(" "+evs[0].Reason, want) {
			t.Errorf("reason %q lacks %q", evs[0].Reason, want)
		}
	}
}
