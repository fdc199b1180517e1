package radius

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	lradius "layeh.com/radius"
	"layeh.com/radius/vendors/microsoft"

	"hardbound/eaptls"
	"hardbound/posture"
	"hardbound/radius/packet"
	"hardbound/store"
)

// ErrRejected is returned by the Authorizer when the Decider says no; the
// TLS handshake then fails with an alert.
var ErrRejected = errors.New("radius: device not authorized")

const (
	tunnelTypeVLAN        = 13 // RFC 3580 §3.31
	tunnelMediumIEEE802   = 6
	terminationRADIUSReq  = 1 // RFC 2865 §5.29: re-authenticate at Session-Timeout
	minFramedMTU          = 100
	maxTunnelGroupIDBytes = maxAttr - 1 // one tag byte
)

// access handles an authenticated, non-duplicate Access-Request. inline is
// the reader answering it itself, nil when a worker does (see reader).
func (s *Server) access(ctx context.Context, inline *reader, n *nas, from netip.AddrPort, p *packet.Packet) []byte {
	eap, hasEAP, err := p.EAPMessage()
	if !hasEAP {
		// hardbound only speaks EAP-TLS; PAP/CHAP get a plain reject.
		return s.reject(n, p, nil, RejectNoEAP)
	}
	if err != nil {
		s.log.Info("malformed EAP in Access-Request", "nas", n.Name, "err", err)
		return s.reject(n, p, failureFor(eap), RejectMalformedEAP)
	}

	now := s.now()
	var c *conversation
	if state, ok := p.Lookup(attrState); ok {
		c = s.convs.acquire(now, n, state)
		if c == nil {
			return s.reject(n, p, failureFor(eap), RejectUnknownState)
		}
	} else {
		var (
			live int
			d    displaced
		)
		c, live, d, err = s.convs.create(now, n, stringAttr(p, attrCallingStationID))
		s.closeDisplaced(d)
		if err != nil {
			s.refusals.log(s.log, "EAP conversation cap reached: no conversation to evict", "nas", n.Name, "live", live,
				"calling_station", stringAttr(p, attrCallingStationID))
			return s.reject(n, p, failureFor(eap), RejectOverCapacity)
		}
		s.metrics.Conversations(live)
		// The session's own deadline (eaptls HandshakeTimeout) runs from
		// here; conversation.close ends it earlier.
		c.sess = s.newSession(ctx, eaptls.SessionOptions{
			MTU:        framedMTU(p),
			MaxVersion: n.TLSMaxVersion,
			NoResume:   n.NoResume,
		})
	}

	// Whoever answers the packet decides for it: a packet answered inline
	// must hand the socket over before a decision that can block.
	authorize := s.authorize
	if inline != nil {
		authorize = inline.authorize
	}
	// An empty EAP-Message (EAP-Start, RFC 3579 §2.1) makes Step ask for the
	// identity. When eap completes the device's certificate flight, Step
	// calls authorize on this goroutine, inside the TLS handshake, and
	// returns the verdict in res.Decision.
	if isTLSData(eap) {
		// The peer is doing TLS: from now on the conversation costs a
		// handshake and is no longer evicted for newcomers.
		ok, d := s.convs.advance(c)
		s.closeDisplaced(d)
		if !ok {
			s.convs.release(s.now(), c)
			s.finish(c)
			s.refusals.log(s.log, "EAP conversation memory bound reached: no conversation to evict", "nas", n.Name)
			return s.reject(n, p, failureFor(eap), RejectOverCapacity)
		}
	}
	c.step.Lock()
	if c.ended.Load() {
		// A concurrent packet with the same State finished it meanwhile,
		// or a newer conversation of the station replaced it.
		c.step.Unlock()
		s.convs.release(s.now(), c)
		c.close()
		return s.reject(n, p, failureFor(eap), RejectUnknownState)
	}
	res, stepErr := c.sess.Step(ctx, eap, authorize)
	if res.Decided && c.decidedAt.IsZero() {
		c.decidedAt, c.decidedGen = s.now(), res.Decision.Generation
	}
	c.step.Unlock()

	switch {
	case stepErr == nil && res.Outcome == eaptls.Continue && len(res.Reply) > 0:
		return s.challenge(n, p, c, res.Reply, res.Ignored)
	case stepErr == nil && res.Outcome == eaptls.Success:
		return s.accept(ctx, authorize, n, from, p, c, res)
	default:
		return s.fail(ctx, n, from, p, c, eap, res, stepErr)
	}
}

