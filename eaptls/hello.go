package eaptls

import "encoding/binary"

// TLS constants needed to pick the randoms out of the plaintext hellos.
// RFC 5216 needs client.random || server.random for the TLS 1.2 Session-Id
// and crypto/tls does not expose them.
const (
	recordTypeHandshake = 22
	hsClientHello       = 1
	hsServerHello       = 2
	extEMS              = 23 // extended_master_secret, RFC 7627
	maxHelloLen         = 1 << 16
)

// firstHandshake returns the body of the first handshake message carried by
// the leading handshake records of stream, if its type is want. A message
// spanning several records is joined into a new buffer; the common single
// record case aliases stream.
func firstHandshake(stream []byte, want byte) ([]byte, bool) {
	var joined []byte
	need := -1
	for len(stream) >= 5 && stream[0] == recordTypeHandshake {
		n := int(binary.BigEndian.Uint16(stream[3:5]))
		if len(stream) < 5+n {
			return nil, false
		}
		frag := stream[5 : 5+n]
		stream = stream[5+n:]
		if need < 0 && joined == nil {
			if len(frag) < 4 || frag[0] != want {
				return nil, false
			}
			need = 4 + (int(frag[1])<<16 | int(frag[2])<<8 | int(frag[3]))
			if need > maxHelloLen {
				return nil, false
			}
			if len(frag) >= need {
				return frag[4:need], true
			}
			joined = make([]byte, 0, need)
		}
		joined = append(joined, frag[:min(len(frag), need-len(joined))]...)
		if len(joined) == need {
			return joined[4:], true
		}
	}
	return nil, false
}

// helloRandom returns the 32-byte random of a ClientHello or ServerHello
// body (legacy_version(2) || random(32) || ...).
func helloRandom(body []byte) ([]byte, bool) {
	if len(body) < 34 {
		return nil, false
	}
	return body[2:34], true
}

// serverHelloEMS reports whether a ServerHello body carries the
// extended_master_secret extension, i.e. whether a TLS 1.2 handshake
// negotiated EMS (RFC 7627 §5.1). crypto/tls does not expose this.
func serverHelloEMS(body []byte) bool {
	if len(body) < 35 {
		return false
	}
	p := body[34:]
	sid := int(p[0])
	if len(p) < 1+sid+3+2 {
		return false
	}
	p = p[1+sid+3:] // session id, cipher suite, compression method
	extLen := int(binary.BigEndian.Uint16(p[:2]))
	p = p[2:]
	if len(p) < extLen {
		return false
	}
	p = p[:extLen]
	for len(p) >= 4 {
		typ := binary.BigEndian.Uint16(p[:2])
		n := int(binary.BigEndian.Uint16(p[2:4]))
		if len(p) < 4+n {
			return false
		}
		if typ == extEMS {
			return true
		}
		p = p[4+n:]
	}
	return false
}
