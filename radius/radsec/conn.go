package radsec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	lradius "layeh.com/radius"

	"hardbound/radius/dynauth"
	"hardbound/radius/packet"
	"hardbound/store"
)

// conn is one RADIUS/TLS connection.
type conn struct {
	l    *Listener
	raw  net.Conn
	tc   *tls.Conn
	from netip.AddrPort
	id   identity
	seq  uint64 // registration order: Stream picks the newest
	// epoch is Listener.epoch when the connection was tracked (mu).
	epoch uint64

	sem  chan struct{} // requests being answered
	wmu  sync.Mutex    // one packet per write, whole
	done chan struct{}
	once sync.Once
	why  string // close reason, set once
	// partial: the reader is inside a packet (PacketTimeout applies).
	partial bool

	pmu     sync.Mutex
	pending map[byte]chan []byte // reverse requests by Identifier
	nextID  byte
}

// close ends the connection for reason; the first reason counts. Closing
// the TCP socket, not the TLS conn, never blocks on a close_notify write
// to a peer that does not read.
func (c *conn) close(reason string) {
	c.once.Do(func() {
		c.why = reason
		close(c.done)
		_ = c.raw.Close()
	})
}

func (l *Listener) serveConn(ctx context.Context, raw net.Conn) {
	c := &conn{l: l, raw: raw, done: make(chan struct{}), sem: make(chan struct{}, l.cfg.MaxInFlight),
		pending: map[byte]chan []byte{}}
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		c.from = ta.AddrPort()
	}
	l.track(c, true)
	defer l.track(c, false)
	defer c.close("eof")

	cfg := l.tls.Clone()
	var idErr error
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		c.id, idErr = l.id.identify(ctx, cs.PeerCertificates)
		return idErr
	}
	c.tc = tls.Server(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, l.cfg.HandshakeTimeout)
	err := c.tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		reason := "handshake"
		if idErr != nil {
			reason = refusal(idErr)
			err = idErr
		}
		l.m.Refused(reason)
		l.log.Info("RADIUS/TLS peer refused", "from", c.from.String(), "reason", reason, "err", err)
		switch reason {
		case "revoked", "unbound", "not_nas": // a certificate of hardbound's CA
			l.audit(ctx, c, c.tc.ConnectionState(), "denied", reason)
		}
		return
	}
	if !l.register(c) {
		l.m.Refused("per_nas")
		l.log.Warn("RADIUS/TLS connection refused: NAS at its connection limit (or revoked meanwhile)", "nas", c.id.name,
			"from", c.from.String(), "max", l.cfg.MaxPerNAS)
		l.audit(ctx, c, c.tc.ConnectionState(), "denied", "per_nas")
		return
	}
	okReason := ""
	if c.id.cached {
		okReason = "identified_while_store_unavailable"
	}
	l.audit(ctx, c, c.tc.ConnectionState(), "ok", okReason)
	st := c.tc.ConnectionState()
	if c.id.cached {
		l.m.Accepted(c.id.source + "_cached")
		l.log.Warn("RADIUS/TLS connection identified from before the store became unavailable", "nas", c.id.name,
			"from", c.from.String(), "tls", tls.VersionName(st.Version))
	} else {
		l.m.Accepted(c.id.source)
		l.log.Info("RADIUS/TLS connection", "nas", c.id.name, "from", c.from.String(), "source", c.id.source,
			"tls", tls.VersionName(st.Version))
	}

	var handlers sync.WaitGroup
	reason := c.read(ctx, &handlers)
	c.close(reason)
	handlers.Wait()
	l.m.Closed(c.why)
	l.log.Info("RADIUS/TLS connection closed", "nas", c.id.name, "from", c.from.String(), "reason", c.why)
}

