package eaptls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"testing"
)

func TestParsePacket(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Packet
		wantErr bool
	}{
		{name: "success", in: []byte{3, 9, 0, 4}, want: Packet{Code: 3, ID: 9}},
		{name: "failure_with_padding", in: []byte{4, 9, 0, 4, 0, 0}, want: Packet{Code: 4, ID: 9}},
		{name: "tls_start", in: []byte{1, 2, 0, 6, 13, 0x20}, want: Packet{Code: 1, ID: 2, Type: 13, Data: []byte{0x20}}},
		{name: "identity_padding_ignored", in: []byte{2, 1, 0, 6, 1, 'a', 'b'}, want: Packet{Code: 2, ID: 1, Type: 1, Data: []byte("a")}},
		{name: "too_short", in: []byte{1, 2, 0}, wantErr: true},
		{name: "length_below_header", in: []byte{1, 2, 0, 3}, wantErr: true},
		{name: "length_beyond_buffer", in: []byte{1, 2, 0, 9, 1}, wantErr: true},
		{name: "request_without_type", in: []byte{1, 2, 0, 4}, wantErr: true},
		{name: "success_with_data", in: []byte{3, 2, 0, 5, 1}, wantErr: true},
		{name: "unknown_code", in: []byte{7, 2, 0, 4}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePacket(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != tc.want.Code || got.ID != tc.want.ID || got.Type != tc.want.Type || !bytes.Equal(got.Data, tc.want.Data) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			// Encode is the inverse on the packet's own bytes.
			n := int(binary.BigEndian.Uint16(tc.in[2:4]))
			if enc := got.Encode(); !bytes.Equal(enc, tc.in[:n]) {
				t.Fatalf("Encode % x, want % x", enc, tc.in[:n])
			}
		})
	}
}

func TestFragmentSize(t *testing.T) {
	tests := []struct {
		name          string
		mtu, capBytes int
		want          int
	}{
		{name: "zero_mtu_defaults_1020", mtu: 0, want: 1006},
		{name: "tiny_mtu_ignored", mtu: 99, want: 1006},
		{name: "mtu_100_honoured", mtu: 100, want: 86},
		{name: "eapol_test_1400", mtu: 1400, want: 1386},
		{name: "cap_below_mtu", mtu: 1400, capBytes: 1000, want: 1000},
		{name: "cap_above_mtu", mtu: 500, capBytes: 1000, want: 486},
		{name: "jumbo_mtu_bounded_by_radius", mtu: 9000, want: maxFragment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fragmentSize(tc.mtu, tc.capBytes); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func record(typ byte, payload []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

func TestHelloParsing(t *testing.T) {
	random := bytes.Repeat([]byte{0xAB}, 32)
	// ServerHello body: version, random, session id (1 byte), suite, comp, extensions.
	sh := append([]byte{3, 3}, random...)
	sh = append(sh, 1, 0x77, 0xc0, 0x2b, 0)
	exts := []byte{0xff, 0x01, 0, 1, 0, 0, 23, 0, 0} // renegotiation_info, EMS
	sh = append(sh, byte(len(exts)>>8), byte(len(exts)))
	sh = append(sh, exts...)
	msg := append([]byte{hsServerHello, 0, byte(len(sh) >> 8), byte(len(sh))}, sh...)
	noEMS := bytes.Clone(msg)
	noEMS[len(noEMS)-4] = 22 // encrypt_then_mac instead

	tests := []struct {
		name    string
		stream  []byte
		wantOK  bool
		wantEMS bool
	}{
		{name: "one_record_with_ems", stream: record(22, msg), wantOK: true, wantEMS: true},
		{name: "one_record_without_ems", stream: record(22, noEMS), wantOK: true},
		{name: "split_across_records", stream: append(record(22, msg[:10]), record(22, msg[10:])...), wantOK: true, wantEMS: true},
		{name: "truncated_record", stream: record(22, msg)[:20]},
		{name: "not_handshake", stream: record(23, msg)},
		{name: "wrong_message_type", stream: record(22, append([]byte{hsClientHello}, msg[1:]...))},
		{name: "empty", stream: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, ok := firstHandshake(tc.stream, hsServerHello)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			r, ok := helloRandom(body)
			if !ok || !bytes.Equal(r, random) {
				t.Fatalf("random % x", r)
			}
			if got := serverHelloEMS(body); got != tc.wantEMS {
				t.Fatalf("EMS = %v", got)
			}
		})
	}
}

func TestReassemblerAcceptsLengthOnEveryFragment(t *testing.T) {
	r := reassembler{max: 1000, total: -1}
	lenHdr := []byte{0, 0, 0, 6}
	if _, done, err := r.add(flagLength|flagMore, append(bytes.Clone(lenHdr), 1, 2, 3)); done || err != nil {
		t.Fatal(done, err)
	}
	msg, done, err := r.add(flagLength, append(bytes.Clone(lenHdr), 4, 5, 6))
	if !done || err != nil || !bytes.Equal(msg, []byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("% x %v %v", msg, done, err)
	}
	// Unfragmented with L is accepted too.
	r.release()
	msg, done, err = r.add(flagLength, []byte{0, 0, 0, 2, 9, 9})
	if !done || err != nil || !bytes.Equal(msg, []byte{9, 9}) {
		t.Fatalf("% x %v %v", msg, done, err)
	}
}

func TestPeerRejectsPrematureSuccess(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name    string
		version uint16
		steps   int // server Steps before forging EAP-Success
		want    error
	}{
		{name: "before_start", steps: 0, want: ErrProtocol},
		{name: "tls13_before_success_indication", version: tls.VersionTLS13, steps: 2, want: ErrNoSuccessIndication},
		{name: "tls12_before_finished", version: tls.VersionTLS12, steps: 2, want: ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := f.newServer(t, nil)
			sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
			defer sess.Close()
			peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, tc.version), MTU: 1400})
			defer peer.Close()
			msg := peer.Identity(1)
			var id byte = 1
			for range tc.steps {
				res, err := sess.Step(context.Background(), msg, nil)
				if err != nil {
					t.Fatal(err)
				}
				id = res.Reply[1]
				if msg, _, err = peer.Step(res.Reply); err != nil {
					t.Fatal(err)
				}
			}
			_, done, err := peer.Step([]byte{CodeSuccess, id, 0, 4})
			if done || err == nil {
				t.Fatalf("peer accepted a forged EAP-Success: %v %v", done, err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if msk, _ := peer.Keys(); msk != nil {
				t.Fatal("keys after forged success")
			}
		})
	}
}

