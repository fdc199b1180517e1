package eaptls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture holds one PKI and the certificates every test uses.
type fixture struct {
	pki     *testPKI
	server  tls.Certificate
	client  tls.Certificate
	foreign tls.Certificate // client cert from an unrelated CA
	expired tls.Certificate
	future  tls.Certificate // client cert not valid yet
	srvEKU  tls.Certificate // client cert with serverAuth EKU only
}

var (
	fixOnce sync.Once
	fix     *fixture
)

// getFixture builds the PKI once per test binary: ECDSA key generation is
// the slow part and the certificates are read-only.
func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		p := newPKI(t, "hb")
		other := newPKI(t, "ev")
		fix = &fixture{
			pki:     p,
			server:  p.leaf(t, leafOpts{cn: "radius", dns: "radius", eku: x509.ExtKeyUsageServerAuth}),
			client:  p.leaf(t, leafOpts{cn: "dev1", eku: x509.ExtKeyUsageClientAuth}),
			foreign: other.leaf(t, leafOpts{cn: "dev2", eku: x509.ExtKeyUsageClientAuth}),
			expired: p.leaf(t, leafOpts{cn: "dev3", eku: x509.ExtKeyUsageClientAuth,
				notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)}),
			future: p.leaf(t, leafOpts{cn: "dev5", eku: x509.ExtKeyUsageClientAuth,
				notBefore: time.Now().Add(24 * time.Hour), notAfter: time.Now().Add(48 * time.Hour)}),
			srvEKU: p.leaf(t, leafOpts{cn: "dev4", eku: x509.ExtKeyUsageServerAuth}),
		}
	})
	if fix == nil {
		t.Fatal("fixture setup failed")
	}
	return fix
}

