package radius

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/radius/packet"
	"hardbound/store"
)

// FuzzPacket feeds raw datagrams through the codec (whose own targets
// fuzz framing and authenticators, radius/packet) to everything of the
// server that reads attributes: Class, Framed-MTU, the accounting fields.
func FuzzPacket(f *testing.F) {
	secret := []byte(testSecret)
	f.Add(buildRequest(f, lradius.CodeAccessRequest, 1, secret, packet.AppendEAP(nil, []byte{2, 1, 0, 9, 1, 'a', 'n', 'o', 'n'}), true, false))
	k := classKey{key: make([]byte, ClassKeyLen)}
	lo := netip.MustParseAddr("127.0.0.1")
	f.Add(buildRequest(f, lradius.CodeAccountingRequest, 2, secret, lradius.Attributes{{Type: attrClass, Attribute: k.encode("f", lo, time.Unix(1, 0), [32]byte{1}, "dev")}}, false, false))
	f.Add(buildRequest(f, lradius.CodeAccountingRequest, 3, secret, lradius.Attributes{{Type: attrNASIPAddress, Attribute: []byte{10, 0, 0, 1}}, {Type: attrEventTimestamp, Attribute: u32(1)}}, false, false))
	f.Add([]byte{1, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 79, 2})
	s := &Server{now: time.Now}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := packet.Parse(b)
		if err != nil {
			return
		}
		if v, ok := p.Lookup(attrClass); ok {
			if tok, err := k.decode(v, "f", lo, nil); err == nil {
				again := k.encode("f", lo, tok.issued, tok.cert, tok.deviceID)
				if !bytes.Equal(again, v) {
					t.Fatalf("class round trip: %x != %x", again, v)
				}
			}
		}
		_ = nasIPAttr(&p)
		if mtu := framedMTU(&p); mtu != 0 && (mtu < minFramedMTU || mtu > 65535) {
			t.Fatalf("Framed-MTU %d out of range", mtu)
		}
		_ = ipAttr(&p, attrNASIPAddress)
		_ = stringAttr(&p, attrUserName)
		_ = s.eventTime(&p)
	})
}

