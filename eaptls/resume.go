package eaptls

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Resumption configures session resumption: session tickets (RFC 5077) for
// TLS 1.2 as RFC 5216 §2.1.2 allows, and PSK with (EC)DHE from a
// NewSessionTicket for TLS 1.3 (RFC 9190 §2.1.3, §5.7). The zero value
// disables it: no ticket is issued and none is accepted (docs/radius.md,
// "Resumption").
//
// A resumed session is authorized exactly like a full one: the certificate
// the ticket carries goes through verifyClientChain and the Authorizer
// again (RFC 9190 §5.7: decisions based on information that may have
// changed MUST be re-evaluated), so a ticket is a shortcut around the
// certificate exchange and its signatures, never around the decision.
type Resumption struct {
	// MaxLifetime caps how long after the full handshake that earned it a
	// ticket (and every ticket re-issued on its resumptions) may be used;
	// the certificate's remaining life and the session's TicketPolicy cap
	// it further. 0 disables resumption.
	MaxLifetime time.Duration
}

// Enabled reports whether tickets are issued.
func (r Resumption) Enabled() bool { return r.MaxLifetime > 0 }

// Ticket is what this package binds into a session ticket besides the TLS
// session itself; the whole is encrypted with the server's ticket keys.
type Ticket struct {
	// Authenticated is the full handshake in which the peer last proved
	// possession of the certificate's key; resumptions do not move it.
	Authenticated time.Time
	// Expires is the end of the ticket's use (Authenticated + lifetime).
	Expires time.Time
	// Subject is what the session's TicketPolicy named (for radius, the
	// device id).
	Subject string
	// CertSHA256 is the SHA-256 of the peer's certificate (filled from
	// the certificate the ticket carries once the session resumed; not
	// known to TicketPolicy.Accept).
	CertSHA256 [32]byte

	// inters names the intermediates the leaf was verified with, kept by
	// the server instead of in the ticket (ticketchain.go).
	inters []interID
}

// TicketPolicy is how the caller of a session bounds the tickets it issues
// and screens the ones it is offered. The zero value leaves only
// Resumption.MaxLifetime and the certificate's life as bounds.
type TicketPolicy[D any] struct {
	// Issue says, from the decision a full handshake's Authorizer
	// returned, how long a ticket issued on it may be used (further capped
	// by Resumption.MaxLifetime and the certificate's remaining life) and
	// which subject it names. A lifetime of 0 or less issues no usable
	// ticket. It is asked when the Authorizer ran and allowed the peer
	// (without an Authorizer the session is allowed undecided, and only
	// the other bounds apply).
	Issue func(d D) (lifetime time.Duration, subject string)
	// Accept, if set, is asked about every ticket that decrypted and has
	// not expired, before TLS resumes with it; false makes the handshake a
	// full one (the peer's certificate and signature again). It runs on
	// the handshake's goroutine and must not block.
	Accept func(t Ticket) bool
}

// Ticket-ignored causes (Metrics.TicketIgnored).
const (
	TicketUndecryptable = "undecryptable" // another or a rotated-out key, or not ours
	TicketExpired       = "expired"       // past Ticket.Expires
	TicketRefused       = "refused"       // TicketPolicy.Accept said no
	TicketUnknownChain  = "unknown_chain" // names an intermediate this server does not hold
)

// ticketKeyLen is the size of a crypto/tls session ticket key.
const ticketKeyLen = 32

// ErrTicketKeys is returned for an unusable set of ticket keys.
var ErrTicketKeys = errors.New("eaptls: ticket keys")

// NewTicketKey draws a random session ticket key.
func NewTicketKey() ([ticketKeyLen]byte, error) {
	var k [ticketKeyLen]byte
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("%w: %w", ErrTicketKeys, err)
	}
	return k, nil
}

// SetTicketKeys replaces the keys that protect session tickets: the first
// encrypts new tickets, every one decrypts. Tickets under a key no longer
// in the list stop resuming, so replacing the whole list (RotateTicketKey)
// makes every peer's next authentication a full handshake. Sessions
// already started keep the keys they started with. Safe for concurrent
// use; a no-op when resumption is disabled.
func (srv *Server) SetTicketKeys(keys [][ticketKeyLen]byte) error {
	if !srv.cfg.Resumption.Enabled() {
		return nil
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: at least one key is required", ErrTicketKeys)
	}
	// crypto/tls derives the AES and HMAC keys and guards the swap with
	// the Config's own lock, which Clone (every session's run) takes too.
	srv.base.SetSessionTicketKeys(keys)
	return nil
}

