package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"layeh.com/radius"
)

// Wire constants (RFC 2865, 2866, 2869, 3579, 5997).
const (
	maxPacket = radius.MaxPacketLength // 4096
	hdrLen    = 20
	maxAttr   = 253 // value bytes per attribute

	codeAccessRequest      = 1
	codeAccessAccept       = 2
	codeAccessReject       = 3
	codeAccountingRequest  = 4
	codeAccountingResponse = 5
	codeAccessChallenge    = 11
	codeStatusServer       = 12

	attrUserName            = 1
	attrNASIPAddress        = 4
	attrNASPort             = 5
	attrFramedIPAddress     = 8
	attrFramedMTU           = 12
	attrReplyMessage        = 18
	attrState               = 24
	attrClass               = 25
	attrSessionTimeout      = 27
	attrTerminationAction   = 29
	attrCalledStationID     = 30
	attrCallingStationID    = 31
	attrNASIdentifier       = 32
	attrProxyState          = 33
	attrAcctStatusType      = 40
	attrAcctDelayTime       = 41
	attrAcctInputOctets     = 42
	attrAcctOutputOctets    = 43
	attrAcctSessionID       = 44
	attrAcctTerminateCause  = 49
	attrAcctInputGigawords  = 52
	attrAcctOutputGigawords = 53
	attrEventTimestamp      = 55
	attrTunnelType          = 64
	attrTunnelMediumType    = 65
	attrEAPMessage          = 79
	attrMessageAuth         = 80
	attrTunnelPrivateGroup  = 81
	attrAcctInterimInterval = 85
	attrErrorCause          = 101

	errorCauseInvalidEAP = 202 // RFC 5176 §3.6: Invalid EAP Packet (Ignored)

	maLen = 16
)

// Sentinel errors for the wire layer.
var (
	ErrMalformed = errors.New("radius: malformed packet")
	ErrTooLarge  = errors.New("radius: packet too large")
)

// packet is a validated view into a received datagram: it aliases the read
// buffer and copies nothing, so it must not outlive the buffer.
type packet struct {
	raw   []byte // exactly Length bytes
	code  byte
	id    byte
	maOff int // offset of the Message-Authenticator value in raw, -1 if absent
	eap   int // number of EAP-Message attributes
	proxy int // number of Proxy-State attributes
}

func (p *packet) authenticator() []byte { return p.raw[4:hdrLen] }

// attrs iterates the attributes; the packet was validated, so it cannot fail.
func (p *packet) attrs(fn func(typ byte, val []byte) bool) {
	b := p.raw[hdrLen:]
	for len(b) >= 2 {
		l := int(b[1])
		if !fn(b[0], b[2:l]) {
			return
		}
		b = b[l:]
	}
}

// first returns the value of the first attribute of typ.
func (p *packet) first(typ byte) ([]byte, bool) {
	var v []byte
	var ok bool
	p.attrs(func(t byte, val []byte) bool {
		if t == typ {
			v, ok = val, true
			return false
		}
		return true
	})
	return v, ok
}

