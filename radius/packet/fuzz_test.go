package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	lradius "layeh.com/radius"
)

// FuzzParse feeds raw datagrams to the parser, the attribute readers and
// request verification. Whatever is accepted must be consistent: the view
// covers Length octets, EAP reassembly honours the EAP length, and a
// request that verifies re-signs to the same octets (and, where the
// Authenticator is an MD5, passes layeh.com/radius's independent check).
func FuzzParse(f *testing.F) {
	for _, seed := range [][]byte{
		katAccessRequest, katAccessRequestMALast, katAccessChallenge, katStatusServer,
		katAccountingRequest, katAccountingResponse, katDisconnectRequest, katDisconnectNAK,
		rfc2865Request, rfc2865Accept,
		{1, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{1, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 79, 2},
	} {
		f.Add(seed)
	}
	key := []byte(katKey)
	s := NewSecret(key)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if len(p.Bytes()) != int(binary.BigEndian.Uint16(b[2:4])) {
			t.Fatalf("view of %d octets, Length %d", len(p.Bytes()), binary.BigEndian.Uint16(b[2:4]))
		}
		n, proxies := 0, 0
		for typ, v := range p.All() {
			n += 2 + len(v)
			if typ == 33 {
				proxies++
			}
		}
		if n != len(p.Bytes())-HeaderLen {
			t.Fatalf("attributes cover %d of %d octets", n, len(p.Bytes())-HeaderLen)
		}
		if got := len(p.AppendProxyStates(nil)); got != proxies {
			t.Fatalf("%d Proxy-States echoed, %d present", got, proxies)
		}
		if eap, ok, err := p.EAPMessage(); ok && err == nil && len(eap) > 0 && int(binary.BigEndian.Uint16(eap[2:4])) != len(eap) {
			t.Fatal("accepted EAP with a wrong length")
		}
		for _, pol := range []Policy{{}, {RequireMessageAuthenticator: true, LimitProxyState: true}} {
			if s.VerifyRequest(&p, pol) != nil {
				continue
			}
			if hashedRequest(p.Code()) && !lradius.IsAuthenticRequest(p.Bytes(), key) {
				t.Fatalf("accepted a request layeh finds unauthentic: %x", p.Bytes())
			}
			if p.HasMessageAuthenticator() {
				c := bytes.Clone(p.Bytes())
				clear(c[p.maOff : p.maOff+AuthLen])
				if err := s.SignRequest(c); err != nil || !bytes.Equal(c, p.Bytes()) {
					t.Fatalf("accepted request re-signs to %x (%v)", c, err)
				}
			}
		}
	})
}

// FuzzVerifyResponse: a response accepted as the answer to
// katAccessRequest must pass layeh.com/radius's independent Response
// Authenticator check and re-sign to the same octets.
func FuzzVerifyResponse(f *testing.F) {
	f.Add(katAccessChallenge)
	f.Add(katAccountingResponse)
	f.Add([]byte{2, 0x2a, 0, 20})
	key := []byte(katKey)
	s := NewSecret(key)
	req := katAccessRequest
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if s.VerifyResponse(&p, req[4:20], Policy{}) != nil {
			return
		}
		if !lradius.IsAuthenticResponse(p.Bytes(), req, key) {
			t.Fatalf("accepted a response layeh finds unauthentic: %x", p.Bytes())
		}
		if accessReply(p.Code()) && !p.HasMessageAuthenticator() {
			t.Fatalf("accepted %v without Message-Authenticator", p.Code())
		}
		c := bytes.Clone(p.Bytes())
		if err := s.SignResponse(c, req[4:20]); err != nil || !bytes.Equal(c, p.Bytes()) {
			t.Fatalf("accepted response re-signs to %x (%v)", c, err)
		}
	})
}

// FuzzReadStream feeds arbitrary byte streams to the stream framing: every
// packet returned has a Length within bounds and equal to its size, the
// reader never reads past what it returned plus one header, and a bad
// header ends the stream with ErrFraming.
func FuzzReadStream(f *testing.F) {
	ok := make([]byte, HeaderLen)
	ok[0], ok[3] = 12, HeaderLen
	f.Add(append(append([]byte(nil), ok...), ok...))
	f.Add([]byte{1, 0, 0, 3})
	f.Add([]byte{1, 0, 0x10, 0x01})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		buf := make([]byte, MaxLen)
		consumed := 0
		for range 1000 {
			firsts := 0
			p, err := ReadStream(r, buf, func() { firsts++ })
			if err != nil {
				if errors.Is(err, ErrFraming) && len(b)-consumed < 4 {
					t.Fatalf("framing error without a header: %v", err)
				}
				return
			}
			if firsts != 1 {
				t.Fatalf("first called %d times", firsts)
			}
			n := int(p[2])<<8 | int(p[3])
			if n != len(p) || n < HeaderLen || n > MaxLen {
				t.Fatalf("packet of %d bytes with Length %d", len(p), n)
			}
			consumed += n
			if consumed != len(b)-r.Len() {
				t.Fatalf("consumed %d, reader at %d", consumed, len(b)-r.Len())
			}
		}
	})
}