func (f *fixture) newServer(t testing.TB, mod func(*ServerConfig)) *Server {
	t.Helper()
	cfg := ServerConfig{TLS: &tls.Config{
		Certificates: []tls.Certificate{f.server},
		ClientCAs:    f.pki.rootPool,
	}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) peerTLS(cert *tls.Certificate, maxVersion uint16) *tls.Config {
	c := &tls.Config{RootCAs: f.pki.rootPool, ServerName: "radius", MaxVersion: maxVersion}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// conv records one in-process conversation.
type conv struct {
	res      Result[string]
	err      error
	rounds   int // server Step calls (= RADIUS round trips)
	replies  [][]byte
	resps    [][]byte
	peerDone bool
	peerErr  error
}

// converse drives sess and peer until the server ends the conversation,
// with authorize deciding (nil allows).
func converse(t testing.TB, sess *Session[string], peer *Peer, authorize Authorizer[string]) conv {
	t.Helper()
	var c conv
	msg := peer.Identity(7)
	for range 300 {
		c.resps = append(c.resps, msg)
		res, err := sess.Step(context.Background(), msg, authorize)
		c.rounds++
		c.res, c.err = res, err
		c.replies = append(c.replies, res.Reply)
		if res.Outcome != Continue {
			_, c.peerDone, c.peerErr = peer.Step(res.Reply)
			return c
		}
		if err != nil {
			t.Fatalf("Step returned Continue with error %v", err)
		}
		resp, done, perr := peer.Step(res.Reply)
		if perr != nil || done {
			t.Fatalf("peer ended before the server: done=%v err=%v", done, perr)
		}
		msg = resp
	}
	t.Fatal("conversation did not end")
	return c
}

func TestConversationSucceeds(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name        string
		version     uint16 // peer MaxVersion
		sessMax     uint16
		srvMTU      int
		peerMTU     int
		maxFragment int
		wantVersion uint16
		wantRounds  int // 0: don't check
	}{
		{name: "tls12_mtu1400_four_rounds", version: tls.VersionTLS12, srvMTU: 1400, peerMTU: 1400, wantVersion: tls.VersionTLS12, wantRounds: 4},
		{name: "tls13_mtu1400_four_rounds", version: tls.VersionTLS13, srvMTU: 1400, peerMTU: 1400, wantVersion: tls.VersionTLS13, wantRounds: 4},
		{name: "tls12_mtu200_fragments_both_ways", version: tls.VersionTLS12, srvMTU: 200, peerMTU: 200, wantVersion: tls.VersionTLS12},
		{name: "tls13_mtu200_fragments_both_ways", version: tls.VersionTLS13, srvMTU: 200, peerMTU: 200, wantVersion: tls.VersionTLS13},
		{name: "tls13_default_mtu", version: tls.VersionTLS13, wantVersion: tls.VersionTLS13},
		{name: "tls13_tiny_mtu_ignored", version: tls.VersionTLS13, srvMTU: 50, peerMTU: 50, wantVersion: tls.VersionTLS13},
		{name: "tls12_maxfragment_caps_mtu", version: tls.VersionTLS12, srvMTU: 1400, peerMTU: 1400, maxFragment: 300, wantVersion: tls.VersionTLS12},
		{name: "session_maxversion_caps_tls13_peer", version: tls.VersionTLS13, sessMax: tls.VersionTLS12, srvMTU: 1400, peerMTU: 1400, wantVersion: tls.VersionTLS12, wantRounds: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := f.newServer(t, func(c *ServerConfig) { c.MaxFragment = tc.maxFragment })
			var keylog bytes.Buffer
			ptls := f.peerTLS(&f.client, tc.version)
			ptls.KeyLogWriter = &keylog
			peer := NewPeer(context.Background(), PeerConfig{TLS: ptls, Identity: "anonymous@hb", MTU: tc.peerMTU})
			defer peer.Close()
			sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: tc.srvMTU, MaxVersion: tc.sessMax})
			defer sess.Close()

			c := converse(t, sess, peer, nil)
			if c.res.Outcome != Success || c.err != nil {
				t.Fatalf("server outcome %v err %v", c.res.Outcome, c.err)
			}
			if !c.peerDone || c.peerErr != nil {
				t.Fatalf("peer done=%v err=%v", c.peerDone, c.peerErr)
			}
			if tc.wantRounds != 0 && c.rounds != tc.wantRounds {
				t.Errorf("rounds = %d, want %d", c.rounds, tc.wantRounds)
			}
			if got := sess.Identity(); got != "anonymous@hb" {
				t.Errorf("Identity = %q", got)
			}
			cs := sess.ConnectionState()
			if cs.Version != tc.wantVersion {
				t.Fatalf("version %#x, want %#x", cs.Version, tc.wantVersion)
			}
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "dev1" {
				t.Errorf("peer certificate not visible in ConnectionState")
			}
			checkSizes(t, c, tc.srvMTU, tc.peerMTU, tc.maxFragment)
			for i := range c.replies {
				t.Logf("round %d: peer %d bytes, server %d bytes", i, len(c.resps[i]), len(c.replies[i]))
			}
			checkKeys(t, sess, peer, &cs, keylog.String())
			// The final reply is a 4-byte EAP-Success answering the last
			// response's Identifier.
			last := c.replies[len(c.replies)-1]
			if !bytes.Equal(last, []byte{CodeSuccess, c.resps[len(c.resps)-1][1], 0, 4}) {
				t.Errorf("final reply % x", last)
			}
			// Every EAP-Request (fragments and ACKs included) takes the next
			// Identifier, and each response echoes its request's.
			for i := 1; i < len(c.replies)-1; i++ {
				if c.replies[i][1] != c.replies[i-1][1]+1 || c.resps[i+1][1] != c.replies[i][1] {
					t.Fatalf("round %d: request id %d after %d, response id %d", i, c.replies[i][1], c.replies[i-1][1], c.resps[i+1][1])
				}
			}
			if tc.srvMTU == 200 && !sawFlags(c.replies, flagLength|flagMore) {
				t.Errorf("server never sent an L|M first fragment at MTU 200")
			}
			if tc.peerMTU == 200 && !sawFlags(c.resps, flagLength|flagMore) {
				t.Errorf("peer never sent an L|M first fragment at MTU 200")
			}
		})
	}
}

func sawFlags(pkts [][]byte, want byte) bool {
	for _, b := range pkts {
		if len(b) > 5 && b[4] == TypeTLS && b[5]&(flagLength|flagMore) == want {
			return true
		}
	}
	return false
}

// checkSizes asserts every EAP packet fits Framed-MTU minus the EAPOL
// header and that L is never set on an unfragmented message.
func checkSizes(t *testing.T, c conv, srvMTU, peerMTU, maxFrag int) {
	t.Helper()
	check := func(who string, pkts [][]byte, mtu, maxFrag int) {
		limit := fragmentSize(mtu, maxFrag) + fragOverhead - 4
		for i, b := range pkts {
			if len(b) > limit {
				t.Errorf("%s packet %d is %d bytes, limit %d", who, i, len(b), limit)
			}
			if len(b) > 5 && b[4] == TypeTLS && b[5]&flagLength != 0 && b[5]&flagMore == 0 {
				t.Errorf("%s packet %d sets L on an unfragmented message", who, i)
			}
		}
	}
	check("server", c.replies, srvMTU, maxFrag)
	check("peer", c.resps, peerMTU, 0)
}

