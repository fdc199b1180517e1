package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	lradius "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// Sizes (RFC 2865 §3, §5).
const (
	// HeaderLen is Code, Identifier, Length and Authenticator.
	HeaderLen = 20
	// MaxLen is the largest packet (and datagram) RADIUS allows.
	MaxLen = lradius.MaxPacketLength
	// MaxValue is the most value octets one attribute holds.
	MaxValue = 253
	// AuthLen is the size of the Authenticator and of the
	// Message-Authenticator value.
	AuthLen = 16
)

// The attribute types the codec itself interprets.
const (
	typeProxyState = byte(rfc2865.ProxyState_Type)
	typeEAPMessage = byte(rfc2869.EAPMessage_Type)
	typeMA         = byte(rfc2869.MessageAuthenticator_Type)
)

// Framing errors. Every one but ErrTooLarge matches ErrMalformed; the finer
// ones let a caller label what was wrong without reading error text.
var (
	ErrMalformed = errors.New("radius: malformed packet")
	ErrTooLarge  = errors.New("radius: packet too large")

	// ErrShort: fewer octets than the 20-octet header.
	ErrShort = fmt.Errorf("%w: shorter than the header", ErrMalformed)
	// ErrLength: the Length field is below 20, above 4096 or beyond the
	// datagram.
	ErrLength = fmt.Errorf("%w: length field out of range", ErrMalformed)
	// ErrAttributes: the attributes do not exactly fill Length.
	ErrAttributes = fmt.Errorf("%w: attribute framing", ErrMalformed)
	// ErrMessageAuthenticatorForm: more than one Message-Authenticator, or
	// one whose value is not 16 octets (RFC 3579 §3.2).
	ErrMessageAuthenticatorForm = fmt.Errorf("%w: duplicate or wrong-size Message-Authenticator", ErrMalformed)
	// ErrEAPLength: the EAP header's Length differs from the octets the
	// EAP-Message attributes carry (RFC 3579 §3.1).
	ErrEAPLength = fmt.Errorf("%w: EAP length does not match the EAP-Message attributes", ErrMalformed)
)

// Packet is a validated view into one received datagram: it aliases the
// buffer it was parsed from and copies nothing, so it must not outlive (or
// see changes to) that buffer.
type Packet struct {
	raw   []byte // exactly Length octets
	maOff int    // offset of the Message-Authenticator value in raw, -1 if absent
	eap   int    // EAP-Message attributes
	proxy int    // Proxy-State attributes
}

// Parse validates RADIUS framing (RFC 2865 §3): at most 4096 octets, a
// Length field within 20..4096 and the datagram, attributes exactly filling
// Length, at most one Message-Authenticator and only of 16 octets. Octets
// past Length are padding and ignored, as RFC 2865 §3 says. Parse checks
// no authenticator: see Secret.VerifyRequest and Secret.VerifyResponse.
func Parse(b []byte) (Packet, error) {
	if len(b) > MaxLen {
		return Packet{}, ErrTooLarge
	}
	if len(b) < HeaderLen {
		return Packet{}, ErrShort
	}
	l := int(binary.BigEndian.Uint16(b[2:4]))
	if l < HeaderLen || l > MaxLen || l > len(b) {
		return Packet{}, ErrLength
	}
	p := Packet{raw: b[:l], maOff: -1}
	for off := HeaderLen; off < l; {
		if l-off < 2 {
			return Packet{}, ErrAttributes
		}
		al := int(b[off+1])
		if al < 2 || off+al > l {
			return Packet{}, ErrAttributes
		}
		switch b[off] {
		case typeMA:
			if p.maOff >= 0 || al != 2+AuthLen {
				return Packet{}, ErrMessageAuthenticatorForm
			}
			p.maOff = off + 2
		case typeEAPMessage:
			p.eap++
		case typeProxyState:
			p.proxy++
		}
		off += al
	}
	return p, nil
}

// Code is the packet's Code.
func (p *Packet) Code() lradius.Code { return lradius.Code(p.raw[0]) }

