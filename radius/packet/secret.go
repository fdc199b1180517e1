package packet

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"sync"

	lradius "layeh.com/radius"
)

// Verification errors. They carry no detail, so that a flood of forgeries
// costs no allocation.
var (
	ErrNoMessageAuthenticator  = errors.New("radius: Message-Authenticator missing")
	ErrBadMessageAuthenticator = errors.New("radius: Message-Authenticator does not verify")
	ErrBadAuthenticator        = errors.New("radius: Authenticator does not verify")
	// ErrProxyStateWithoutMessageAuthenticator: an Access-Request without
	// Message-Authenticator carried Proxy-State under Policy.LimitProxyState.
	ErrProxyStateWithoutMessageAuthenticator = errors.New("radius: Proxy-State without Message-Authenticator")
	// ErrNotRequest: the Code is not one whose Authenticator rule this
	// package knows for a request.
	ErrNotRequest = errors.New("radius: not a request code")
)

// Policy is what a receiver demands beyond the rules this package always
// applies.
type Policy struct {
	// RequireMessageAuthenticator discards packets without one.
	// Status-Server, Access-Requests carrying EAP-Message and every
	// Access-Accept, -Reject and -Challenge need one whatever it says.
	RequireMessageAuthenticator bool
	// LimitProxyState discards an Access-Request that has no
	// Message-Authenticator (allowed by RequireMessageAuthenticator false)
	// but carries Proxy-State: the BlastRADIUS collision blocks ride in
	// Proxy-State, which the server echoes.
	LimitProxyState bool
}

// Secret is one RADIUS shared secret with reusable hash states (hmac.New
// and md5.New allocate; the server verifies and signs every packet). It is
// safe for concurrent use.
type Secret struct {
	key  []byte
	pool sync.Pool // *hashers
}

// hashers is one HMAC-MD5 keyed with the secret, one MD5 and room for a sum.
type hashers struct {
	mac hash.Hash
	md  hash.Hash
	sum [md5.Size]byte
}

// NewSecret copies key.
func NewSecret(key []byte) *Secret {
	s := &Secret{key: bytes.Clone(key)}
	s.pool.New = func() any { return &hashers{mac: hmac.New(md5.New, s.key), md: md5.New()} }
	return s
}

func (s *Secret) get() *hashers {
	h := s.pool.Get().(*hashers)
	h.mac.Reset()
	h.md.Reset()
	return h
}

func (s *Secret) put(h *hashers) { s.pool.Put(h) }

// zero16 stands in for the Message-Authenticator value, and for the
// Authenticator where a rule says it is taken as zeros. Never written.
var zero16 [AuthLen]byte

// messageAuthenticator is HMAC-MD5 over raw with auth in place of the
// Authenticator field and zeros in place of the value at maOff (RFC 3579
// §3.2). The result aliases h.sum.
func (h *hashers) messageAuthenticator(raw, auth []byte, maOff int) []byte {
	h.mac.Reset()
	h.mac.Write(raw[:4])
	h.mac.Write(auth)
	h.mac.Write(raw[HeaderLen:maOff])
	h.mac.Write(zero16[:])
	h.mac.Write(raw[maOff+AuthLen:])
	return h.mac.Sum(h.sum[:0])
}

// authenticator is MD5(Code|Identifier|Length|auth|Attributes|Secret): the
// Response Authenticator with auth = the request's (RFC 2865 §3), the
// Request Authenticator of Accounting-, Disconnect- and CoA-Request with
// auth = 16 zero octets (RFC 2866 §3, RFC 5176 §2.3). The result aliases
// h.sum.
func (h *hashers) authenticator(raw, auth, key []byte) []byte {
	h.md.Reset()
	h.md.Write(raw[:4])
	h.md.Write(auth)
	h.md.Write(raw[HeaderLen:])
	h.md.Write(key)
	return h.md.Sum(h.sum[:0])
}