func TestPeerAlertsOnUntrustedServer(t *testing.T) {
	f := getFixture(t)
	other := newPKI(t, "zz")
	srv := f.newServer(t, nil)
	sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
	defer sess.Close()
	ptls := f.peerTLS(&f.client, 0)
	ptls.RootCAs = other.rootPool
	peer := NewPeer(context.Background(), PeerConfig{TLS: ptls, MTU: 1400})
	defer peer.Close()
	c := converse(t, sess, peer, nil)
	// The peer's alert in its EAP-Response ends the session with EAP-Failure
	// at once (no ACK round for peer alerts).
	if c.res.Outcome != Failure || c.rounds != 3 || !errors.Is(c.peerErr, ErrFailure) {
		t.Fatalf("server %v after %d rounds (%v), peer %v", c.res.Outcome, c.rounds, c.err, c.peerErr)
	}
	// TLS 1.3: change_cipher_spec (compat) + encrypted alert record.
	if alert := c.resps[2]; len(alert) < 7 || (alert[6] != 21 && alert[6] != 20) {
		t.Fatalf("peer response carries no TLS alert: % x", alert)
	}
}

func TestPeerAnswersRetransmittedRequest(t *testing.T) {
	f := getFixture(t)
	peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 1400})
	defer peer.Close()
	start := []byte{CodeRequest, 4, 0, 6, TypeTLS, flagStart}
	a, _, err := peer.Step(start)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := peer.Step(start)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("retransmitted Start answered differently (%v)", err)
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add([]byte{1, 2, 0, 6, 13, 0x20})
	f.Add([]byte{3, 2, 0, 4})
	f.Add([]byte{2, 1, 0, 10, 13, 0xc0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		enc := p.Encode()
		p2, err := ParsePacket(enc)
		if err != nil || p2.Code != p.Code || p2.ID != p.ID || p2.Type != p.Type || !bytes.Equal(p2.Data, p.Data) {
			t.Fatalf("round trip: %+v -> %+v (%v)", p, p2, err)
		}
		if p.Type == TypeTLS {
			flags, rest := tlsPayload(p.Data)
			r := reassembler{max: 1 << 12, total: -1}
			_, _, _ = r.add(flags, rest)
		}
	})
}