func checkKeys(t *testing.T, sess *Session[string], peer *Peer, cs *tls.ConnectionState, keylog string) {
	t.Helper()
	msk, emsk := sess.Keys()
	pmsk, pemsk := peer.Keys()
	if len(msk) != 64 || len(emsk) != 64 {
		t.Fatalf("server key lengths %d/%d", len(msk), len(emsk))
	}
	if !bytes.Equal(msk, pmsk) || !bytes.Equal(emsk, pemsk) {
		t.Fatalf("MSK/EMSK differ between server and peer")
	}
	if bytes.Equal(msk, emsk) {
		t.Fatalf("MSK equals EMSK")
	}
	sid, psid := sess.SessionID(), peer.SessionID()
	if len(sid) != 65 || sid[0] != 0x0D || !bytes.Equal(sid, psid) {
		t.Fatalf("Session-Id server % x peer % x", sid, psid)
	}
	var want []byte
	var err error
	switch cs.Version {
	case tls.VersionTLS12:
		want, err = cs.ExportKeyingMaterial("client EAP encryption", nil, 128)
		// Session-Id = 0x0D || client.random || server.random; the key log
		// line "CLIENT_RANDOM <client random> <master secret>" gives the
		// client random independently of our hello parser.
		var cr string
		for line := range strings.Lines(keylog) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "CLIENT_RANDOM" {
				cr = f[1]
			}
		}
		if cr != hex.EncodeToString(sid[1:33]) {
			t.Errorf("Session-Id client random %x, key log %s", sid[1:33], cr)
		}
	case tls.VersionTLS13:
		want, err = cs.ExportKeyingMaterial("EXPORTER_EAP_TLS_Key_Material", []byte{0x0D}, 128)
		mid, err2 := cs.ExportKeyingMaterial("EXPORTER_EAP_TLS_Method-Id", []byte{0x0D}, 64)
		if err2 != nil || !bytes.Equal(sid[1:], mid) {
			t.Errorf("TLS 1.3 Session-Id is not 0x0D || Method-Id (%v)", err2)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(msk, emsk...), want) {
		t.Fatalf("MSK||EMSK differ from the RFC exporter output")
	}
}

type countingMetrics struct {
	mu  sync.Mutex
	got map[string]int
}

func (m *countingMetrics) ChainCache(hit bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got == nil {
		m.got = map[string]int{}
	}
	k := "chain/miss"
	if hit {
		k = "chain/hit"
	}
	m.got[k]++
}

func (m *countingMetrics) Resumed(version, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got == nil {
		m.got = map[string]int{}
	}
	m.got["resumed/"+version+"/"+result]++
}

func (m *countingMetrics) TicketIgnored(cause string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got == nil {
		m.got = map[string]int{}
	}
	m.got["ticket/"+cause]++
}

func (m *countingMetrics) Handshake(version string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got == nil {
		m.got = map[string]int{}
	}
	k := version + "/fail"
	if ok {
		k = version + "/ok"
	}
	m.got[k]++
}