// isTLSData reports an EAP-Response/EAP-TLS carrying TLS octets (not an
// ACK): the ClientHello or a later flight.
func isTLSData(eap []byte) bool {
	return len(eap) > 6 && eap[0] == eaptls.CodeResponse && eap[4] == eaptls.TypeTLS
}

// closeDisplaced ends the conversations create or advance took out, and
// counts them.
func (s *Server) closeDisplaced(d displaced) {
	for _, c := range d.replaced {
		c.close()
		s.metrics.Drop(DropReplaced)
	}
	for _, c := range d.evicted {
		c.close()
		s.metrics.Drop(DropEvicted)
	}
}

// authorizer is the Decider as an eaptls.Authorizer: eaptls calls it from
// the TLS handshake's VerifyConnection once the client chain verified, so
// a device the Decider refuses gets an alert (ErrRejected), never the TLS
// 1.2 Finished / TLS 1.3 success indication; the verdict, allowed or not,
// comes back from Session.Step. inline is the reader answering the packet
// itself (nil: a worker): a decision from memory only computes, but before
// one that reads the store the reader hands its socket to a relief reader,
// so no other NAS waits behind a slow disk. Built once per Server and per
// reader, not per packet: a closure per authentication would allocate.
func (s *Server) authorizer(inline *reader) eaptls.Authorizer[posture.Verdict] {
	return func(ctx context.Context, cs tls.ConnectionState) (posture.Verdict, error) {
		leaf := cs.PeerCertificates[0] // never empty: eaptls verified the chain
		var v posture.Verdict
		cached := false
		if s.cached != nil {
			v, cached = s.cached.DecideCached(leaf)
		}
		if !cached {
			if inline != nil {
				inline.takeOver(ctx)
			}
			// Like every store call made while a NAS waits: ctx is the
			// packet's and ends only with Serve.
			dctx, cancel := context.WithTimeout(ctx, storeTimeout)
			v = s.dec.Decide(dctx, leaf)
			cancel()
		}
		if v.CertSHA256.IsZero() {
			v.CertSHA256 = store.HashCert(leaf)
		}
		if !v.Allow {
			return v, fmt.Errorf("%w: %s", ErrRejected, v.Reason)
		}
		return v, nil
	}
}

func framedMTU(p *packet.Packet) int {
	mtu, ok := p.Uint32(attrFramedMTU)
	if !ok {
		return 0
	}
	if mtu < minFramedMTU || mtu > 65535 {
		return 0 // RFC 3579 §2.4 values below ~100 are nonsense; use the default
	}
	return int(mtu)
}

// failureFor builds an EAP-Failure answering the EAP packet eap
// (RFC 3748 §4.2: Success/Failure reuse the Response's Identifier).
func failureFor(eap []byte) []byte {
	var id uint8
	if len(eap) >= 2 {
		id = eap[1]
	}
	return []byte{eaptls.CodeFailure, id, 0, 4}
}

// challenge sends the next EAP-Request with a fresh State. ignored marks a
// re-sent request answering a stale EAP Identifier: RFC 3579 §2.2 suggests
// Error-Cause 202 "Invalid EAP Packet (Ignored)".
func (s *Server) challenge(n *nas, p *packet.Packet, c *conversation, eap []byte, ignored bool) []byte {
	state, ok := s.convs.rotate(c)
	s.convs.release(s.now(), c)
	if !ok {
		s.finish(c) // replaced or finished meanwhile; closing again is a no-op
		return s.reject(n, p, failureFor(eap), RejectUnknownState)
	}
	attrs := make(lradius.Attributes, 0, 4+len(eap)/maxAttr)
	attrs = p.AppendProxyStates(attrs)
	attrs = packet.AppendEAP(attrs, eap)
	attrs = append(attrs, &lradius.AVP{Type: attrState, Attribute: state[:]})
	if ignored {
		attrs = append(attrs, &lradius.AVP{Type: attrErrorCause, Attribute: lradius.NewInteger(errorCauseInvalidEAP)})
	}
	resp, err := n.sec.EncodeResponse(p, lradius.CodeAccessChallenge, true, attrs)
	if err != nil {
		s.log.Error("encode Access-Challenge", "nas", n.Name, "err", err)
		s.finish(c)
		return s.reject(n, p, nil, RejectInternal)
	}
	s.metrics.Request("access_request", "challenge")
	return resp
}