// splitPackets turns fuzz input into EAP packets: each is prefixed by one
// length byte; the Identifier is forced to the expected one when fix is set
// so the input reaches the TLS engine.
func splitPackets(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 && len(out) < 16 {
		n := int(b[0])
		b = b[1:]
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func FuzzSessionStep(f *testing.F) {
	fx := getFixture(f)
	srv := fx.newServer(f, func(c *ServerConfig) { c.MaxMessage = 4096; c.MaxRounds = 30 })
	f.Add([]byte{6, 2, 4, 0, 6, 13, 0}, true)
	f.Add([]byte{10, 2, 4, 0, 10, 13, 0xc0, 0, 0, 1, 0}, true)
	f.Add(append([]byte{14, 2, 4, 0, 14, 13, 0, 0x16, 3, 1, 0, 3, 1, 0, 0}, 6, 2, 5, 0, 6, 13, 0), false)
	// A real ClientHello, fragmented at MTU 100 so each piece fits the
	// one-byte length prefix: lets the fuzzer mutate from a live handshake.
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		peer := NewPeer(context.Background(), PeerConfig{TLS: fx.peerTLS(&fx.client, v), MTU: 100})
		var seed []byte
		resp, _, err := peer.Step([]byte{CodeRequest, 4, 0, 6, TypeTLS, flagStart})
		for id := byte(5); err == nil && len(resp) > 0 && len(resp) < 256; id++ {
			seed = append(append(seed, byte(len(resp))), resp...)
			if resp[5]&flagMore == 0 {
				break
			}
			resp, _, err = peer.Step(tlsPacket(CodeRequest, id, 0, 0, nil))
		}
		peer.Close()
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, fixID bool) {
		sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 200})
		defer sess.Close()
		res, err := sess.Step(context.Background(), Packet{Code: CodeResponse, ID: 3, Type: TypeIdentity, Data: []byte("f")}.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range splitPackets(in) {
			if fixID && len(p) >= 2 && res.Reply != nil {
				p = bytes.Clone(p)
				p[1] = res.Reply[1]
			}
			res, err = sess.Step(context.Background(), p, nil)
			if res.Outcome != Continue {
				if res.Reply == nil && !errors.Is(err, ErrDone) {
					t.Fatalf("%v without a reply (%v)", res.Outcome, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Continue with error %v", err)
			}
		}
	})
}

func FuzzPeerStep(f *testing.F) {
	fx := getFixture(f)
	f.Add([]byte{6, 1, 4, 0, 6, 13, 0x20, 6, 1, 5, 0, 6, 13, 0})
	f.Add([]byte{6, 1, 4, 0, 6, 13, 0x20, 4, 3, 5, 0, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		peer := NewPeer(context.Background(), PeerConfig{TLS: fx.peerTLS(&fx.client, 0), MTU: 200})
		defer peer.Close()
		for _, p := range splitPackets(in) {
			if _, done, err := peer.Step(p); done || err != nil {
				return
			}
		}
	})
}

func TestVerifyConnectionEMSPolicy(t *testing.T) {
	f := getFixture(t)
	tests := []struct {
		name    string
		allow   bool
		ems     bool
		version uint16
		want    error
	}{
		{name: "tls12_without_ems_rejected", version: tls.VersionTLS12, want: ErrNoEMS},
		{name: "tls12_without_ems_allowed_by_config", version: tls.VersionTLS12, allow: true},
		{name: "tls12_with_ems_accepted", version: tls.VersionTLS12, ems: true},
		{name: "tls13_needs_no_ems", version: tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := f.newServer(t, func(c *ServerConfig) { c.AllowNoEMS = tc.allow })
			sess := NewSession[string](context.Background(), srv, SessionOptions{})
			defer sess.Close()
			sess.ems = tc.ems
			cs := tls.ConnectionState{Version: tc.version, PeerCertificates: parseChain(t, f.client)}
			if err := sess.verifyConnection(cs); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestServerTLSDefaultsAndOverrides(t *testing.T) {
	f := getFixture(t)
	userCalled := false
	srv := f.newServer(t, func(c *ServerConfig) {
		c.TLS.CurvePreferences = []tls.CurveID{tls.CurveP256}
		c.TLS.VerifyConnection = func(tls.ConnectionState) error { userCalled = true; return nil }
	})
	// The chain, and that there is one, is checked in VerifyConnection
	// (cached), so Go is only told to ask for a certificate and check
	// CertificateVerify.
	if !srv.base.SessionTicketsDisabled || srv.base.ClientAuth != tls.RequestClientCert || srv.clientCAs == nil {
		t.Fatal("base config lacks tickets off / requested client cert / our own chain check")
	}
	if def := f.newServer(t, nil); len(def.base.CurvePreferences) != 2 || def.base.CurvePreferences[0] != tls.X25519 {
		t.Fatalf("default curves %v", def.base.CurvePreferences)
	}
	sess := NewSession[string](context.Background(), srv, SessionOptions{MTU: 1400})
	defer sess.Close()
	peer := NewPeer(context.Background(), PeerConfig{TLS: f.peerTLS(&f.client, 0), MTU: 1400})
	defer peer.Close()
	c := converse(t, sess, peer, nil)
	if c.res.Outcome != Success {
		t.Fatalf("outcome %v %v", c.res.Outcome, c.err)
	}
	if got := sess.ConnectionState().CurveID; got != tls.CurveP256 {
		t.Fatalf("curve %v, want P-256 from CurvePreferences", got)
	}
	if !userCalled {
		t.Fatal("caller's VerifyConnection was not chained")
	}
}