func TestConversationFails(t *testing.T) {
	f := getFixture(t)
	errDenied := errors.New("device quarantined")
	deny := func(context.Context, tls.ConnectionState) (string, error) { return "quarantined", errDenied }
	incompatible := func(err error) bool {
		inv, ok := errors.AsType[x509.CertificateInvalidError](err)
		return ok && inv.Reason == x509.IncompatibleUsage
	}
	tests := []struct {
		name       string
		cert       *tls.Certificate
		version    uint16
		omitCAs    bool
		authorize  Authorizer[string]
		wantErr    error            // a sentinel the Step error wraps
		wantCause  func(error) bool // or another check of it
		wantAuth   bool             // AuthErr must be errDenied, the decision returned
		wantAlert  bool             // server sent TLS data right before EAP-Failure
		wantMetric string
	}{
		{name: "authorizer_rejects_tls12", cert: &f.client, version: tls.VersionTLS12, authorize: deny, wantErr: errDenied, wantAuth: true, wantAlert: true, wantMetric: "1.2/fail"},
		{name: "authorizer_rejects_tls13", cert: &f.client, version: tls.VersionTLS13, authorize: deny, wantErr: errDenied, wantAuth: true, wantAlert: true, wantMetric: "1.3/fail"},
		{name: "no_client_cert_tls12", version: tls.VersionTLS12, wantErr: ErrNoClientCert, wantAlert: true},
		{name: "no_client_cert_tls13", version: tls.VersionTLS13, wantErr: ErrNoClientCert, wantAlert: true},
		{name: "no_client_cert_omit_ca_names_tls13", version: tls.VersionTLS13, omitCAs: true, wantErr: ErrNoClientCert, wantAlert: true},
		{name: "foreign_ca_tls12", cert: &f.foreign, version: tls.VersionTLS12, wantErr: ErrUnknownIssuer, wantAlert: true},
		{name: "foreign_ca_tls13", cert: &f.foreign, version: tls.VersionTLS13, wantErr: ErrUnknownIssuer, wantAlert: true},
		{name: "foreign_ca_omit_ca_names_tls12", cert: &f.foreign, version: tls.VersionTLS12, omitCAs: true, wantErr: ErrUnknownIssuer, wantAlert: true},
		{name: "expired_cert_tls13", cert: &f.expired, version: tls.VersionTLS13, wantErr: ErrCertExpired, wantAlert: true},
		{name: "expired_cert_tls12", cert: &f.expired, version: tls.VersionTLS12, wantErr: ErrCertExpired, wantAlert: true},
		{name: "not_yet_valid_cert_tls12", cert: &f.future, version: tls.VersionTLS12, wantErr: ErrCertExpired, wantAlert: true},
		{name: "not_yet_valid_cert_tls13", cert: &f.future, version: tls.VersionTLS13, wantErr: ErrCertExpired, wantAlert: true},
		{name: "server_auth_eku_only_tls13", cert: &f.srvEKU, version: tls.VersionTLS13, wantCause: incompatible, wantAlert: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &countingMetrics{}
			srv := f.newServer(t, func(c *ServerConfig) { c.Metrics = m; c.OmitCANames = tc.omitCAs })
			ptls := f.peerTLS(tc.cert, tc.version)
			if tc.cert != nil {
				// GetClientCertificate, not Certificates: Go's client
				// silently sends no certificate when it does not chain to
				// the server's CA names, and the foreign-CA cases must
				// really present theirs.
				ptls.Certificates = nil
				ptls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tc.cert, nil }
			}
			peer := NewPeer(context.Background(), PeerConfig{TLS: ptls, Identity: "x", MTU: 1400})
			defer peer.Close()
			called := false
			authorize := tc.authorize
			if authorize == nil {
				authorize = func(context.Context, tls.ConnectionState) (string, error) { called = true; return "allowed", nil }
			}
			sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
			defer sess.Close()

			c := converse(t, sess, peer, authorize)
			if c.res.Outcome != Failure || c.err == nil {
				t.Fatalf("server outcome %v err %v", c.res.Outcome, c.err)
			}
			if tc.wantErr != nil && !errors.Is(c.err, tc.wantErr) {
				t.Fatalf("err %v, want %v", c.err, tc.wantErr)
			}
			if tc.wantCause != nil && !tc.wantCause(c.err) {
				t.Fatalf("err %v does not carry the expected cause", c.err)
			}
			// Each cause carries its own sentinel only, so a caller's
			// errors.Is switch cannot pick the wrong one.
			for _, other := range []error{ErrNoClientCert, ErrUnknownIssuer, ErrCertExpired} {
				if other != tc.wantErr && errors.Is(c.err, other) {
					t.Fatalf("err %v also matches %v", c.err, other)
				}
			}
			if !errors.Is(c.peerErr, ErrFailure) {
				t.Fatalf("peer err %v, want ErrFailure", c.peerErr)
			}
			if msk, emsk := sess.Keys(); msk != nil || emsk != nil {
				t.Fatalf("keys after failure")
			}
			if msk, _ := peer.Keys(); msk != nil {
				t.Fatalf("peer keys after failure")
			}
			if called {
				t.Fatalf("Authorizer ran for an unverified chain")
			}
			if tc.wantAuth {
				if !errors.Is(sess.AuthErr(), errDenied) {
					t.Fatalf("AuthErr = %v", sess.AuthErr())
				}
				if !c.res.Decided || c.res.Decision != "quarantined" {
					t.Fatalf("final result carries decision %q (decided %v)", c.res.Decision, c.res.Decided)
				}
			} else if c.res.Decided {
				t.Fatalf("decision %q without an Authorizer run", c.res.Decision)
			}
			last := c.replies[len(c.replies)-1]
			if len(last) != 4 || last[0] != CodeFailure {
				t.Fatalf("final reply % x", last)
			}
			if tc.wantAlert {
				// alert in an EAP-Request, the peer's ACK, then EAP-Failure.
				prev := c.replies[len(c.replies)-2]
				if len(prev) <= 6 || prev[4] != TypeTLS {
					t.Fatalf("reply before EAP-Failure carries no TLS alert: % x", prev)
				}
				// TLS 1.2: the alert is plaintext and there is no
				// ChangeCipherSpec, so no Finished was sent.
				if tc.version == tls.VersionTLS12 && (prev[6] != 21 || bytes.Contains(prev[6:], []byte{20, 3, 3, 0, 1, 1})) {
					t.Fatalf("TLS 1.2 rejection is not a bare alert: % x", prev[6:])
				}
				ack := c.resps[len(c.resps)-1]
				if !bytes.Equal(ack[4:], []byte{TypeTLS, 0}) {
					t.Fatalf("peer did not ACK the alert: % x", ack)
				}
			}
			if tc.wantMetric != "" && m.got[tc.wantMetric] != 1 {
				t.Fatalf("metrics %v, want %s", m.got, tc.wantMetric)
			}
		})
	}
}