// parsePacket validates RADIUS framing (RFC 2865 §3): header, Length within
// 20..4096 and the datagram, attributes exactly filling Length, at most one
// Message-Authenticator of the right size. Octets past Length are padding
// and ignored, as RFC 2865 says.
func parsePacket(b []byte) (packet, error) {
	if len(b) > maxPacket {
		return packet{}, ErrTooLarge
	}
	if len(b) < hdrLen {
		return packet{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	l := int(binary.BigEndian.Uint16(b[2:4]))
	if l < hdrLen || l > maxPacket || l > len(b) {
		return packet{}, fmt.Errorf("%w: length field %d", ErrMalformed, l)
	}
	p := packet{raw: b[:l], code: b[0], id: b[1], maOff: -1}
	for off := hdrLen; off < l; {
		if l-off < 2 {
			return packet{}, fmt.Errorf("%w: truncated attribute", ErrMalformed)
		}
		al := int(b[off+1])
		if al < 2 || off+al > l {
			return packet{}, fmt.Errorf("%w: attribute length %d", ErrMalformed, al)
		}
		switch b[off] {
		case attrMessageAuth:
			if p.maOff >= 0 || al != 2+maLen {
				return packet{}, fmt.Errorf("%w: bad Message-Authenticator", ErrMalformed)
			}
			p.maOff = off + 2
		case attrEAPMessage:
			p.eap++
		case attrProxyState:
			p.proxy++
		}
		off += al
	}
	return p, nil
}

// eapMessage concatenates the EAP-Message attributes (RFC 3579 §3.1) and
// checks that the EAP header's Length equals what arrived. ok is false when
// there are none; an empty message (EAP-Start) returns ok with len 0. On
// error eap is still returned, for the Identifier of the EAP-Failure.
func (p *packet) eapMessage() (eap []byte, ok bool, err error) {
	if p.eap == 0 {
		return nil, false, nil
	}
	n := 0
	p.attrs(func(t byte, v []byte) bool {
		if t == attrEAPMessage {
			n += len(v)
		}
		return true
	})
	eap = make([]byte, 0, n)
	p.attrs(func(t byte, v []byte) bool {
		if t == attrEAPMessage {
			eap = append(eap, v...)
		}
		return true
	})
	if n == 0 {
		return eap, true, nil
	}
	if n < 4 || int(binary.BigEndian.Uint16(eap[2:4])) != n {
		// The bytes still name the EAP Identifier the Failure must carry.
		return eap, true, fmt.Errorf("%w: EAP length does not match EAP-Message bytes", ErrMalformed)
	}
	return eap, true, nil
}

// hashers holds one HMAC-MD5 (keyed with the client secret) and one MD5 so
// a packet is verified and signed without allocating.
type hashers struct {
	mac hash.Hash
	md  hash.Hash
	sum [md5.Size]byte
}

type hasherPool struct{ p sync.Pool }

func newHasherPool(secret []byte) *hasherPool {
	hp := &hasherPool{}
	hp.p.New = func() any { return &hashers{mac: hmac.New(md5.New, secret), md: md5.New()} }
	return hp
}

func (hp *hasherPool) get() *hashers {
	h := hp.p.Get().(*hashers)
	h.mac.Reset()
	h.md.Reset()
	return h
}

func (hp *hasherPool) put(h *hashers) { hp.p.Put(h) }

var zero16 [16]byte

// verifyMessageAuthenticator checks attribute 80 per RFC 3579 §3.2: HMAC-MD5
// over the packet with the MA value zeroed. zeroAuth selects the
// Accounting-Request rule (authenticator field taken as zeros, RFC 5176
// §3.4 / RFC 3579 for accounting). Constant-time compare.
func verifyMessageAuthenticator(hp *hasherPool, p *packet, zeroAuth bool) bool {
	if p.maOff < 0 {
		return false
	}
	h := hp.get()
	defer hp.put(h)
	h.mac.Write(p.raw[:4])
	if zeroAuth {
		h.mac.Write(zero16[:])
	} else {
		h.mac.Write(p.raw[4:hdrLen])
	}
	h.mac.Write(p.raw[hdrLen:p.maOff])
	h.mac.Write(zero16[:])
	h.mac.Write(p.raw[p.maOff+maLen:])
	return hmac.Equal(h.mac.Sum(h.sum[:0]), p.raw[p.maOff:p.maOff+maLen])
}

// verifyAccountingAuthenticator checks the RFC 2866 §3 Request
// Authenticator: MD5(Code|Id|Length|16 zero octets|Attributes|Secret).
func verifyAccountingAuthenticator(hp *hasherPool, secret []byte, p *packet) bool {
	h := hp.get()
	defer hp.put(h)
	h.md.Write(p.raw[:4])
	h.md.Write(zero16[:])
	h.md.Write(p.raw[hdrLen:])
	h.md.Write(secret)
	return subtle.ConstantTimeCompare(h.md.Sum(h.sum[:0]), p.raw[4:hdrLen]) == 1
}

// encodeResponse writes a response to a request with authenticator reqAuth.
// With withMA the Message-Authenticator is the FIRST attribute (the
// BlastRADIUS mitigation: the unpredictable HMAC precedes any attacker
// controlled bytes such as echoed Proxy-State). Order per RFC 3579 §3.2:
// MA over the packet with the request authenticator in place, then the
// Response Authenticator over the final bytes. Any MA in attrs is ignored.
func encodeResponse(hp *hasherPool, secret []byte, code, id byte, reqAuth []byte, withMA bool, attrs radius.Attributes) ([]byte, error) {
	size := hdrLen
	if withMA {
		size += 2 + maLen
	}
	for _, a := range attrs {
		if a.Type == attrMessageAuth || a.Type < 0 || a.Type > 255 {
			continue
		}
		if len(a.Attribute) > maxAttr {
			return nil, fmt.Errorf("radius: encode: attribute %d has %d bytes", a.Type, len(a.Attribute))
		}
		size += 2 + len(a.Attribute)
	}
	if size > maxPacket {
		return nil, fmt.Errorf("%w: response of %d bytes", ErrTooLarge, size)
	}
	b := make([]byte, size)
	b[0], b[1] = code, id
	binary.BigEndian.PutUint16(b[2:4], uint16(size))
	copy(b[4:hdrLen], reqAuth)
	off := hdrLen
	maOff := -1
	if withMA {
		b[off], b[off+1] = attrMessageAuth, 2+maLen
		maOff = off + 2
		off += 2 + maLen
	}
	for _, a := range attrs {
		if a.Type == attrMessageAuth || a.Type < 0 || a.Type > 255 {
			continue
		}
		b[off], b[off+1] = byte(a.Type), byte(2+len(a.Attribute))
		copy(b[off+2:], a.Attribute)
		off += 2 + len(a.Attribute)
	}
	h := hp.get()
	defer hp.put(h)
	if withMA {
		h.mac.Write(b)
		copy(b[maOff:], h.mac.Sum(h.sum[:0]))
	}
	h.md.Write(b)
	h.md.Write(secret)
	copy(b[4:hdrLen], h.md.Sum(h.sum[:0]))
	return b, nil
}

// appendEAP splits one EAP packet into consecutive EAP-Message attributes
// of at most 253 bytes (RFC 3579 §3.1).
func appendEAP(attrs radius.Attributes, eap []byte) radius.Attributes {
	for len(eap) > 0 {
		n := min(len(eap), maxAttr)
		attrs = append(attrs, &radius.AVP{Type: attrEAPMessage, Attribute: eap[:n:n]})
		eap = eap[n:]
	}
	return attrs
}

// proxyStates copies the request's Proxy-State attributes, in order, for
// echoing (RFC 2865 §5.33).
func (p *packet) proxyStates(attrs radius.Attributes) radius.Attributes {
	if p.proxy == 0 {
		return attrs
	}
	p.attrs(func(t byte, v []byte) bool {
		if t == attrProxyState {
			attrs = append(attrs, &radius.AVP{Type: attrProxyState, Attribute: append([]byte(nil), v...)})
		}
		return true
	})
	return attrs
}
