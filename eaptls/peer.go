package eaptls

import (
	"context"
	"crypto/tls"
	"fmt"
)

// PeerConfig configures the supplicant side (tests, load generation).
type PeerConfig struct {
	// TLS must hold the client certificate and RootCAs/ServerName for the
	// server. If CurvePreferences is empty it defaults to X25519 and P-256
	// so the ClientHello fits in one fragment.
	TLS      *tls.Config
	Identity string
	// MTU sizes outbound fragments like the server does; 0 means 1020.
	MTU int
}

// Peer is the EAP-TLS supplicant state machine. Not safe for concurrent use
// except Close.
type Peer struct {
	ctx   context.Context
	unreg func() bool
	cfg   PeerConfig
	tlsc  *tls.Config

	conn  memConn
	frag  fragmenter
	reasm reassembler

	started  bool
	sawSH    bool
	cr, sr   [32]byte
	haveRand [2]bool
	lastReq  int // Identifier of the last request answered, -1 if none
	lastResp []byte
	finished bool
	outcome  error

	// Written by the TLS coroutine before it finishes.
	keys    keyMaterial
	prot    bool // TLS 1.3 protected success indication received
	version uint16
	resumed bool
}

// NewPeer prepares a supplicant. ctx ending closes it; call Close when done.
func NewPeer(ctx context.Context, cfg PeerConfig) *Peer {
	c := &tls.Config{}
	if cfg.TLS != nil {
		c = cfg.TLS.Clone()
	}
	if len(c.CurvePreferences) == 0 {
		c.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	p := &Peer{ctx: ctx, cfg: cfg, tlsc: c, lastReq: -1}
	p.conn.init(nil)
	p.unreg = context.AfterFunc(ctx, func() { p.conn.closeWith(ErrTimeout) })
	p.frag = fragmenter{size: fragmentSize(cfg.MTU, 0)}
	p.reasm = reassembler{max: DefaultMaxMessage, total: -1}
	return p
}

// Identity builds an EAP-Response/Identity, as a NAS forwards first.
func (p *Peer) Identity(id uint8) []byte {
	return Packet{Code: CodeResponse, ID: id, Type: TypeIdentity, Data: []byte(p.cfg.Identity)}.Encode()
}

// Keys returns MSK and EMSK after EAP-Success, else nil.
func (p *Peer) Keys() (msk, emsk []byte) {
	if !p.finished || p.outcome != nil {
		return nil, nil
	}
	return p.keys.keys()
}

// SessionID returns the 65-byte Session-Id after EAP-Success.
func (p *Peer) SessionID() []byte {
	if !p.finished || p.outcome != nil {
		return nil
	}
	return p.keys.id()
}

// Resumed reports whether the handshake resumed a session from a ticket
// in PeerConfig.TLS's ClientSessionCache; valid after EAP-Success.
func (p *Peer) Resumed() bool { return p.finished && p.outcome == nil && p.resumed }

// Close ends the TLS coroutine. Idempotent; safe from any goroutine.
func (p *Peer) Close() {
	p.unreg()
	p.conn.closeWith(ErrClosed)
}

// Step takes one EAP packet from the server and returns the response to
// send. done is true on EAP-Success with keys available; EAP-Failure yields
// an error matching ErrFailure.
func (p *Peer) Step(req []byte) (resp []byte, done bool, err error) {
	if p.finished {
		return nil, p.outcome == nil, ErrDone
	}
	if err := p.ctx.Err(); err != nil {
		return nil, false, p.end(fmt.Errorf("eaptls: peer: %w", err))
	}
	pkt, err := ParsePacket(req)
	if err != nil {
		return nil, false, err
	}
	switch pkt.Code {
	case CodeSuccess:
		return nil, p.success() == nil, p.outcome
	case CodeFailure:
		_, cause := p.conn.result()
		if cause != nil && p.started {
			return nil, false, p.end(fmt.Errorf("%w: %w", ErrFailure, cause))
		}
		return nil, false, p.end(ErrFailure)
	case CodeResponse:
		return nil, false, fmt.Errorf("%w: response from server", ErrProtocol)
	}
	if int(pkt.ID) == p.lastReq && p.lastResp != nil {
		return p.lastResp, false, nil // retransmitted request
	}
	resp, err = p.request(pkt)
	if err != nil {
		return nil, false, p.end(err)
	}
	p.lastReq, p.lastResp = int(pkt.ID), resp
	return resp, false, nil
}

func (p *Peer) request(pkt Packet) ([]byte, error) {
	switch pkt.Type {
	case TypeIdentity:
		return p.Identity(pkt.ID), nil
	case TypeNotification:
		return Packet{Code: CodeResponse, ID: pkt.ID, Type: TypeNotification}.Encode(), nil
	case TypeTLS:
	default:
		// Legacy Nak proposing EAP-TLS.
		return Packet{Code: CodeResponse, ID: pkt.ID, Type: TypeNak, Data: []byte{TypeTLS}}.Encode(), nil
	}
	flags, rest := tlsPayload(pkt.Data)
	if flags&flagStart != 0 {
		if p.started {
			return nil, fmt.Errorf("%w: second EAP-TLS Start", ErrProtocol)
		}
		p.started = true
		p.conn.start(p.run)
		return p.exchange(pkt.ID, nil)
	}
	if !p.started {
		return nil, fmt.Errorf("%w: EAP-TLS data before Start", ErrProtocol)
	}
	ack := isAck(flags, rest)
	if p.frag.pending() {
		if !ack {
			return nil, fmt.Errorf("%w: expected ACK of a fragment", ErrProtocol)
		}
		return p.frag.next(CodeResponse, pkt.ID), nil
	}
	if ack {
		return nil, fmt.Errorf("%w: unexpected ACK from server", ErrProtocol)
	}
	msg, complete, err := p.reasm.add(flags, rest)
	if err != nil {
		return nil, err
	}
	if !complete {
		return tlsPacket(CodeResponse, pkt.ID, 0, 0, nil), nil
	}
	return p.exchange(pkt.ID, msg)
}

func (p *Peer) exchange(id uint8, msg []byte) ([]byte, error) {
	if !p.sawSH && len(msg) > 0 {
		p.sawSH = true
		if body, ok := firstHandshake(msg, hsServerHello); ok {
			if r, ok := helloRandom(body); ok {
				copy(p.sr[:], r)
				p.haveRand[1] = true
			}
		}
	}
	out, st := p.conn.exchange(msg)
	p.reasm.release()
	if !p.haveRand[0] && len(out) > 0 {
		if body, ok := firstHandshake(out, hsClientHello); ok {
			if r, ok := helloRandom(body); ok {
				copy(p.cr[:], r)
				p.haveRand[0] = true
			}
		}
	}
	if st.closed && !st.done {
		return nil, st.closeErr
	}
	if len(out) == 0 {
		// Nothing to say (server alert, NewSessionTicket, 0x00): ACK.
		return tlsPacket(CodeResponse, id, 0, 0, nil), nil
	}
	p.frag.load(out)
	return p.frag.next(CodeResponse, id), nil
}

// run is the peer's TLS coroutine: the handshake, then for TLS 1.3 one read
// for the protected success indication.
func (p *Peer) run() {
	tc := tls.Client(&p.conn, p.tlsc)
	err := tc.Handshake()
	if err == nil {
		cs := tc.ConnectionState()
		p.version, p.resumed = cs.Version, cs.DidResume
		if cs.Version == tls.VersionTLS13 {
			var b [1]byte
			var n int
			n, err = tc.Read(b[:])
			if err == nil && (n != 1 || b[0] != 0) {
				err = fmt.Errorf("%w: application data is not the 0x00 success indication", ErrProtocol)
			}
			p.prot = err == nil
		}
		if err == nil {
			cr, sr := p.cr[:], p.sr[:]
			if !p.haveRand[0] || !p.haveRand[1] {
				cr, sr = nil, nil
			}
			err = p.keys.derive(&cs, cr, sr)
		}
	}
	p.conn.finish(err)
}

func (p *Peer) success() error {
	done, err := p.conn.result()
	switch {
	case !p.started:
		return p.end(fmt.Errorf("%w: EAP-Success before EAP-TLS started", ErrProtocol))
	case !done && p.version == 0:
		return p.end(fmt.Errorf("%w: EAP-Success before the TLS handshake finished", ErrProtocol))
	case !done:
		return p.end(ErrNoSuccessIndication)
	case err != nil:
		return p.end(fmt.Errorf("eaptls: peer: EAP-Success after TLS error: %w", err))
	case !p.keys.ok:
		return p.end(ErrKeys)
	}
	return p.end(nil)
}

func (p *Peer) end(err error) error {
	p.finished = true
	p.outcome = err
	p.frag.reset()
	p.reasm.release()
	p.Close()
	return err
}