// startSession returns a session that has sent EAP-TLS Start and its
// Identifier.
func startSession(t *testing.T, srv *Server) (*Session[string], uint8) {
	t.Helper()
	sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
	t.Cleanup(sess.Close)
	res, err := sess.Step(context.Background(), Packet{Code: CodeResponse, ID: 3, Type: TypeIdentity, Data: []byte("x")}.Encode(), nil)
	if err != nil || res.Outcome != Continue {
		t.Fatalf("identity: %v %v", res.Outcome, err)
	}
	if !bytes.Equal(res.Reply, []byte{CodeRequest, 4, 0, 6, TypeTLS, flagStart}) {
		t.Fatalf("start % x", res.Reply)
	}
	return sess, res.Reply[1]
}

func tlsResp(id, flags byte, body ...byte) []byte {
	return Packet{Code: CodeResponse, ID: id, Type: TypeTLS, Data: append([]byte{flags}, body...)}.Encode()
}

func TestStepRejectsBadPackets(t *testing.T) {
	f := getFixture(t)
	big := bytes.Repeat([]byte{0x16}, 400)
	tests := []struct {
		name    string
		maxMsg  int
		packets func(id byte) [][]byte // all but the last must be answered with Continue
		want    error
	}{
		{name: "start_flag_from_peer", packets: func(id byte) [][]byte { return [][]byte{tlsResp(id, flagStart)} }, want: ErrMalformed},
		{name: "length_flag_without_length", packets: func(id byte) [][]byte { return [][]byte{tlsResp(id, flagLength, 0, 1)} }, want: ErrMalformed},
		{name: "unfragmented_length_mismatch", packets: func(id byte) [][]byte {
			return [][]byte{tlsResp(id, flagLength, 0, 0, 0, 9, 1, 2, 3)}
		}, want: ErrMalformed},
		{name: "declared_length_over_limit", packets: func(id byte) [][]byte {
			return [][]byte{tlsResp(id, flagLength|flagMore, 0, 1, 0, 1, 1, 2, 3)}
		}, want: ErrTooLarge},
		{name: "inconsistent_length_between_fragments", packets: func(id byte) [][]byte {
			return [][]byte{
				tlsResp(id, flagLength|flagMore, append([]byte{0, 0, 3, 0}, big...)...),
				tlsResp(id+1, flagLength|flagMore, append([]byte{0, 0, 4, 0}, big...)...),
			}
		}, want: ErrMalformed},
		{name: "fragments_beyond_declared_length", packets: func(id byte) [][]byte {
			return [][]byte{
				tlsResp(id, flagLength|flagMore, append([]byte{0, 0, 2, 0}, big...)...),
				tlsResp(id+1, 0, big...),
			}
		}, want: ErrMalformed},
		{name: "oversize_reassembly_without_length", maxMsg: 1000, packets: func(id byte) [][]byte {
			return [][]byte{tlsResp(id, flagMore, big...), tlsResp(id+1, flagMore, big...), tlsResp(id+2, flagMore, big...)}
		}, want: ErrTooLarge},
		{name: "empty_fragment_with_more", packets: func(id byte) [][]byte { return [][]byte{tlsResp(id, flagMore)} }, want: ErrMalformed},
		{name: "ack_instead_of_client_hello", packets: func(id byte) [][]byte { return [][]byte{tlsResp(id, 0)} }, want: ErrProtocol},
		{name: "request_code_from_peer", packets: func(id byte) [][]byte {
			return [][]byte{Packet{Code: CodeRequest, ID: id, Type: TypeTLS, Data: []byte{0}}.Encode()}
		}, want: ErrProtocol},
		{name: "nak", packets: func(id byte) [][]byte {
			return [][]byte{Packet{Code: CodeResponse, ID: id, Type: TypeNak, Data: []byte{4}}.Encode()}
		}, want: ErrNak},
		{name: "other_method", packets: func(id byte) [][]byte {
			return [][]byte{Packet{Code: CodeResponse, ID: id, Type: 4, Data: []byte{1}}.Encode()}
		}, want: ErrProtocol},
		{name: "eap_length_beyond_buffer", packets: func(id byte) [][]byte { return [][]byte{{CodeResponse, id, 0, 50, TypeTLS, 0}} }, want: ErrMalformed},
		{name: "truncated_header", packets: func(id byte) [][]byte { return [][]byte{{CodeResponse, id}} }, want: ErrMalformed},
		{name: "garbage_tls_record", packets: func(id byte) [][]byte { return [][]byte{tlsResp(id, 0, 0x16, 3, 1, 0, 2, 1, 0)} }, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := f.newServer(t, func(c *ServerConfig) { c.MaxMessage = tc.maxMsg })
			sess, id := startSession(t, srv)
			pkts := tc.packets(id)
			var res Result[string]
			var err error
			for i, p := range pkts {
				res, err = sess.Step(context.Background(), p, nil)
				if i < len(pkts)-1 && (res.Outcome != Continue || err != nil) {
					t.Fatalf("packet %d: %v %v", i, res.Outcome, err)
				}
			}
			if tc.want == nil {
				// Garbage TLS: the server answers with an alert, then fails
				// on the peer's ACK.
				if res.Outcome == Continue {
					res, err = sess.Step(context.Background(), tlsResp(res.Reply[1], 0), nil)
				}
				if res.Outcome != Failure || err == nil {
					t.Fatalf("got %v %v, want Failure", res.Outcome, err)
				}
				return
			}
			if res.Outcome != Failure || !errors.Is(err, tc.want) {
				t.Fatalf("got %v %v, want Failure %v", res.Outcome, err, tc.want)
			}
			if len(res.Reply) != 4 || res.Reply[0] != CodeFailure {
				t.Fatalf("reply % x", res.Reply)
			}
			// Once finished, Step repeats the final answer.
			if res2, err := sess.Step(context.Background(), pkts[0], nil); !errors.Is(err, ErrDone) || res2.Outcome != Failure {
				t.Fatalf("after end: %v %v", res2.Outcome, err)
			}
		})
	}
}

