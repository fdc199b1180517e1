package eapclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/vendors/microsoft"

	"hardbound/radius/packet"
	"hardbound/store"
)

func TestAuthenticateAcceptsBoundDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.device(t, "dev-ok", store.ComplianceCompliant, false)
	tests := []struct {
		name    string
		version uint16
		mtu     int
	}{
		{"accept/tls1.2", tls.VersionTLS12, 1400},
		{"accept/tls1.3", tls.VersionTLS13, 1400},
		{"accept/tls1.3-mtu-300-many-fragments", tls.VersionTLS13, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := e.client(t, e.auth, func(c *Config) { c.FramedMTU = tt.mtu })
			p := e.peer(d, tt.version, tt.mtu)
			defer p.Close()
			res, err := c.Authenticate(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Accepted || !res.KeysPresent || !res.KeysMatch {
				t.Fatalf("accepted %v keys present %v match %v", res.Accepted, res.KeysPresent, res.KeysMatch)
			}
			if res.RoundTrips < 4 || res.Retransmits != 0 || res.Discarded != 0 || res.Duration <= 0 {
				t.Fatalf("round trips %d retransmits %d discarded %d duration %v", res.RoundTrips, res.Retransmits, res.Discarded, res.Duration)
			}
			if len(res.Class) == 0 || res.SessionTimeout <= 0 || res.Reply.Code != radius.CodeAccessAccept {
				t.Fatalf("class %x session-timeout %v", res.Class, res.SessionTimeout)
			}

			// The Class ties accounting to the authentication.
			sid := "S-" + tt.name
			for _, st := range []AcctStatus{AcctStart, AcctStop} {
				resp, err := c.Accounting(context.Background(), st, radius.Attributes{
					{Type: 44, Attribute: radius.Attribute(sid)},
					{Type: attrClass, Attribute: res.Class},
				})
				if err != nil || resp.Code != radius.CodeAccountingResponse {
					t.Fatalf("accounting %d: %v", st, err)
				}
			}
			s, err := e.st.GetSession(context.Background(), "lo", sid)
			if err != nil || s.DeviceID != "dev-ok" || s.Live() {
				t.Fatalf("session %+v, %v", s, err)
			}
		})
	}
}

func TestAuthenticateRejectIsNotAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name    string
		id      string
		unbound bool
		comp    store.Compliance
		reason  string
	}{
		{name: "reject/unbound-cert", id: "dev-unbound", unbound: true, comp: store.ComplianceCompliant, reason: "unknown_cert"},
		{name: "reject/noncompliant", id: "dev-noncompliant", comp: store.ComplianceNoncompliant, reason: "noncompliant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := e.device(t, tt.id, tt.comp, tt.unbound)
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				c := e.client(t, e.auth, nil)
				p := e.peer(d, v, 1400)
				res, err := c.Authenticate(context.Background(), p)
				p.Close()
				if err != nil {
					t.Fatalf("tls %x: %v", v, err)
				}
				if res.Accepted || res.Reply == nil || res.Reply.Code != radius.CodeAccessReject {
					t.Fatalf("tls %x: %+v", v, res)
				}
				if !bytes.Contains([]byte(res.ReplyMessage), []byte(tt.reason)) {
					t.Fatalf("tls %x: Reply-Message %q, want %q", v, res.ReplyMessage, tt.reason)
				}
			}
		})
	}
}

func TestAuthenticateRetransmitsIdenticalPacketWhenReplyLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.device(t, "dev-rtx", store.ComplianceCompliant, false)
	var seen [][]byte
	// Drop the first and the third reply; the server answers the
	// retransmissions from its duplicate cache.
	px := newProxy(t, e.auth, func(n int, b, _ []byte) []byte {
		seen = append(seen, b)
		if n == 1 || n == 3 {
			return nil
		}
		return b
	})
	c := e.client(t, px.addr(), func(c *Config) { c.Timeout = 300 * time.Millisecond })
	p := e.peer(d, tls.VersionTLS13, 1400)
	defer p.Close()
	res, err := c.Authenticate(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Accepted || !res.KeysMatch || res.Retransmits != 2 {
		t.Fatalf("accepted %v keys %v retransmits %d", res.Accepted, res.KeysMatch, res.Retransmits)
	}
	px.mu.Lock()
	defer px.mu.Unlock()
	// A retransmission is the identical packet: the server's cached reply
	// is byte-identical to the dropped one.
	if len(seen) < 4 || !bytes.Equal(seen[0], seen[1]) || !bytes.Equal(seen[2], seen[3]) {
		t.Fatalf("replies to retransmissions differ from the originals (%d replies)", len(seen))
	}
}

func TestAuthenticateTimesOutWithoutServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.device(t, "dev-to", store.ComplianceCompliant, false)
	px := newProxy(t, e.auth, func(int, []byte, []byte) []byte { return nil })
	c := e.client(t, px.addr(), func(c *Config) { c.Timeout = 100 * time.Millisecond; c.Retries = 2 })
	p := e.peer(d, tls.VersionTLS13, 1400)
	defer p.Close()
	res, err := c.Authenticate(context.Background(), p)
	if !errors.Is(err, ErrTimeout) || res.Retransmits != 2 || res.RoundTrips != 0 {
		t.Fatalf("err %v retransmits %d round trips %d", err, res.Retransmits, res.RoundTrips)
	}
}

// resign rewrites a reply's Response Authenticator after tampering, so only
// the Message-Authenticator check can catch it.
func resign(b, reqAuth, secret []byte) []byte {
	ra := packet.NewSecret(secret).ResponseAuthenticator(b, reqAuth)
	copy(b[4:20], ra[:])
	return b
}

// testClient is a Client that only encodes and verifies.
func testClient(secret []byte) *Client {
	return &Client{cfg: Config{Secret: secret}, sec: packet.NewSecret(secret)}
}

func TestAuthenticateDiscardsRepliesWithBadMessageAuthenticator(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.device(t, "dev-ma", store.ComplianceCompliant, false)
	// An on-path attacker who knows no secret can still fix up nothing;
	// this proxy knows the secret and re-signs the Response Authenticator
	// after corrupting the Message-Authenticator, so only the MA check
	// can catch it.
	px := newProxy(t, e.auth, func(_ int, b, req []byte) []byte {
		if len(b) >= 38 && b[20] == attrMessageAuth {
			b[22] ^= 0xff
		}
		return resign(b, req[4:20], []byte(testSecret))
	})
	c := e.client(t, px.addr(), func(c *Config) { c.Timeout = 200 * time.Millisecond; c.Retries = 1 })
	p := e.peer(d, tls.VersionTLS13, 1400)
	defer p.Close()
	res, err := c.Authenticate(context.Background(), p)
	if !errors.Is(err, ErrBadReply) || res.Discarded != 2 || res.RoundTrips != 0 {
		t.Fatalf("err %v discarded %d round trips %d", err, res.Discarded, res.RoundTrips)
	}
}

func TestAuthenticateWrongSecretTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.device(t, "dev-sec", store.ComplianceCompliant, false)
	// The server silently discards requests whose Message-Authenticator
	// fails, so a wrong secret looks like a dead server.
	c := e.client(t, e.auth, func(c *Config) { c.Secret = []byte("wrong"); c.Timeout = 100 * time.Millisecond; c.Retries = 1 })
	p := e.peer(d, tls.VersionTLS12, 1400)
	defer p.Close()
	if _, err := c.Authenticate(context.Background(), p); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v", err)
	}
}