// FuzzAccessRequest signs fuzzed attributes with a valid
// Message-Authenticator (and Request Authenticator, for accounting) so the
// input gets past authentication into State handling, EAP reassembly, the
// real eaptls state machine and accounting. Every answer must be a
// well-formed response with the MA first.
func FuzzAccessRequest(f *testing.F) {
	pki := newPKI(f)
	s, err := New(Config{
		Clients:                []Client{{Name: "f", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: []byte(testSecret), RequireMessageAuthenticator: true}},
		MaxConversations:       64,
		MaxConversationsPerNAS: 64,
	}, pki.eapServer(f), pki.decider(), newMemSessions(), &memAudit{}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:1000")
	enc := func(attrs lradius.Attributes) []byte {
		b, _ := (&lradius.Packet{Attributes: attrs}).MarshalBinary()
		return b[20:]
	}
	f.Add(byte(1), enc(packet.AppendEAP(nil, []byte{2, 1, 0, 9, 1, 'a', 'n', 'o', 'n'})))
	f.Add(byte(1), enc(lradius.Attributes{{Type: attrEAPMessage}}))
	f.Add(byte(12), enc(nil))
	f.Add(byte(1), enc(append(packet.AppendEAP(nil, []byte{2, 5, 0, 6, 13, 0}), &lradius.AVP{Type: attrState, Attribute: make([]byte, 16)})))
	f.Add(byte(1), enc(append(packet.AppendEAP(nil, []byte{2, 5, 0, 10, 13, 0x80, 0, 0, 0, 9}), &lradius.AVP{Type: attrProxyState, Attribute: []byte("x")})))
	f.Add(byte(4), enc(lradius.Attributes{{Type: attrAcctStatusType, Attribute: u32(1)}}))
	sec := packet.NewSecret([]byte(testSecret))
	var n uint64
	f.Fuzz(func(t *testing.T, code byte, attrs []byte) {
		if len(attrs) > maxPacket-packet.HeaderLen-18 {
			return
		}
		n++ // a fresh authenticator each run, so the duplicate cache never hits
		b := make([]byte, packet.HeaderLen, packet.HeaderLen+len(attrs)+18)
		b[0], b[1] = code, byte(n)
		copy(b[4:20], "fuzz-authentic!!")
		binary.BigEndian.PutUint64(b[4:12], n)
		b = append(b, attrs...)
		b = append(b, attrMessageAuth, 18)
		b = append(b, make([]byte, 16)...)
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
		// Bytes that do not frame, or a Code that is no request, stay
		// unsigned: the server must drop them either way.
		_ = sec.SignRequest(b)

		for _, port := range []byte{portAuth, portAcct} {
			resp := s.handle(context.Background(), nil, port, from, b)
			if resp != nil {
				checkResponse(t, resp, b, []byte(testSecret))
			}
		}
		for _, c := range s.convs.drain() {
			c.close()
		}
	})
}

// FuzzAccounting signs what the fuzzer produces as an Accounting-Request
// (Request Authenticator, RFC 2866 §3) so every input gets past the
// authenticator into recordSession, closeNASSessions, the Class check and
// eventTime, with a real authenticated Class among the seeds. Every answer
// must be an authentic Accounting-Response; nothing may panic.
func FuzzAccounting(f *testing.F) {
	pki := newPKI(f)
	sessions := newMemSessions()
	s, err := New(Config{
		Clients: []Client{{Name: "f", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: []byte(testSecret), RequireMessageAuthenticator: true}},
	}, pki.eapServer(f), pki.decider(), sessions, &memAudit{}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:1813")
	enc := func(attrs lradius.Attributes) []byte {
		b, _ := (&lradius.Packet{Attributes: attrs}).MarshalBinary()
		return b[20:]
	}
	class := s.class.encode("f", from.Addr(), time.Now(), store.Hash{1}, "dev-1")
	now := uint32(time.Now().Unix())
	for _, attrs := range []lradius.Attributes{
		{{Type: attrAcctStatusType, Attribute: u32(acctStart)}, {Type: attrAcctSessionID, Attribute: []byte("s1")}, {Type: attrClass, Attribute: class}},
		{{Type: attrAcctStatusType, Attribute: u32(acctInterimUpdate)}, {Type: attrAcctSessionID, Attribute: []byte("s1")}, {Type: attrClass, Attribute: class},
			{Type: attrAcctInputOctets, Attribute: u32(7)}, {Type: attrAcctInputGigawords, Attribute: u32(1)}, {Type: attrEventTimestamp, Attribute: u32(now + 5)}},
		{{Type: attrAcctStatusType, Attribute: u32(acctStop)}, {Type: attrAcctSessionID, Attribute: []byte("s1")}, {Type: attrAcctTerminateCause, Attribute: u32(1)}},
		{{Type: attrAcctStatusType, Attribute: u32(acctOn)}, {Type: attrEventTimestamp, Attribute: u32(now)}, {Type: attrNASIdentifier, Attribute: []byte("sw")},
			{Type: attrNASIPAddress, Attribute: []byte{127, 0, 0, 1}}},
		{{Type: attrAcctStatusType, Attribute: u32(acctOff)}, {Type: attrAcctDelayTime, Attribute: u32(1 << 31)}},
		{{Type: attrAcctStatusType, Attribute: u32(acctStart)}, {Type: attrAcctSessionID, Attribute: []byte("s2")}, {Type: attrClass, Attribute: []byte("hb2\x00")},
			{Type: attrNASIPv6Address, Attribute: make([]byte, 16)}},
	} {
		f.Add(enc(attrs))
	}
	sec := packet.NewSecret([]byte(testSecret))
	var n uint32
	f.Fuzz(func(t *testing.T, attrs []byte) {
		if len(attrs) > maxPacket-packet.HeaderLen {
			return
		}
		n++
		b := make([]byte, packet.HeaderLen, packet.HeaderLen+len(attrs))
		b[0], b[1] = byte(lradius.CodeAccountingRequest), byte(n)
		b = append(b, attrs...)
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
		if sec.SignRequest(b) != nil {
			return // does not frame: the server drops it, tested by FuzzPacket
		}
		resp := s.handle(context.Background(), nil, portAcct, from, b)
		if resp != nil {
			if p := checkResponse(t, resp, b, []byte(testSecret)); p.Code != lradius.CodeAccountingResponse {
				t.Fatalf("answer %v to an Accounting-Request", p.Code)
			}
		}
		sessions.mu.Lock()
		if len(sessions.m) > 10000 {
			clear(sessions.m)
		}
		sessions.mu.Unlock()
	})
}