// audit records a connection's admission or refusal (Config.Auditor).
func (l *Listener) audit(ctx context.Context, c *conn, st tls.ConnectionState, result, reason string) {
	if l.cfg.Auditor == nil {
		return
	}
	actor, subject := "anonymous", ""
	if c.id.name != "" {
		actor, subject = "nas:"+c.id.name, c.id.name
	}
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		if subject == "" {
			subject = leaf.Subject.CommonName
			if name, ok := nasName(leaf); ok {
				actor, subject = "nas:"+name, name
			}
		}
		reason = strings.TrimSpace(reason + " serial " + leaf.SerialNumber.Text(16))
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ev := &store.AuditEvent{Time: time.Now(), Actor: actor, Action: "radsec.connect", Subject: subject, Result: result,
		Reason: reason, Source: c.from.String()}
	if err := l.cfg.Auditor.AppendAudit(actx, ev); err != nil {
		l.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

// read runs the receive loop and returns why it ended.
func (c *conn) read(ctx context.Context, handlers *sync.WaitGroup) string {
	l := c.l
	buf := make([]byte, packet.MaxLen)
	first := func() {
		c.partial = true
		_ = c.tc.SetReadDeadline(time.Now().Add(l.cfg.PacketTimeout))
	}
	for {
		c.partial = false
		_ = c.tc.SetReadDeadline(time.Now().Add(l.cfg.IdleTimeout))
		b, err := packet.ReadStream(c.tc, buf, first)
		if err != nil {
			return c.readError(err)
		}
		switch code := lradius.Code(b[0]); code {
		case lradius.CodeDisconnectACK, lradius.CodeDisconnectNAK, lradius.CodeCoAACK, lradius.CodeCoANAK:
			c.answer(b)
			continue
		}
		l.m.Packet("request")
		select {
		case c.sem <- struct{}{}:
		case <-c.done:
			return c.why
		}
		pkt := append([]byte(nil), b...)
		handlers.Go(func() {
			defer func() { <-c.sem }()
			if resp := l.h.HandleStream(ctx, c.id.name, c.from, pkt); resp != nil {
				if err := c.write(resp); err != nil {
					c.close("write")
					return
				}
				l.m.Packet("response")
			}
		})
	}
}

func (c *conn) readError(err error) string {
	select {
	case <-c.done:
		return c.why
	default:
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, packet.ErrFraming):
		c.l.log.Info("RADIUS/TLS stream broken; closing", "nas", c.id.name, "from", c.from.String(), "err", err)
		return "framing"
	case errors.As(err, &ne) && ne.Timeout():
		if c.partial {
			return "slow" // a packet begun but not finished within PacketTimeout
		}
		return "idle"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	c.l.log.Info("RADIUS/TLS read failed; closing", "nas", c.id.name, "from", c.from.String(), "err", err)
	return "tls"
}

func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.tc.SetWriteDeadline(time.Now().Add(c.l.cfg.WriteTimeout))
	_, err := c.tc.Write(b) // one Write: one TLS record for a RADIUS packet (<= 4096 octets)
	return err
}

// Exchange sends a request we originate (Disconnect/CoA) down the
// connection and waits for its answer (dynauth.Stream). Identifiers of
// requests in this direction are ours to choose; answers are told from the
// NAS's requests by their codes.
func (c *conn) Exchange(ctx context.Context, encode func(id byte) ([]byte, error)) ([]byte, error) {
	ch := make(chan []byte, 1)
	c.pmu.Lock()
	if len(c.pending) >= 256 {
		c.pmu.Unlock()
		return nil, fmt.Errorf("radsec: 256 requests outstanding to %s", c.id.name)
	}
	id := c.nextID
	for c.pending[id] != nil {
		id++
	}
	c.nextID = id + 1
	c.pending[id] = ch
	c.pmu.Unlock()
	defer func() {
		c.pmu.Lock()
		delete(c.pending, id)
		c.pmu.Unlock()
	}()
	b, err := encode(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.done:
		return nil, fmt.Errorf("%w: %s", dynauth.ErrStreamClosed, c.id.name)
	default:
	}
	if err := c.write(b); err != nil {
		c.close("write")
		return nil, fmt.Errorf("%w: %s: %w", dynauth.ErrStreamClosed, c.id.name, err)
	}
	c.l.m.Packet("reverse_request")
	select {
	case resp := <-ch:
		return resp, nil
	case <-c.done:
		return nil, fmt.Errorf("%w: %s", dynauth.ErrStreamClosed, c.id.name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Secret keys the requests sent down the connection (dynauth.Stream).
func (c *conn) Secret() []byte { return []byte(Secret) }

// answer hands an answer to the reverse request with its Identifier.
func (c *conn) answer(b []byte) {
	c.pmu.Lock()
	ch := c.pending[b[1]]
	c.pmu.Unlock()
	if ch == nil {
		c.l.m.Packet("reverse_unmatched")
		return
	}
	select {
	case ch <- append([]byte(nil), b...):
		c.l.m.Packet("reverse_response")
	default: // a second answer to one request
		c.l.m.Packet("reverse_unmatched")
	}
}