// reply builds a signed reply to req with attrs, MA first, and returns its
// wire form.
func reply(t testing.TB, req *radius.Packet, code radius.Code, withMA bool, build func(p *radius.Packet)) []byte {
	t.Helper()
	p := req.Response(code)
	if withMA {
		p.Add(attrMessageAuth, make(radius.Attribute, 16))
	}
	if build != nil {
		build(p)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := packet.NewSecret(req.Secret).SignResponse(b, req.Authenticator[:]); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyReply(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	c := testClient(secret)
	req := &radius.Packet{Code: radius.CodeAccessRequest, Identifier: 7, Secret: secret}
	reqB, err := c.seal(req)
	if err != nil {
		t.Fatal(err)
	}
	eap := func(p *radius.Packet) { p.Add(attrEAPMessage, radius.Attribute{3, 1, 0, 4}) }
	tests := []struct {
		name string
		resp func() []byte
		ok   bool
	}{
		{"ok/accept", func() []byte { return reply(t, req, radius.CodeAccessAccept, true, eap) }, true},
		{"ok/challenge", func() []byte { return reply(t, req, radius.CodeAccessChallenge, true, eap) }, true},
		{"ok/accounting-response-without-ma", func() []byte { return reply(t, req, radius.CodeAccountingResponse, false, nil) }, true},
		{"bad/accept-without-ma", func() []byte { return reply(t, req, radius.CodeAccessAccept, false, eap) }, false},
		{"bad/reject-without-ma", func() []byte { return reply(t, req, radius.CodeAccessReject, false, nil) }, false},
		{"bad/ma-wrong", func() []byte {
			b := reply(t, req, radius.CodeAccessAccept, true, eap)
			b[30] ^= 1
			return resign(b, req.Authenticator[:], secret)
		}, false},
		{"bad/two-mas", func() []byte {
			b := reply(t, req, radius.CodeAccessAccept, true, eap)
			b = append(b, b[20:38]...)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
			return resign(b, req.Authenticator[:], secret)
		}, false},
		{"bad/ma-wrong-secret", func() []byte {
			b := reply(t, req, radius.CodeAccessAccept, true, eap)
			return resign(b, req.Authenticator[:], []byte("other"))
		}, false},
		{"bad/response-authenticator", func() []byte {
			b := reply(t, req, radius.CodeAccessAccept, true, eap)
			b[5] ^= 1
			return b
		}, false},
		{"bad/short", func() []byte { return []byte{2, 7, 0} }, false},
		{"bad/length-beyond-datagram", func() []byte {
			b := reply(t, req, radius.CodeAccessAccept, true, eap)
			return b[:len(b)-1]
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.verifyReply(tt.resp(), reqB)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadReply) {
				t.Fatalf("err %v does not match ErrBadReply", err)
			}
		})
	}
}

func TestCheckKeys(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	req := &radius.Packet{Code: radius.CodeAccessRequest, Identifier: 1, Secret: secret}
	req.Authenticator[3] = 9
	msk := make([]byte, 64)
	for i := range msk {
		msk[i] = byte(i)
	}
	tests := []struct {
		name          string
		recv, send    []byte
		msk           []byte
		present, want bool
	}{
		{"match", msk[:32], msk[32:], msk, true, true},
		{"mismatch/send-key-wrong", msk[:32], msk[:32], msk, true, false},
		{"mismatch/halves-swapped", msk[32:], msk[:32], msk, true, false},
		{"mismatch/peer-has-no-msk", msk[:32], msk[32:], nil, true, false},
		{"absent", nil, nil, msk, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := reply(t, req, radius.CodeAccessAccept, true, func(p *radius.Packet) {
				if tt.recv != nil {
					if err := microsoft.MSMPPERecvKey_Add(p, tt.recv); err != nil {
						t.Fatal(err)
					}
					if err := microsoft.MSMPPESendKey_Add(p, tt.send); err != nil {
						t.Fatal(err)
					}
				}
			})
			resp, err := radius.Parse(b, secret)
			if err != nil {
				t.Fatal(err)
			}
			present, match := checkKeys(resp, req, tt.msk)
			if present != tt.present || match != tt.want {
				t.Fatalf("present %v match %v", present, match)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no-secret":   {Server: "127.0.0.1:1812"},
		"no-server":   {Secret: []byte("x")},
		"bad-address": {Server: "127.0.0.1:notaport", Secret: []byte("x")},
	} {
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzVerifyReply(f *testing.F) {
	secret := []byte(testSecret)
	c := testClient(secret)
	req := &radius.Packet{Code: radius.CodeAccessRequest, Identifier: 7, Secret: secret}
	reqB, err := c.seal(req)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(reply(f, req, radius.CodeAccessAccept, true, func(p *radius.Packet) { p.Add(attrEAPMessage, radius.Attribute{3, 1, 0, 4}) }))
	f.Add(reply(f, req, radius.CodeAccountingResponse, false, nil))
	f.Add([]byte{2, 7, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := c.verifyReply(b, reqB)
		if err != nil {
			return
		}
		// layeh.com/radius checks the Response Authenticator on its own.
		if !radius.IsAuthenticResponse(b[:binary.BigEndian.Uint16(b[2:4])], reqB, secret) {
			t.Fatalf("accepted an unauthentic reply: %x", b)
		}
		_, _ = eapMessage(p)
	})
}