// ResumptionEnabled reports whether this server issues and accepts
// tickets (ServerConfig.Resumption).
func (srv *Server) ResumptionEnabled() bool { return srv.cfg.Resumption.Enabled() }

// RotateTicketKey replaces the ticket keys with one fresh random key.
func (srv *Server) RotateTicketKey() error {
	k, err := NewTicketKey()
	if err != nil {
		return err
	}
	return srv.SetTicketKeys([][ticketKeyLen]byte{k})
}

// The ticket extension is one element of tls.SessionState.Extra:
//
//	"hb1" | authenticated (int64 unix s) | expires (int64 unix s) |
//	subject length (uint8) | subject | intermediates (uint8) | 8 octets each
//
// It is inside the encrypted and authenticated ticket, so it is trusted
// as far as the ticket keys are. It is kept small: the ticket already
// carries the peer's certificate chain, and a TLS 1.3 ClientHello that
// offers it must fit one EAP-TLS fragment at Framed-MTU 1400 to save a
// round trip. The certificate's hash is not in it: the certificate is.
var ticketMagic = [3]byte{'h', 'b', '1'}

const ticketFixed = len(ticketMagic) + 8 + 8 + 1

func (t Ticket) encode() []byte {
	subj := t.Subject
	if len(subj) > 255 {
		subj = subj[:255]
	}
	inters := t.inters[:min(len(t.inters), 255)]
	b := make([]byte, 0, ticketFixed+len(subj)+1+8*len(inters))
	b = append(b, ticketMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Authenticated.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	b = append(b, byte(len(subj)))
	b = append(b, subj...)
	b = append(b, byte(len(inters)))
	for _, id := range inters {
		b = append(b, id[:]...)
	}
	return b
}

// decodeTicket finds this package's element among extra.
func decodeTicket(extra [][]byte) (Ticket, bool) {
	for _, b := range extra {
		if len(b) < ticketFixed || [3]byte(b[:3]) != ticketMagic {
			continue
		}
		var t Ticket
		t.Authenticated = time.Unix(int64(binary.BigEndian.Uint64(b[3:11])), 0)
		t.Expires = time.Unix(int64(binary.BigEndian.Uint64(b[11:19])), 0)
		n := int(b[19])
		if len(b) < ticketFixed+n+1 {
			return Ticket{}, false
		}
		t.Subject = string(b[ticketFixed : ticketFixed+n])
		rest := b[ticketFixed+n:]
		k := int(rest[0])
		if len(rest) != 1+8*k {
			return Ticket{}, false
		}
		for i := range k {
			t.inters = append(t.inters, interID(rest[1+8*i:9+8*i]))
		}
		return t, true
	}
	return Ticket{}, false
}

func (srv *Server) now() time.Time {
	if srv.base.Time != nil {
		return srv.base.Time()
	}
	return time.Now()
}

// wrapSession is the session's tls.Config.WrapSession: it binds a Ticket
// into the session state and encrypts it with the ticket keys. A resumed
// session re-issues its ticket with the same Authenticated and Expires, so
// resuming never extends a ticket's life; a full one computes them from
// the decision. A session that earned no ticket gets an unusable one
// (WrapSession cannot decline): an empty ticket in TLS 1.2 (RFC 5077
// §3.3), random octets in TLS 1.3, where the label may not be empty.
func (s *Session[D]) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	t, ok := s.ticketFor(cs)
	if !ok {
		if cs.Version != tls.VersionTLS13 {
			return []byte{}, nil
		}
		junk := make([]byte, 32)
		if _, err := rand.Read(junk); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTicketKeys, err)
		}
		return junk, nil
	}
	ss.Extra = append(ss.Extra, t.encode())
	if len(t.inters) > 0 && len(cs.PeerCertificates) > 1 {
		if lean, ok := leafOnly(ss); ok {
			ss = lean
		}
	}
	return s.tlsCfg.EncryptTicket(cs, ss)
}

