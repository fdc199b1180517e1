package radius

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"layeh.com/radius"
)

// FuzzPacket feeds raw datagrams to the wire parser and everything that
// reads attributes: framing, Message-Authenticator, EAP reassembly, Class.
func FuzzPacket(f *testing.F) {
	secret := []byte(testSecret)
	f.Add(buildRequest(f, radius.CodeAccessRequest, 1, secret, appendEAP(nil, []byte{2, 1, 0, 9, 1, 'a', 'n', 'o', 'n'}), true, false))
	f.Add(buildRequest(f, radius.CodeAccountingRequest, 2, secret, radius.Attributes{{Type: attrClass, Attribute: encodeClass([32]byte{1}, "dev")}}, false, false))
	f.Add([]byte{1, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 79, 2})
	hp := newHasherPool(secret)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacket(b)
		if err != nil {
			return
		}
		verifyMessageAuthenticator(hp, &p, false)
		verifyMessageAuthenticator(hp, &p, true)
		verifyAccountingAuthenticator(hp, secret, &p)
		eap, ok, err := p.eapMessage()
		if ok && err == nil && len(eap) > 0 && int(binary.BigEndian.Uint16(eap[2:4])) != len(eap) {
			t.Fatalf("accepted EAP with a wrong length")
		}
		if v, ok := p.first(attrClass); ok {
			if h, dev, err := parseClass(v); err == nil {
				if _, _, err := parseClass(encodeClass(h, dev)); err != nil {
					t.Fatalf("class round trip: %v", err)
				}
			}
		}
		_ = p.proxyStates(nil)
		_ = framedMTU(&p)
	})
}

// FuzzAccessRequest signs fuzzed attributes with a valid
// Message-Authenticator so the input gets past authentication into State
// handling, EAP reassembly and the real eaptls state machine. Every answer
// must be a well-formed response with the MA first.
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
	enc := func(attrs radius.Attributes) []byte {
		b, _ := (&radius.Packet{Attributes: attrs}).MarshalBinary()
		return b[20:]
	}
	f.Add(byte(1), enc(appendEAP(nil, []byte{2, 1, 0, 9, 1, 'a', 'n', 'o', 'n'})))
	f.Add(byte(1), enc(radius.Attributes{{Type: attrEAPMessage}}))
	f.Add(byte(12), enc(nil))
	f.Add(byte(1), enc(append(appendEAP(nil, []byte{2, 5, 0, 6, 13, 0}), &radius.AVP{Type: attrState, Attribute: make([]byte, 16)})))
	f.Add(byte(1), enc(append(appendEAP(nil, []byte{2, 5, 0, 10, 13, 0x80, 0, 0, 0, 9}), &radius.AVP{Type: attrProxyState, Attribute: []byte("x")})))
	f.Add(byte(4), enc(radius.Attributes{{Type: attrAcctStatusType, Attribute: u32(1)}}))
	var n uint64
	f.Fuzz(func(t *testing.T, code byte, attrs []byte) {
		if len(attrs) > maxPacket-hdrLen-18 {
			return
		}
		n++ // a fresh authenticator each run, so the duplicate cache never hits
		b := make([]byte, hdrLen, hdrLen+len(attrs)+18)
		b[0], b[1] = code, byte(n)
		copy(b[4:20], "fuzz-authentic!!")
		binary.BigEndian.PutUint64(b[4:12], n)
		b = append(b, attrs...)
		b = append(b, attrMessageAuth, 18)
		b = append(b, make([]byte, 16)...)
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
		mac := hmac.New(md5.New, []byte(testSecret))
		mac.Write(b)
		copy(b[len(b)-16:], mac.Sum(nil))

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