// hashedRequest reports the request codes whose Authenticator is an MD5
// over the packet (rather than random) and whose Message-Authenticator is
// therefore computed over a zero Authenticator field: the Request
// Authenticator cannot be known before the Message-Authenticator it covers
// (RFC 2866 §3, RFC 5176 §2.3 and §3.4).
func hashedRequest(c lradius.Code) bool {
	switch c {
	case lradius.CodeAccountingRequest, lradius.CodeDisconnectRequest, lradius.CodeCoARequest:
		return true
	}
	return false
}

// randomRequest reports the request codes whose Authenticator is 16 random
// octets chosen by the client (RFC 2865 §3, RFC 5997 §3).
func randomRequest(c lradius.Code) bool {
	return c == lradius.CodeAccessRequest || c == lradius.CodeStatusServer
}

// accessReply reports the answers to Access-Request, which always carry
// Message-Authenticator (RFC 3579 §3.2 with EAP; BlastRADIUS for all).
func accessReply(c lradius.Code) bool {
	switch c {
	case lradius.CodeAccessAccept, lradius.CodeAccessReject, lradius.CodeAccessChallenge:
		return true
	}
	return false
}

// VerifyRequest authenticates a request received by a server (Access-,
// Accounting-Request, Status-Server) or a NAS (Disconnect-, CoA-Request).
// A Message-Authenticator, when present, is checked first; then the
// Request Authenticator where the Code has a verifiable one. It is
// required on Status-Server (RFC 5997 §3), on an Access-Request carrying
// EAP-Message (RFC 3579 §3.2) and where pol requires it. A packet failing
// any check must be discarded silently, before anything else uses it.
func (s *Secret) VerifyRequest(p *Packet, pol Policy) error {
	code := p.Code()
	switch {
	case randomRequest(code):
		if p.maOff < 0 {
			switch {
			case code == lradius.CodeStatusServer || pol.RequireMessageAuthenticator || p.eap > 0:
				return ErrNoMessageAuthenticator
			case pol.LimitProxyState && p.proxy > 0:
				return ErrProxyStateWithoutMessageAuthenticator
			}
			return nil // nothing to verify: the Authenticator is random
		}
		h := s.get()
		defer s.put(h)
		if !hmac.Equal(h.messageAuthenticator(p.raw, p.raw[4:HeaderLen], p.maOff), p.raw[p.maOff:p.maOff+AuthLen]) {
			return ErrBadMessageAuthenticator
		}
		return nil
	case hashedRequest(code):
		if p.maOff < 0 && pol.RequireMessageAuthenticator {
			return ErrNoMessageAuthenticator
		}
		h := s.get()
		defer s.put(h)
		if p.maOff >= 0 && !hmac.Equal(h.messageAuthenticator(p.raw, zero16[:], p.maOff), p.raw[p.maOff:p.maOff+AuthLen]) {
			return ErrBadMessageAuthenticator
		}
		if subtle.ConstantTimeCompare(h.authenticator(p.raw, zero16[:], s.key), p.raw[4:HeaderLen]) != 1 {
			return ErrBadAuthenticator
		}
		return nil
	default:
		return ErrNotRequest
	}
}

// VerifyResponse authenticates p as the answer to the request whose
// Authenticator is reqAuth: Message-Authenticator first (computed with
// reqAuth in the header), then the Response Authenticator (RFC 2865 §3).
// Message-Authenticator is required on Access-Accept, -Reject and
// -Challenge and where pol requires it. Matching Code and Identifier to
// the request is the caller's business.
func (s *Secret) VerifyResponse(p *Packet, reqAuth []byte, pol Policy) error {
	if len(reqAuth) != AuthLen {
		return ErrBadAuthenticator
	}
	if p.maOff < 0 && (pol.RequireMessageAuthenticator || accessReply(p.Code())) {
		return ErrNoMessageAuthenticator
	}
	h := s.get()
	defer s.put(h)
	if p.maOff >= 0 && !hmac.Equal(h.messageAuthenticator(p.raw, reqAuth, p.maOff), p.raw[p.maOff:p.maOff+AuthLen]) {
		return ErrBadMessageAuthenticator
	}
	if subtle.ConstantTimeCompare(h.authenticator(p.raw, reqAuth, s.key), p.raw[4:HeaderLen]) != 1 {
		return ErrBadAuthenticator
	}
	return nil
}