func (s *Server) finish(c *conversation) {
	live := s.convs.finish(c)
	c.close()
	s.metrics.Conversations(live)
}

// accept builds the Access-Accept: MA first, echoed Proxy-State, EAP-Success,
// MPPE keys (RFC 2548 / RFC 5216 §2.3), and the verdict's authorization.
//
// The handshake's decision ran in VerifyConnection, at least one round
// earlier, and the supplicant controls how long that round takes (up to
// the idle timeout): a revoke or quarantine landing in between would still
// be admitted, and, having no Accounting-Start yet, never disconnected. So
// the decision runs again here, from the caches (microseconds), on the
// certificate the handshake verified, and this fresh verdict is the one
// the Accept carries or the Reject says.
func (s *Server) accept(ctx context.Context, authorize eaptls.Authorizer[posture.Verdict], n *nas, from netip.AddrPort, p *packet.Packet, c *conversation, res eaptls.Result[posture.Verdict]) []byte {
	defer s.finish(c)
	v, success := verdictOf(&res), res.Reply
	msk, _ := c.sess.Keys()
	failure := []byte{eaptls.CodeFailure, eapID(success), 0, 4}
	if v == nil || !v.Allow || len(msk) < 64 || len(success) < 4 || success[0] != eaptls.CodeSuccess {
		// Never an Accept without a positive verdict and keys.
		s.log.Error("EAP success without verdict or keys", "nas", n.Name, "verdict", v != nil, "msk", len(msk))
		return s.decide(ctx, n, from, p, c, nil, failure, RejectInternal, "")
	}
	cs := c.sess.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		s.log.Error("EAP success without the peer's certificate to re-decide on", "nas", n.Name)
		return s.decide(ctx, n, from, p, c, v, failure, RejectInternal, "no certificate at accept")
	}
	fresh, _ := authorize(ctx, cs) // its error is ErrRejected when !fresh.Allow
	if !fresh.Allow {
		note := "standing changed after the handshake decision; refused at accept"
		return s.decide(ctx, n, from, p, c, &fresh, failure, string(fresh.Reason), note)
	}
	v = &fresh
	resp, err := s.buildAccept(n, from, p, v, msk, success)
	if err != nil {
		s.log.Error("encode Access-Accept", "nas", n.Name, "err", err)
		return s.decide(ctx, n, from, p, c, v, failure, RejectInternal, "")
	}
	// Allow with another reason (e.g. device_quarantined + VLAN) is an
	// admission into quarantine: keep the reason in log and audit.
	reason := string(v.Reason)
	if reason == "" {
		reason = string(posture.ReasonOK)
	}
	s.record(ctx, n, from, c, v, nil, reason, "", true)
	s.metrics.Request("access_request", "accept")
	s.metrics.AuthDuration("accept", s.now().Sub(c.started))
	return resp
}

// verdictOf is the Decider's verdict a Step returned, nil if the handshake
// ended before the Decider ran.
func verdictOf(res *eaptls.Result[posture.Verdict]) *posture.Verdict {
	if !res.Decided {
		return nil
	}
	return &res.Decision
}

func eapID(eap []byte) uint8 {
	if len(eap) >= 2 {
		return eap[1]
	}
	return 0
}

func (s *Server) buildAccept(n *nas, from netip.AddrPort, p *packet.Packet, v *posture.Verdict, msk, success []byte) ([]byte, error) {
	// The MPPE keys are encrypted with the secret and the Request
	// Authenticator (RFC 2548 §2.4.2), which layeh reads from the Packet.
	rp := &lradius.Packet{Code: lradius.CodeAccessAccept, Identifier: p.Identifier(), Secret: n.Secret}
	copy(rp.Authenticator[:], p.Authenticator())
	rp.Attributes = p.AppendProxyStates(rp.Attributes)
	rp.Attributes = packet.AppendEAP(rp.Attributes, success)
	if err := addMPPEKeys(rp, msk); err != nil {
		return nil, err
	}
	if v.DeviceID != "" {
		id := v.DeviceID
		if len(id) > maxAttr {
			id = id[:maxAttr]
		}
		rp.Add(attrUserName, lradius.Attribute(id))
	}
	if v.SessionTimeout > 0 {
		secs := uint32(min(v.SessionTimeout/time.Second, 1<<32-1))
		rp.Add(attrSessionTimeout, lradius.NewInteger(max(secs, 1)))
		rp.Add(attrTerminationAction, lradius.NewInteger(terminationRADIUSReq))
	}
	if v.VLAN != "" {
		if len(v.VLAN) > maxTunnelGroupIDBytes {
			return nil, fmt.Errorf("radius: vlan %q too long", v.VLAN)
		}
		// One tag (0) for all three attributes: hostapd groups them by tag.
		rp.Add(attrTunnelType, lradius.NewInteger(tunnelTypeVLAN))
		rp.Add(attrTunnelMediumType, lradius.NewInteger(tunnelMediumIEEE802))
		rp.Add(attrTunnelPrivateGroup, append(lradius.Attribute{0}, v.VLAN...))
	}
	rp.Add(attrClass, s.class.encode(n.Name, from.Addr(), s.now(), v.CertSHA256, v.DeviceID))
	if s.cfg.AcctInterimInterval > 0 {
		rp.Add(attrAcctInterimInterval, lradius.NewInteger(uint32(s.cfg.AcctInterimInterval/time.Second)))
	}
	return n.sec.EncodeResponse(p, lradius.CodeAccessAccept, true, rp.Attributes)
}