func TestStaleIdentifierIgnored(t *testing.T) {
	f := getFixture(t)
	srv := f.newServer(t, nil)
	sess, id := startSession(t, srv)
	start := []byte{CodeRequest, id, 0, 6, TypeTLS, flagStart}
	peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 1400})
	defer peer.Close()
	hello, _, err := peer.Step(start)
	if err != nil {
		t.Fatal(err)
	}
	// The ClientHello under a stale Identifier must not reach TLS: the
	// server re-sends Start unchanged.
	stale := bytes.Clone(hello)
	stale[1] = id - 1
	res, err := sess.Step(context.Background(), stale, nil)
	if err != nil || res.Outcome != Continue || !res.Ignored || !bytes.Equal(res.Reply, start) {
		t.Fatalf("stale: %v %v ignored=%v % x", res.Outcome, err, res.Ignored, res.Reply)
	}
	// The real one continues normally to Success.
	msg := hello
	for range 10 {
		res, err = sess.Step(context.Background(), msg, nil)
		if res.Outcome != Continue {
			break
		}
		if res.Ignored {
			t.Fatal("valid response ignored")
		}
		msg, _, err = peer.Step(res.Reply)
		if err != nil {
			t.Fatal(err)
		}
	}
	if res.Outcome != Success || err != nil {
		t.Fatalf("outcome %v %v", res.Outcome, err)
	}
	if _, done, err := peer.Step(res.Reply); !done || err != nil {
		t.Fatalf("peer %v %v", done, err)
	}
}