// ticketFor is the Ticket to issue on this connection, false for none.
func (s *Session[D]) ticketFor(cs tls.ConnectionState) (Ticket, bool) {
	if cs.DidResume {
		// TLS 1.3 re-issues before the resumed session's decision ran
		// (Go sends the ticket with the server Finished): carry the old
		// ticket's bounds; the decision still runs before success.
		return s.resumed, s.haveTicket
	}
	if s.authErr != nil || len(cs.PeerCertificates) == 0 {
		return Ticket{}, false
	}
	leaf := cs.PeerCertificates[0]
	if cs.Version == tls.VersionTLS12 && !s.ems {
		return Ticket{}, false // never resume what Key_Material cannot be exported for
	}
	now := s.srv.now()
	life := s.srv.cfg.Resumption.MaxLifetime
	if left := leaf.NotAfter.Sub(now); left < life {
		life = left
	}
	var subject string
	if s.tickets.Issue != nil && s.decided {
		limit, subj := s.tickets.Issue(s.decision)
		life, subject = min(life, limit), subj
	}
	if life < time.Second {
		return Ticket{}, false
	}
	t := Ticket{
		Authenticated: now.Truncate(time.Second),
		Subject:       subject,
		CertSHA256:    sha256.Sum256(leaf.Raw),
	}
	// Truncated so that the encoded second never exceeds the bound.
	t.Expires = now.Add(life).Truncate(time.Second)
	t.inters = s.keepIntermediates(cs.PeerCertificates)
	return t, true
}

// keepIntermediates stores the peer-sent certificates of the chain that
// verified (not the leaf, not a root of ClientCAs) and returns their ids;
// nil when there are none or one could not be kept (the ticket then
// carries the whole chain).
func (s *Session[D]) keepIntermediates(peer []*x509.Certificate) []interID {
	if len(peer) < 2 || len(s.cs.VerifiedChains) == 0 {
		return nil
	}
	chain := s.cs.VerifiedChains[0]
	var ids []interID
	for _, c := range chain[1:] {
		if !slices.ContainsFunc(peer[1:], c.Equal) {
			continue // from ClientCAs: every node has it
		}
		if !s.srv.inters.add(c) {
			return nil
		}
		ids = append(ids, interIDOf(c))
	}
	return ids
}

// unwrapSession is the session's tls.Config.UnwrapSession: a ticket that
// does not decrypt under the current keys, has expired, or that
// TicketPolicy.Accept refuses is ignored (nil, nil), and crypto/tls runs a
// full handshake instead. It never fails the handshake.
func (s *Session[D]) unwrapSession(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, _ := s.tlsCfg.DecryptTicket(identity, cs)
	if ss == nil {
		s.srv.metrics.TicketIgnored(TicketUndecryptable)
		return nil, nil
	}
	t, ok := decodeTicket(ss.Extra)
	if !ok {
		s.srv.metrics.TicketIgnored(TicketUndecryptable)
		return nil, nil
	}
	if !s.srv.now().Before(t.Expires) {
		s.srv.metrics.TicketIgnored(TicketExpired)
		return nil, nil
	}
	if accept := s.tickets.Accept; accept != nil && !accept(t) {
		s.srv.metrics.TicketIgnored(TicketRefused)
		return nil, nil
	}
	inters, ok := s.srv.inters.get(t.inters)
	if !ok {
		s.srv.metrics.TicketIgnored(TicketUnknownChain)
		return nil, nil
	}
	s.resumed, s.haveTicket, s.resumedInters = t, true, inters
	return ss, nil
}

// SetTicketPolicy sets how tickets issued by this session are bounded and
// named; without one only Resumption.MaxLifetime and the certificate's
// life bound them. Call it before the first Step.
func (s *Session[D]) SetTicketPolicy(p TicketPolicy[D]) { s.tickets = p }

// Resumed reports whether the handshake resumed a session from a ticket;
// valid once the Authorizer ran.
func (s *Session[D]) Resumed() bool { return s.cs.DidResume }

// Ticket returns the ticket a resumed session came from.
func (s *Session[D]) Ticket() (Ticket, bool) {
	if !s.cs.DidResume || !s.haveTicket {
		return Ticket{}, false
	}
	t := s.resumed
	if len(s.cs.PeerCertificates) > 0 {
		t.CertSHA256 = sha256.Sum256(s.cs.PeerCertificates[0].Raw)
	}
	return t, true
}
