package packet

import (
	"bytes"
	"encoding/binary"
	"testing"

	lradius "layeh.com/radius"
)

// benchRequest is an Access-Request as a NAS sends it mid-conversation:
// User-Name, State, a 1000-octet EAP-Message, Message-Authenticator last.
func benchRequest(tb testing.TB, s *Secret) []byte {
	tb.Helper()
	eap := make([]byte, 1000)
	eap[0], eap[1] = 2, 1
	binary.BigEndian.PutUint16(eap[2:4], 1000)
	attrs := append(lradius.Attributes{
		{Type: 1, Attribute: []byte("anonymous@example.org")},
		{Type: 24, Attribute: make([]byte, 16)},
	}, AppendEAP(nil, eap)...)
	attrs = append(attrs, &lradius.AVP{Type: 80, Attribute: make([]byte, 16)})
	b, err := (&lradius.Packet{Code: lradius.CodeAccessRequest, Identifier: 1, Authenticator: [16]byte{1}, Attributes: attrs}).MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.SignRequest(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkParseVerifyRequest(b *testing.B) {
	s := NewSecret([]byte(katKey))
	pkt := benchRequest(b, s)
	pol := Policy{RequireMessageAuthenticator: true}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse(pkt)
		if err != nil || s.VerifyRequest(&p, pol) != nil {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	s := NewSecret([]byte(katKey))
	req, err := Parse(benchRequest(b, s))
	if err != nil {
		b.Fatal(err)
	}
	attrs := append(AppendEAP(nil, make([]byte, 1024)), &lradius.AVP{Type: 24, Attribute: make([]byte, 16)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.EncodeResponse(&req, lradius.CodeAccessChallenge, true, attrs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEAPMessage(b *testing.B) {
	s := NewSecret([]byte(katKey))
	p, err := Parse(benchRequest(b, s))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if eap, ok, err := p.EAPMessage(); !ok || err != nil || len(eap) != 1000 {
			b.Fatal("reassembly failed")
		}
	}
}

// BenchmarkReadStream frames packets off a RADIUS/TLS-like stream (one
// 1,400-octet Access-Request after another): the stream framing's cost per
// packet, on top of the Parse and Verify a datagram costs too.
func BenchmarkReadStream(b *testing.B) {
	pkt := make([]byte, 1400)
	pkt[0], pkt[2], pkt[3] = 1, 1400>>8, 1400&0xff
	stream := bytes.Repeat(pkt, 64)
	buf := make([]byte, MaxLen)
	r := bytes.NewReader(stream)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if r.Len() == 0 {
			r.Reset(stream)
		}
		if _, err := ReadStream(r, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}