// addMPPEKeys adds MS-MPPE-Recv-Key = MSK[0:32] and MS-MPPE-Send-Key =
// MSK[32:64] (RFC 5216 §2.3, RFC 2548 §2.4.2-3), with distinct salts: RFC
// 2548 requires each salt in a packet to be unique and layeh draws them at
// random (a 1/32768 collision), so redraw on a clash.
func addMPPEKeys(rp *lradius.Packet, msk []byte) error {
	if err := microsoft.MSMPPERecvKey_Add(rp, msk[:32]); err != nil {
		return fmt.Errorf("radius: mppe recv key: %w", err)
	}
	recvSalt := append([]byte(nil), mppeSalt(rp.Attributes[len(rp.Attributes)-1].Attribute)...)
	for range 16 {
		if err := microsoft.MSMPPESendKey_Add(rp, msk[32:64]); err != nil {
			return fmt.Errorf("radius: mppe send key: %w", err)
		}
		if !bytes.Equal(mppeSalt(rp.Attributes[len(rp.Attributes)-1].Attribute), recvSalt) {
			return nil
		}
		rp.Attributes = rp.Attributes[:len(rp.Attributes)-1]
	}
	return errors.New("radius: mppe: could not draw distinct salts")
}

// mppeSalt returns the salt of a Microsoft VSA (vendor id 4, type 1, len 1).
func mppeSalt(vsa lradius.Attribute) []byte {
	if len(vsa) < 8 {
		return nil
	}
	return vsa[6:8]
}

// fail handles Step errors and EAP-Failure outcomes.
func (s *Server) fail(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, c *conversation, eap []byte, res eaptls.Result[posture.Verdict], stepErr error) []byte {
	defer s.finish(c)
	reply := res.Reply
	if len(reply) < 4 || reply[0] != eaptls.CodeFailure {
		reply = failureFor(eap)
	}
	v := verdictOf(&res)
	reason := classifyFailure(v, stepErr)
	if stepErr != nil {
		s.log.Info("EAP-TLS failed", "nas", n.Name, "identity", c.sess.Identity(), "err", stepErr)
	}
	return s.decideErr(ctx, n, from, p, c, v, stepErr, reply, reason, "")
}

// decide sends an Access-Reject that ends a conversation, with audit.
func (s *Server) decide(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, c *conversation, v *posture.Verdict, failure []byte, reason, note string) []byte {
	return s.decideErr(ctx, n, from, p, c, v, nil, failure, reason, note)
}

// decideErr is decide with the handshake's error, which may hold the
// certificate a failed chain presented.
func (s *Server) decideErr(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, c *conversation, v *posture.Verdict, stepErr error, failure []byte, reason, note string) []byte {
	s.record(ctx, n, from, c, v, stepErr, reason, note, false)
	s.metrics.AuthDuration("reject", s.now().Sub(c.started))
	return s.reject(n, p, failure, reason)
}

