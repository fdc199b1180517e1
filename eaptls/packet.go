package eaptls

import (
	"encoding/binary"
	"fmt"
)

// EAP codes (RFC 3748 §4).
const (
	CodeRequest  = 1
	CodeResponse = 2
	CodeSuccess  = 3
	CodeFailure  = 4
)

// EAP method types used here (RFC 3748 §5, RFC 5216).
const (
	TypeIdentity     = 1
	TypeNotification = 2
	TypeNak          = 3
	TypeTLS          = 13
)

// EAP-TLS flags (RFC 5216 §3.1). The low five bits are reserved and ignored
// on receipt.
const (
	flagLength = 0x80
	flagMore   = 0x40
	flagStart  = 0x20
)

const eapHeaderLen = 4

// Packet is one EAP packet. For Success and Failure Type is 0 and Data is
// empty. Data produced by ParsePacket aliases the parsed buffer.
type Packet struct {
	Code, ID, Type uint8
	Data           []byte
}

// ParsePacket parses one EAP packet. Octets beyond the EAP Length field are
// link-layer padding and ignored (RFC 3748 §4.1). The returned Data aliases b.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < eapHeaderLen {
		return Packet{}, fmt.Errorf("%w: %d bytes is shorter than the EAP header", ErrMalformed, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < eapHeaderLen || n > len(b) {
		return Packet{}, fmt.Errorf("%w: EAP length %d with %d bytes present", ErrMalformed, n, len(b))
	}
	p := Packet{Code: b[0], ID: b[1]}
	switch p.Code {
	case CodeSuccess, CodeFailure:
		if n != eapHeaderLen {
			return Packet{}, fmt.Errorf("%w: EAP code %d with length %d", ErrMalformed, p.Code, n)
		}
	case CodeRequest, CodeResponse:
		if n < eapHeaderLen+1 {
			return Packet{}, fmt.Errorf("%w: EAP code %d without a type", ErrMalformed, p.Code)
		}
		p.Type = b[4]
		p.Data = b[5:n:n]
	default:
		return Packet{}, fmt.Errorf("%w: unknown EAP code %d", ErrMalformed, p.Code)
	}
	return p, nil
}

// Encode serializes p into a newly allocated buffer. Success and Failure
// packets are always 4 bytes, whatever Type and Data hold.
func (p Packet) Encode() []byte {
	if p.Code == CodeSuccess || p.Code == CodeFailure {
		return []byte{p.Code, p.ID, 0, eapHeaderLen}
	}
	n := eapHeaderLen + 1 + len(p.Data)
	b := make([]byte, n)
	b[0], b[1] = p.Code, p.ID
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	b[4] = p.Type
	copy(b[5:], p.Data)
	return b
}

// tlsPayload splits EAP-TLS Type-Data into flags and the rest. An empty
// Type-Data is treated as an ACK with no flags: the flags octet is mandatory,
// but rejecting its absence buys nothing and some old peers omit it.
func tlsPayload(data []byte) (flags byte, rest []byte) {
	if len(data) == 0 {
		return 0, nil
	}
	return data[0], data[1:]
}

// isAck reports whether an EAP-TLS message carries no TLS data and no
// fragmentation flags.
func isAck(flags byte, rest []byte) bool {
	return flags&(flagLength|flagMore|flagStart) == 0 && len(rest) == 0
}

// tlsPacket builds an EAP-TLS packet with the given flags and TLS data. total
// is written as the TLS Message Length when flagLength is set.
func tlsPacket(code, id, flags byte, total int, data []byte) []byte {
	n := eapHeaderLen + 2 + len(data)
	if flags&flagLength != 0 {
		n += 4
	}
	b := make([]byte, n)
	b[0], b[1] = code, id
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	b[4] = TypeTLS
	b[5] = flags
	off := 6
	if flags&flagLength != 0 {
		binary.BigEndian.PutUint32(b[6:10], uint32(total))
		off = 10
	}
	copy(b[off:], data)
	return b
}