// SignRequest computes, in place, the Message-Authenticator of the encoded
// request b (if it has one, wherever it is) and its Request Authenticator.
// For Access-Request and Status-Server the Authenticator is the caller's
// random value and stays; for Accounting-, Disconnect- and CoA-Request it
// is computed. It is what EncodeRequest does after laying out the packet,
// for a caller that changed a field (the Identifier of a retransmission)
// or built the bytes itself.
func (s *Secret) SignRequest(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	if !randomRequest(p.Code()) && !hashedRequest(p.Code()) {
		return ErrNotRequest
	}
	h := s.get()
	defer s.put(h)
	s.signRequest(h, p.raw, p.maOff)
	return nil
}

func (s *Secret) signRequest(h *hashers, raw []byte, maOff int) {
	hashed := hashedRequest(lradius.Code(raw[0]))
	if hashed {
		clear(raw[4:HeaderLen])
	}
	if maOff >= 0 {
		copy(raw[maOff:maOff+AuthLen], h.messageAuthenticator(raw, raw[4:HeaderLen], maOff))
	}
	if hashed {
		copy(raw[4:HeaderLen], h.authenticator(raw, zero16[:], s.key))
	}
}

// SignResponse computes, in place, the Message-Authenticator of the
// encoded response b (if it has one, wherever it is) and then its Response
// Authenticator, both over the request's Authenticator reqAuth (RFC 3579
// §3.2: the Message-Authenticator first, the Response Authenticator over
// the final octets).
func (s *Secret) SignResponse(b, reqAuth []byte) error {
	if len(reqAuth) != AuthLen {
		return ErrBadAuthenticator
	}
	p, err := Parse(b)
	if err != nil {
		return err
	}
	h := s.get()
	defer s.put(h)
	s.signResponse(h, p.raw, reqAuth, p.maOff)
	return nil
}

func (s *Secret) signResponse(h *hashers, raw, reqAuth []byte, maOff int) {
	if maOff >= 0 {
		copy(raw[maOff:maOff+AuthLen], h.messageAuthenticator(raw, reqAuth, maOff))
	}
	copy(raw[4:HeaderLen], h.authenticator(raw, reqAuth, s.key))
}

// ResponseAuthenticator is MD5(Code|Identifier|Length|reqAuth|Attributes|
// Secret) over the encoded response b (RFC 2865 §3), whatever b's framing
// and Message-Authenticator: with it a test re-signs a response it broke on
// purpose, so that only the check under test can catch the damage. b must
// hold at least the header; a Length field within b bounds the attributes.
func (s *Secret) ResponseAuthenticator(b, reqAuth []byte) [AuthLen]byte {
	return s.rawAuthenticator(b, reqAuth)
}

// RequestAuthenticator is MD5(Code|Identifier|Length|16 zero octets|
// Attributes|Secret) over the encoded request b (RFC 2866 §3, RFC 5176
// §2.3), as ResponseAuthenticator.
func (s *Secret) RequestAuthenticator(b []byte) [AuthLen]byte {
	return s.rawAuthenticator(b, zero16[:])
}

func (s *Secret) rawAuthenticator(b, auth []byte) [AuthLen]byte {
	if l := int(binary.BigEndian.Uint16(b[2:4])); l >= HeaderLen && l <= len(b) {
		b = b[:l]
	}
	h := s.get()
	defer s.put(h)
	return [AuthLen]byte(h.authenticator(b, auth, s.key))
}