// classifyFailure maps a failed handshake to a bounded reason label: the
// Decider's reason when it refused, else the eaptls sentinel in the Step
// error.
func classifyFailure(v *posture.Verdict, stepErr error) string {
	if v != nil && !v.Allow {
		return string(v.Reason)
	}
	switch {
	case stepErr == nil:
		return RejectEAPFailure
	case errors.Is(stepErr, eaptls.ErrNoClientCert):
		return RejectNoClientCert
	case errors.Is(stepErr, eaptls.ErrCertExpired):
		return RejectCertExpired
	case errors.Is(stepErr, eaptls.ErrUnknownIssuer):
		return RejectUnknownIssuer
	case errors.Is(stepErr, eaptls.ErrNoEMS):
		return RejectNoEMS
	case errors.Is(stepErr, eaptls.ErrNak):
		return RejectNak
	case errors.Is(stepErr, eaptls.ErrTimeout):
		return RejectTimeout
	case errors.Is(stepErr, eaptls.ErrMalformed), errors.Is(stepErr, eaptls.ErrProtocol),
		errors.Is(stepErr, eaptls.ErrTooLarge), errors.Is(stepErr, eaptls.ErrTooManyRounds):
		return RejectEAPProtocol
	}
	return RejectTLSFailed
}

// reject encodes an Access-Reject: MA first, Proxy-State, EAP-Failure if
// this was EAP, Reply-Message only if the client asked for reasons.
func (s *Server) reject(n *nas, p *packet.Packet, failure []byte, reason string) []byte {
	attrs := make(lradius.Attributes, 0, 3)
	attrs = p.AppendProxyStates(attrs)
	attrs = packet.AppendEAP(attrs, failure)
	if n.SendRejectReason {
		attrs = append(attrs, &lradius.AVP{Type: attrReplyMessage, Attribute: lradius.Attribute("rejected: " + reason)})
	}
	resp, err := n.sec.EncodeResponse(p, lradius.CodeAccessReject, true, attrs)
	if err != nil {
		s.log.Error("encode Access-Reject", "nas", n.Name, "err", err)
		return nil
	}
	s.metrics.Request("access_request", "reject")
	s.metrics.Reject(reason)
	return resp
}

// record logs the decision once and appends it to the audit chain. An audit
// failure is logged and counted but does not flip the decision: the network
// must not depend on the audit disk.
func (s *Server) record(ctx context.Context, n *nas, from netip.AddrPort, c *conversation, v *posture.Verdict, stepErr error, reason, note string, ok bool) {
	result := "reject"
	if ok {
		result = "ok"
	}
	cl := claimOf(c, stepErr)
	subject := ""
	if v != nil {
		subject = v.DeviceID
	}
	if subject == "" && cl.device != "" {
		// A refusal names whom it concerns: the device the certificate
		// claims (the Reason says it is claimed, not proven).
		subject = cl.device
	}
	// The attributes cost allocations per decision: build them only when
	// the line is written.
	if s.log.Enabled(ctx, slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String("nas", n.Name), slog.String("from", from.Addr().String()),
			slog.String("result", result), slog.String("reason", reason),
			slog.String("identity", c.sess.Identity()),
			slog.Duration("took", s.now().Sub(c.started)),
		}
		if v != nil {
			attrs = append(attrs, slog.String("device", v.DeviceID))
			if v.VLAN != "" {
				attrs = append(attrs, slog.String("vlan", v.VLAN))
			}
		}
		if !cl.certSHA256.IsZero() {
			attrs = append(attrs, slog.String("cert_sha256", cl.certSHA256.String()[:16]), slog.String("serial", cl.serial))
		}
		if cl.device != "" && (v == nil || v.DeviceID != cl.device) {
			attrs = append(attrs, slog.String("claimed_device", cl.device))
		}
		if cl.station != "" {
			attrs = append(attrs, slog.String("calling_station", cl.station))
		}
		if note != "" {
			attrs = append(attrs, slog.String("note", note))
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "authentication", attrs...)
	}
	ev := &store.AuditEvent{
		V:       store.RecordVersion,
		Time:    s.now().UTC(),
		Actor:   "nas:" + n.Name,
		Action:  "radius.auth",
		Subject: subject,
		Result:  result,
		Reason:  auditReason(reason, c, cl, v, note),
		Source:  from.Addr().String(),
	}
	if !ok && note == "" {
		// Anyone in radio range can make a NAS send rejects: each kind
		// per certificate and station is written once a window, with the
		// count of the rest (the metric counts every one). A refusal at
		// Accept (note) is rare and always written.
		key := reason + "|" + cl.certSHA256.String() + "|" + cl.station + "|" + ev.Source
		s.auditBudgeted(ctx, ev, key)
		return
	}
	actx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	err := s.groups.Append(actx, ev)
	if err != nil {
		s.metrics.AuditError()
		s.log.Error("audit append failed", "nas", n.Name, "err", err)
	}
}