func TestTooManyStaleIdentifiersFail(t *testing.T) {
	f := getFixture(t)
	sess, id := startSession(t, f.newServer(t, nil))
	var res Result[string]
	var err error
	for range maxIgnored + 1 {
		res, err = sess.Step(context.Background(), tlsResp(id+100, 0), nil)
	}
	if res.Outcome != Failure || !errors.Is(err, ErrTooManyRounds) {
		t.Fatalf("got %v %v", res.Outcome, err)
	}
}

func TestMaxRoundsFail(t *testing.T) {
	f := getFixture(t)
	srv := f.newServer(t, func(c *ServerConfig) { c.MaxRounds = 3 })
	peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 200})
	defer peer.Close()
	sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 200})
	defer sess.Close()
	c := converse(t, sess, peer, nil)
	if c.res.Outcome != Failure || !errors.Is(c.err, ErrTooManyRounds) || c.rounds != 4 {
		t.Fatalf("got %v %v after %d rounds", c.res.Outcome, c.err, c.rounds)
	}
}

func TestIdentityRequestForEmptyStart(t *testing.T) {
	f := getFixture(t)
	sess := NewSession[string](context.Background(), f.newServer(t, nil), SessionOptions{})
	defer sess.Close()
	res, err := sess.Step(context.Background(), nil, nil)
	if err != nil || res.Outcome != Continue {
		t.Fatal(res.Outcome, err)
	}
	p, err := ParsePacket(res.Reply)
	if err != nil || p.Code != CodeRequest || p.Type != TypeIdentity {
		t.Fatalf("reply % x (%v)", res.Reply, err)
	}
	res, err = sess.Step(context.Background(), Packet{Code: CodeResponse, ID: p.ID, Type: TypeIdentity, Data: []byte("a")}.Encode(), nil)
	if err != nil || res.Outcome != Continue || res.Reply[5] != flagStart || res.Reply[1] != p.ID+1 {
		t.Fatalf("start % x %v", res.Reply, err)
	}
}

func TestHandshakeTimeoutFails(t *testing.T) {
	f := getFixture(t)
	srv := f.newServer(t, func(c *ServerConfig) { c.HandshakeTimeout = 50 * time.Millisecond })
	peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 1400})
	defer peer.Close()
	sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
	defer sess.Close()
	// The Authorizer (whose Step ctx never ends) allows only once the
	// session's own deadline closed the conn, so the timeout fires
	// deterministically mid-handshake and the handshake cannot finish.
	authorize := func(context.Context, tls.ConnectionState) (string, error) {
		for deadline := time.Now().Add(10 * time.Second); !sess.conn.isClosed(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				return "", errors.New("session deadline never closed the conn")
			}
		}
		return "allowed", nil
	}
	c := converse(t, sess, peer, authorize)
	if c.res.Outcome != Failure || !errors.Is(c.err, ErrTimeout) {
		t.Fatalf("outcome %v err %v, want Failure with ErrTimeout", c.res.Outcome, c.err)
	}
	if msk, _ := sess.Keys(); msk != nil {
		t.Fatal("keys after a timeout")
	}
}

// The Authorizer runs with the ctx of the Step that delivered the peer's
// certificate, and from that Step on every Result carries its decision,
// for both TLS versions (TLS 1.2 decides in the round before the server's
// Finished, TLS 1.3 in the round that ends with the success indication).
func TestStepReturnsDecision(t *testing.T) {
	f := getFixture(t)
	type roundKey struct{}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			srv := f.newServer(t, nil)
			sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
			defer sess.Close()
			peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, version), MTU: 1400})
			defer peer.Close()
			decidedIn := 0
			authorize := func(ctx context.Context, cs tls.ConnectionState) (string, error) {
				decidedIn = ctx.Value(roundKey{}).(int)
				return cs.PeerCertificates[0].Subject.CommonName, nil
			}
			msg := peer.Identity(1)
			for round := 1; ; round++ {
				if round > 10 {
					t.Fatal("conversation did not end")
				}
				res, err := sess.Step(context.WithValue(context.Background(), roundKey{}, round), msg, authorize)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if want := decidedIn != 0; res.Decided != want || (want && res.Decision != "dev1") {
					t.Fatalf("round %d (decided in %d): decision %q, decided %v", round, decidedIn, res.Decision, res.Decided)
				}
				if res.Outcome == Success {
					break
				}
				if msg, _, err = peer.Step(res.Reply); err != nil {
					t.Fatal(err)
				}
			}
			if decidedIn == 0 {
				t.Fatal("the Authorizer never ran")
			}
			// Once finished, Step repeats the final answer, decision included.
			if res, err := sess.Step(context.Background(), msg, nil); !errors.Is(err, ErrDone) || res.Outcome != Success || res.Decision != "dev1" {
				t.Fatalf("after the end: %v %v %q", res.Outcome, err, res.Decision)
			}
		})
	}
}

