package eaptls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"sync"
)

// A session ticket carries the peer's certificates, and a TLS 1.3 peer
// sends the ticket back in its ClientHello: with a device certificate and
// its issuing CA (about 1 KiB together) that ClientHello no longer fits one
// EAP-TLS fragment at Framed-MTU 1400, nor does the server flight that
// re-issues the ticket, which costs two round trips per resumption. So a
// ticket keeps only the leaf; the intermediates it was verified with are
// named in the ticket (an 8-octet prefix of each one's SHA-256) and kept
// by the server (interStore), and a resumed session's chain is the leaf
// plus those intermediates, verified again as in a full handshake. A node
// that does not know an intermediate a ticket names ignores the ticket
// (full handshake).

// maxInters bounds the intermediates kept: device chains end in our few
// issuing CAs, and only certificates from chains that verified get in.
const maxInters = 64

type interID [8]byte

func interIDOf(c *x509.Certificate) interID {
	h := sha256.Sum256(c.Raw)
	return interID(h[:8])
}

// interStore holds the intermediates of verified client chains.
type interStore struct {
	mu sync.Mutex
	m  map[interID]*x509.Certificate
}

// add keeps c unless the store is full; false when c is not kept.
func (s *interStore) add(c *x509.Certificate) bool {
	id := interIDOf(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[interID]*x509.Certificate)
	}
	if _, ok := s.m[id]; ok {
		return true
	}
	if len(s.m) >= maxInters {
		return false
	}
	s.m[id] = c
	return true
}

// get returns the intermediates ids name, false if one is unknown.
func (s *interStore) get(ids []interID) ([]*x509.Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*x509.Certificate, 0, len(ids))
	for _, id := range ids {
		c, ok := s.m[id]
		if !ok {
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}

// leafOnly returns ss with its peer certificates reduced to the leaf, by
// rewriting its encoding (the SessionState layout documented in
// crypto/tls/ticket.go): everything up to certificate_list is copied, the
// list keeps its first entry, and the rest (verified_chains, which must be
// empty since this package verifies chains itself, and what follows) is
// copied. Any surprise in the encoding returns false and the caller keeps
// the full ticket: slower, never wrong.
func leafOnly(ss *tls.SessionState) (*tls.SessionState, bool) {
	raw, err := ss.Bytes()
	if err != nil {
		return nil, false
	}
	r := reader{b: raw}
	r.skip(2 + 1 + 2 + 8) // version, type, cipher_suite, created_at
	r.skip(r.uint(1))     // secret
	r.skip(r.uint(3))     // extra
	r.skip(1 + 1)         // ext_master_secret, early_data
	head := r.off
	list := r.uint(3)
	listEnd := r.off + list
	first := r.off
	r.skip(r.uint(3)) // cert_data
	r.skip(r.uint(2)) // extensions
	firstEnd := r.off
	if r.bad || listEnd > len(raw) || firstEnd > listEnd {
		return nil, false
	}
	r.off = listEnd
	if r.uint(3) != 0 || r.bad { // verified_chains
		return nil, false
	}
	entry := raw[first:firstEnd]
	out := make([]byte, 0, len(raw)-(listEnd-firstEnd))
	out = append(out, raw[:head]...)
	out = append(out, byte(len(entry)>>16), byte(len(entry)>>8), byte(len(entry)))
	out = append(out, entry...)
	out = append(out, raw[listEnd:]...)
	trimmed, err := tls.ParseSessionState(out)
	if err != nil {
		return nil, false
	}
	return trimmed, true
}

// reader reads big-endian length prefixes; any overrun sets bad.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) skip(n int) {
	if n < 0 || r.off+n > len(r.b) {
		r.bad = true
		r.off = len(r.b)
		return
	}
	r.off += n
}

func (r *reader) uint(size int) int {
	if r.off+size > len(r.b) {
		r.bad = true
		r.off = len(r.b)
		return 0
	}
	var v int
	for _, c := range r.b[r.off : r.off+size] {
		v = v<<8 | int(c)
	}
	r.off += size
	return v
}