// Identifier is the packet's Identifier.
func (p *Packet) Identifier() byte { return p.raw[1] }

// Authenticator is the Authenticator field (aliasing the datagram).
func (p *Packet) Authenticator() []byte { return p.raw[4:HeaderLen] }

// Bytes is the packet, Length octets without the padding (aliasing the
// datagram).
func (p *Packet) Bytes() []byte { return p.raw }

// HasMessageAuthenticator reports a Message-Authenticator attribute; it
// says nothing about its value.
func (p *Packet) HasMessageAuthenticator() bool { return p.maOff >= 0 }

// MessageAuthenticatorFirst reports a Message-Authenticator that is the
// first attribute, where this package puts it.
func (p *Packet) MessageAuthenticatorFirst() bool { return p.maOff == HeaderLen+2 }

// HasEAP reports at least one EAP-Message attribute.
func (p *Packet) HasEAP() bool { return p.eap > 0 }

// HasProxyState reports at least one Proxy-State attribute.
func (p *Packet) HasProxyState() bool { return p.proxy > 0 }

// All yields the attributes in order, values aliasing the datagram. The
// packet was validated, so iteration cannot fail.
func (p *Packet) All() iter.Seq2[lradius.Type, []byte] {
	return func(yield func(lradius.Type, []byte) bool) {
		b := p.raw[HeaderLen:]
		for len(b) >= 2 {
			l := int(b[1])
			if !yield(lradius.Type(b[0]), b[2:l]) {
				return
			}
			b = b[l:]
		}
	}
}

// Lookup returns the value of the first attribute of typ.
func (p *Packet) Lookup(typ lradius.Type) ([]byte, bool) {
	for t, v := range p.All() {
		if t == typ {
			return v, true
		}
	}
	return nil, false
}

// Uint32 returns the first attribute of typ as an RFC 2865 §5 integer;
// false when absent or not 4 octets.
func (p *Packet) Uint32(typ lradius.Type) (uint32, bool) {
	v, ok := p.Lookup(typ)
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// EAPMessage concatenates the EAP-Message attributes (RFC 3579 §3.1) and
// checks that the EAP header's Length equals what arrived. ok is false when
// there are none; an empty message (EAP-Start) returns ok with len 0. On
// ErrEAPLength eap is still returned: its Identifier is the one the
// EAP-Failure answering it must carry.
func (p *Packet) EAPMessage() (eap []byte, ok bool, err error) {
	if p.eap == 0 {
		return nil, false, nil
	}
	n := 0
	for t, v := range p.All() {
		if t == rfc2869.EAPMessage_Type {
			n += len(v)
		}
	}
	eap = make([]byte, 0, n)
	for t, v := range p.All() {
		if t == rfc2869.EAPMessage_Type {
			eap = append(eap, v...)
		}
	}
	if n == 0 {
		return eap, true, nil
	}
	if n < 4 || int(binary.BigEndian.Uint16(eap[2:4])) != n {
		return eap, true, ErrEAPLength
	}
	return eap, true, nil
}

// AppendProxyStates appends copies of the packet's Proxy-State attributes,
// in order, for echoing in the response (RFC 2865 §5.33).
func (p *Packet) AppendProxyStates(attrs lradius.Attributes) lradius.Attributes {
	if p.proxy == 0 {
		return attrs
	}
	for t, v := range p.All() {
		if t == rfc2865.ProxyState_Type {
			attrs = append(attrs, &lradius.AVP{Type: t, Attribute: append(lradius.Attribute(nil), v...)})
		}
	}
	return attrs
}

// AppendEAP splits one EAP packet into consecutive EAP-Message attributes
// of at most 253 octets (RFC 3579 §3.1). The values alias eap.
func AppendEAP(attrs lradius.Attributes, eap []byte) lradius.Attributes {
	for len(eap) > 0 {
		n := min(len(eap), MaxValue)
		attrs = append(attrs, &lradius.AVP{Type: rfc2869.EAPMessage_Type, Attribute: eap[:n:n]})
		eap = eap[n:]
	}
	return attrs
}