func TestCancelledContextFails(t *testing.T) {
	f := getFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sess := NewSession[string](ctx, f.newServer(t, nil), SessionOptions{MTU: 1400})
	defer sess.Close()
	peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 1400})
	defer peer.Close()
	c := converse(t, sess, peer, nil)
	if c.res.Outcome != Failure || !errors.Is(c.err, ErrClosed) {
		t.Fatalf("got %v %v", c.res.Outcome, c.err)
	}
}

// A handshake suspended between EAP rounds is a parked coroutine: Close,
// or the end of the session's context with no further Step (an idle NAS),
// must end it, for server sessions and peers alike.
func TestCloseEndsSuspendedHandshakes(t *testing.T) {
	f := getFixture(t)
	srv := f.newServer(t, nil)
	// settle waits (bounded) for exiting goroutines to be reaped.
	settle := func(limit int) int {
		n := runtimeNumGoroutine()
		for deadline := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(deadline); n = runtimeNumGoroutine() {
			time.Sleep(time.Millisecond)
		}
		return n
	}
	for _, how := range []string{"close", "context"} {
		t.Run(how, func(t *testing.T) {
			before := runtimeNumGoroutine()
			const sessions = 20
			var ends []func()
			var sessList []*Session[string]
			for range sessions {
				ctx, cancel := context.WithCancel(context.Background())
				sess := NewSession[string](ctx, srv, SessionOptions{MTU: 1400})
				res, err := sess.Step(context.Background(), Packet{Code: CodeResponse, ID: 3, Type: TypeIdentity, Data: []byte("x")}.Encode(), nil)
				if err != nil || res.Outcome != Continue {
					t.Fatal(res.Outcome, err)
				}
				peer := NewPeer(ctx, PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 1400})
				hello, _, err := peer.Step(res.Reply)
				if err != nil {
					t.Fatal(err)
				}
				// Server and peer handshakes are now both suspended in Read.
				if res, err := sess.Step(context.Background(), hello, nil); err != nil || res.Outcome != Continue {
					t.Fatal(res.Outcome, err)
				}
				sessList = append(sessList, sess)
				if how == "close" {
					ends = append(ends, sess.Close, peer.Close, cancel)
				} else {
					ends = append(ends, cancel)
					t.Cleanup(sess.Close)
					t.Cleanup(peer.Close)
				}
			}
			if n := runtimeNumGoroutine(); n < before+sessions {
				t.Fatalf("expected suspended handshakes: %d before, %d now", before, n)
			}
			for _, end := range ends {
				end()
				end() // idempotent
			}
			if n := settle(before); n > before {
				t.Fatalf("%d goroutines after the end, %d before", n, before)
			}
			// A NAS retransmitting afterwards gets a clean failure.
			res, err := sessList[0].Step(context.Background(), tlsResp(5, 0, 0x16, 3, 3, 0, 0), nil)
			if res.Outcome != Failure || !errors.Is(err, ErrClosed) {
				t.Fatalf("step after end: %v %v", res.Outcome, err)
			}
		})
	}
}

func TestNewServerRejectsIncompleteConfig(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{name: "nil_tls", cfg: ServerConfig{}},
		{name: "no_certificate", cfg: ServerConfig{TLS: &tls.Config{ClientCAs: f.pki.rootPool}}},
		{name: "no_client_cas", cfg: ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{f.server}}}},
		{name: "tiny_max_fragment", cfg: ServerConfig{MaxFragment: 10, TLS: &tls.Config{Certificates: []tls.Certificate{f.server}, ClientCAs: f.pki.rootPool}}},
		{name: "negative_max_fragment", cfg: ServerConfig{MaxFragment: -1, TLS: &tls.Config{Certificates: []tls.Certificate{f.server}, ClientCAs: f.pki.rootPool}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewServer(tc.cfg); err == nil {
				t.Fatal("NewServer accepted an incomplete config")
			}
		})
	}
}
