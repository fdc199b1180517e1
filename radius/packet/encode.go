package packet

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	lradius "layeh.com/radius"
)

// maFirst is the offset of the Message-Authenticator value when it is the
// first attribute, where this package always puts it.
const maFirst = HeaderLen + 2

// EncodeRequest lays out a request with Message-Authenticator as its first
// attribute followed by attrs, and signs it: for Access-Request and
// Status-Server a fresh random Request Authenticator (RFC 2865 §3), then
// the Message-Authenticator over it; for Accounting-, Disconnect- and
// CoA-Request the Message-Authenticator over a zero Authenticator field,
// then the Request Authenticator over the final octets (RFC 2866 §3,
// RFC 5176 §2.3 and §3.4). A Message-Authenticator in attrs is ignored.
func (s *Secret) EncodeRequest(code lradius.Code, id byte, attrs lradius.Attributes) ([]byte, error) {
	if !randomRequest(code) && !hashedRequest(code) {
		return nil, ErrNotRequest
	}
	b, err := layout(code, id, nil, true, attrs)
	if err != nil {
		return nil, err
	}
	if randomRequest(code) {
		// crypto/rand.Read never fails (Go 1.24+): it crashes the program instead.
		_, _ = rand.Read(b[4:HeaderLen])
	}
	h := s.get()
	defer s.put(h)
	s.signRequest(h, b, maFirst)
	return b, nil
}

// EncodeResponse lays out the answer to req and signs it. With withMA, and
// always for Access-Accept, -Reject and -Challenge, Message-Authenticator
// is the FIRST attribute (the BlastRADIUS mitigation: the unpredictable
// HMAC precedes any attacker-controlled bytes such as echoed Proxy-State).
// Order per RFC 3579 §3.2: the Message-Authenticator over the packet with
// the request's Authenticator in place, then the Response Authenticator
// over the final octets. A Message-Authenticator in attrs is ignored.
func (s *Secret) EncodeResponse(req *Packet, code lradius.Code, withMA bool, attrs lradius.Attributes) ([]byte, error) {
	withMA = withMA || accessReply(code)
	b, err := layout(code, req.Identifier(), req.Authenticator(), withMA, attrs)
	if err != nil {
		return nil, err
	}
	maOff := -1
	if withMA {
		maOff = maFirst
	}
	h := s.get()
	defer s.put(h)
	s.signResponse(h, b, req.Authenticator(), maOff)
	return b, nil
}

// layout writes the header (auth, or zeros when nil), a zero
// Message-Authenticator first when withMA, then attrs, skipping any
// Message-Authenticator and any Type outside 0..255. One allocation.
func layout(code lradius.Code, id byte, auth []byte, withMA bool, attrs lradius.Attributes) ([]byte, error) {
	size := HeaderLen
	if withMA {
		size += 2 + AuthLen
	}
	for _, a := range attrs {
		if skip(a) {
			continue
		}
		if len(a.Attribute) > MaxValue {
			return nil, fmt.Errorf("radius: encode: attribute %d has %d bytes", a.Type, len(a.Attribute))
		}
		size += 2 + len(a.Attribute)
	}
	if size > MaxLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	b := make([]byte, size)
	b[0], b[1] = byte(code), id
	binary.BigEndian.PutUint16(b[2:4], uint16(size))
	copy(b[4:HeaderLen], auth)
	off := HeaderLen
	if withMA {
		b[off], b[off+1] = typeMA, 2+AuthLen
		off += 2 + AuthLen
	}
	for _, a := range attrs {
		if skip(a) {
			continue
		}
		b[off], b[off+1] = byte(a.Type), byte(2+len(a.Attribute))
		copy(b[off+2:], a.Attribute)
		off += 2 + len(a.Attribute)
	}
	return b, nil
}

func skip(a *lradius.AVP) bool {
	return a.Type == lradius.Type(typeMA) || a.Type < 0 || a.Type > 255
}
