package radius

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	lradius "layeh.com/radius"

	"hardbound/radius/packet"
	"hardbound/store"
)

// Acct-Status-Type values (RFC 2866 §5.1).
const (
	acctStart         = 1
	acctStop          = 2
	acctInterimUpdate = 3
	acctOn            = 7
	acctOff           = 8
)

// terminateNASReboot is Acct-Terminate-Cause NAS-Reboot (RFC 2866 §5.10),
// recorded on the sessions an Accounting-On/Off closes unless the packet
// names its own cause (FreeRADIUS's default for the same case).
const terminateNASReboot = 11

func acctStatusName(v uint32) string {
	switch v {
	case acctStart:
		return "start"
	case acctStop:
		return "stop"
	case acctInterimUpdate:
		return "interim_update"
	case acctOn:
		return "accounting_on"
	case acctOff:
		return "accounting_off"
	default:
		return "other"
	}
}

func stringAttr(p *packet.Packet, typ lradius.Type) string {
	v, _ := p.Lookup(typ)
	return string(v)
}

func ipAttr(p *packet.Packet, typ lradius.Type) string {
	v, ok := p.Lookup(typ)
	if !ok || len(v) != 4 {
		return ""
	}
	return netip.AddrFrom4([4]byte(v)).String()
}

// accounting handles an authentic, non-duplicate Accounting-Request. The
// Accounting-Response goes out only after the store write succeeded; on a
// store error there is no answer and the NAS retransmits (RFC 2866 §2).
func (s *Server) accounting(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet) []byte {
	const kind = "accounting_request"
	status, ok := p.Uint32(attrAcctStatusType)
	if !ok {
		s.drop(n, kind, DropMalformed)
		return nil
	}
	name := acctStatusName(status)
	result := "ok"
	switch status {
	case acctStart, acctStop, acctInterimUpdate:
		var err error
		result, err = s.recordSession(ctx, n, from, p, status)
		if errors.Is(err, ErrMalformed) {
			s.drop(n, kind, DropMalformed)
			return nil
		}
		if err != nil {
			s.metrics.Accounting(name, "store_error")
			s.drop(n, kind, DropStoreError)
			s.log.Error("accounting write failed; NAS will retransmit", "nas", n.Name, "status", name, "err", err)
			return nil
		}
	case acctOn, acctOff:
		var err error
		if result, err = s.closeNASSessions(ctx, n, from, p, name); err != nil {
			s.metrics.Accounting(name, "store_error")
			s.drop(n, kind, DropStoreError)
			s.log.Error("closing the NAS's sessions failed; NAS will retransmit", "nas", n.Name, "status", name, "err", err)
			return nil
		}
	}
	s.metrics.Accounting(name, result)
	resp, err := n.sec.EncodeResponse(p, lradius.CodeAccountingResponse, false, p.AppendProxyStates(nil))
	if err != nil {
		s.drop(n, kind, DropInternal)
		return nil
	}
	s.metrics.Request(kind, "response")
	return resp
}

// eventTime is when the NAS says the event happened: Event-Timestamp, else
// now minus Acct-Delay-Time.
func (s *Server) eventTime(p *packet.Packet) time.Time {
	now := s.now().UTC()
	if ts, ok := p.Uint32(attrEventTimestamp); ok && ts != 0 {
		return time.Unix(int64(ts), 0).UTC()
	}
	if d, ok := p.Uint32(attrAcctDelayTime); ok {
		return now.Add(-time.Duration(d) * time.Second)
	}
	return now
}

// nasIPAttr is NAS-IP-Address, else NAS-IPv6-Address, as text.
func nasIPAttr(p *packet.Packet) string {
	if v := ipAttr(p, attrNASIPAddress); v != "" {
		return v
	}
	if v, ok := p.Lookup(attrNASIPv6Address); ok && len(v) == 16 {
		return netip.AddrFrom16([16]byte(v)).String()
	}
	return ""
}

// scopeOf is the NAS a packet comes from: its client, its source address
// and the identity it reports. A client is often a prefix holding a whole
// building's switches, or a proxy speaking for many NASes: the source
// address and NAS-IP-Address / NAS-Identifier tell them apart.
func scopeOf(n *nas, from netip.AddrPort, p *packet.Packet) store.NASScope {
	return store.NASScope{
		NAS:           n.Name,
		Addr:          from.Addr().Unmap().String(),
		NASIPAddress:  nasIPAttr(p),
		NASIdentifier: stringAttr(p, attrNASIdentifier),
	}
}

// On/Off refusals (the result label of Metrics.Accounting).
const (
	onOffNoTimestamp = "refused_no_timestamp"
	onOffStale       = "refused_stale"
	onOffFuture      = "refused_future"
)

// onOffAge bounds how old an Accounting-On/Off's Event-Timestamp may be (a
// NAS retransmits its Accounting-On while the server is unreachable, with
// the time of its boot), onOffSkew how far ahead of our clock (RFC 5176
// §3.5 suggests a 300 s window for Event-Timestamp).
const (
	onOffAge  = time.Hour
	onOffSkew = 300 * time.Second
)

// onOffCheck decides whether an Accounting-On/Off may close sessions:
// "" when it may, else the refusal. It must carry Event-Timestamp (unless
// the client allows otherwise), within onOffAge of now, and later than the
// last On/Off applied for the same NAS: a replayed or reordered one closes
// nothing. (A replay is harmless anyway for sessions started after its
// time, which are never closed; the order check keeps it from closing
// again sessions an Interim-Update reopened.) Without a timestamp a replay could not be told from a reboot,
// and closing every session of a NAS switches enforcement off for it.
func (s *Server) onOffCheck(n *nas, scope store.NASScope, p *packet.Packet) (time.Time, string) {
	now := s.now()
	ts, ok := p.Uint32(attrEventTimestamp)
	if !ok || ts == 0 {
		if !n.OnOffWithoutTimestamp {
			return time.Time{}, onOffNoTimestamp
		}
		return s.eventTime(p), ""
	}
	at := time.Unix(int64(ts), 0).UTC()
	switch {
	case at.After(now.Add(onOffSkew)):
		return at, onOffFuture
	case now.Sub(at) > onOffAge:
		return at, onOffStale
	}
	if !s.onoff.advance(scope, at, now) {
		return at, onOffStale
	}
	return at, ""
}

// closeNASSessions handles Accounting-On/Off (RFC 2866 §5.1): the NAS
// (re)started or stops accounting, so every session IT had open is gone.
// Closing them keeps Disconnect/CoA from being aimed at sessions that no
// longer exist; closing anyone else's would switch enforcement off for
// them, so the scope is the sending NAS (scopeOf), never the whole client.
// The stop time is the event time on the same clock as the NAS's Start
// records, so a session it started after the reboot (its Start overtook a
// retransmitted Accounting-On) stays open, and a session it reports again
// (Interim-Update) reopens. It returns the metric result.
func (s *Server) closeNASSessions(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, name string) (string, error) {
	scope := scopeOf(n, from, p)
	at, refused := s.onOffCheck(n, scope, p)
	if refused != "" {
		s.refusals.log(s.log, "NAS accounting on/off refused: closes nothing", "nas", n.Name, "from", scope.Addr,
			"nas_ip", scope.NASIPAddress, "nas_identifier", scope.NASIdentifier, "status", name, "cause", refused, "event_time", at)
		s.auditBudgeted(ctx, &store.AuditEvent{
			V: store.RecordVersion, Time: s.now().UTC(), Actor: "nas:" + n.Name, Action: "radius." + name,
			Subject: n.Name, Result: "reject", Source: scope.Addr,
			Reason: refused + " " + scopeReason(scope) + eventTimeReason(at),
		}, refused+"|"+scope.Addr)
		return refused, nil
	}
	cause := uint32(terminateNASReboot)
	if v, ok := p.Uint32(attrAcctTerminateCause); ok {
		cause = v
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	closed, err := s.sessions.CloseNASSessions(sctx, scope, at, cause)
	if err != nil {
		s.onoff.forget(scope, at) // the retransmission must be applied
		return "", fmt.Errorf("radius: close sessions of NAS %s: %w", n.Name, err)
	}
	s.log.Info("NAS accounting on/off: closed its open sessions", "nas", n.Name, "from", scope.Addr,
		"nas_ip", scope.NASIPAddress, "nas_identifier", scope.NASIdentifier, "status", name, "closed", closed, "at", at)
	// Its own deadline: a long close must not leave the audit no time.
	actx, acancel := context.WithTimeout(ctx, storeTimeout)
	defer acancel()
	err = s.audit.AppendAudit(actx, &store.AuditEvent{
		V:       store.RecordVersion,
		Time:    s.now().UTC(),
		Actor:   "nas:" + n.Name,
		Action:  "radius." + name,
		Subject: n.Name,
		Result:  "ok",
		Reason:  fmt.Sprintf("closed %d sessions %s%s", closed, scopeReason(scope), eventTimeReason(at)),
		Source:  scope.Addr,
	})
	if err != nil {
		// The sessions are closed; the NAS gets its answer regardless.
		s.metrics.AuditError()
		s.log.Error("audit append failed", "nas", n.Name, "err", err)
	}
	return "ok", nil
}

func scopeReason(sc store.NASScope) string {
	r := "from=" + auditValue(sc.Addr)
	if sc.NASIPAddress != "" {
		r += " nas_ip=" + auditValue(sc.NASIPAddress)
	}
	if sc.NASIdentifier != "" {
		r += " nas_identifier=" + auditValue(sc.NASIdentifier)
	}
	return r
}

func eventTimeReason(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return " event_time=" + at.UTC().Format(time.RFC3339)
}

// Class outcomes (the result label of Metrics.Accounting).
const (
	acctNoClass  = "no_class"
	acctBadClass = "bad_class"
	acctReopened = "reopened"
)

// recordSession creates, updates or closes the store.Session keyed by
// (NAS name, Acct-Session-Id). Writes are idempotent: a retransmitted
// packet rewrites the same values. It returns the metric result.
//
// Only a Class that verifies (class.go: issued by us, to this NAS client,
// for a request from this address) maps the session to a device: a NAS
// cannot claim another's devices, and so Disconnect/CoA, which goes to the
// NASes holding a device's sessions, goes only where the server admitted
// it.
func (s *Server) recordSession(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, status uint32) (string, error) {
	id := stringAttr(p, attrAcctSessionID)
	if id == "" {
		return "", fmt.Errorf("%w: accounting without Acct-Session-Id", ErrMalformed)
	}
	at := s.eventTime(p)

	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	cur, err := s.sessions.GetSession(sctx, n.Name, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cur = nil
	case err != nil:
		return "", fmt.Errorf("radius: get session: %w", err)
	}

	result := "ok"
	if cur != nil && !cur.Live() {
		switch {
		case status == acctStart && at.After(cur.StoppedAt):
			cur = nil // the NAS reused the id for a new session
		case status == acctInterimUpdate && cur.ClosedByOnOff && at.After(cur.StoppedAt):
			// An Accounting-On/Off closed it, and the NAS says it lives:
			// reopen, or Disconnect/CoA would never reach it again.
			cur.StoppedAt, cur.TerminateCause, cur.ClosedByOnOff = time.Time{}, 0, false
			result = acctReopened
		case status != acctStop:
			return "ok", nil // late Start/Interim for a closed session: ack, keep it closed
		}
	}
	sess := cur
	if sess == nil {
		sess = &store.Session{NAS: n.Name, AcctSessionID: id, StartedAt: at}
	}
	sess.V = store.RecordVersion
	sess.NASAddr = from.Addr().Unmap().String()

	var admitted time.Time
	if cls, ok := p.Lookup(attrClass); ok {
		tok, err := s.class.decode(cls, n.Name, from.Addr(), s.resolver(sctx))
		switch {
		case err == nil && (sess.DeviceID == "" || sess.DeviceID == tok.deviceID):
			sess.CertSHA256, sess.DeviceID = tok.cert, tok.deviceID
			admitted = tok.issued
		case err == nil:
			// A session id the NAS reused for another device: the record
			// keeps the device it was admitted for.
			result = acctBadClass
		default:
			if result == "ok" {
				result = acctBadClass
			}
			s.refuseClass(ctx, n, from, p, id, cls, err)
		}
	} else if sess.DeviceID == "" {
		result = acctNoClass
	}
	if v := stringAttr(p, attrUserName); v != "" {
		sess.UserName = v
	}
	if v := stringAttr(p, attrCallingStationID); v != "" {
		sess.CallingStationID = v
	}
	if v := stringAttr(p, attrCalledStationID); v != "" {
		sess.CalledStationID = v
	}
	if v := stringAttr(p, attrNASIdentifier); v != "" {
		sess.NASIdentifier = v
	}
	if v := nasIPAttr(p); v != "" {
		sess.NASIPAddress = v
	}
	if v, ok := p.Uint32(attrNASPort); ok {
		sess.NASPort = v
	}
	if v := ipAttr(p, attrFramedIPAddress); v != "" {
		sess.FramedIP = v
	}
	if status != acctStart {
		in, okIn := p.Uint32(attrAcctInputOctets)
		inG, _ := p.Uint32(attrAcctInputGigawords)
		out, okOut := p.Uint32(attrAcctOutputOctets)
		outG, _ := p.Uint32(attrAcctOutputGigawords)
		if okIn {
			sess.InputOctets = uint64(inG)<<32 | uint64(in)
		}
		if okOut {
			sess.OutputOctets = uint64(outG)<<32 | uint64(out)
		}
	}
	sess.UpdatedAt = at
	if status == acctStop {
		sess.StoppedAt = at
		sess.ClosedByOnOff = false
		if v, ok := p.Uint32(attrAcctTerminateCause); ok {
			sess.TerminateCause = v
		}
	}
	if err := s.sessions.PutSession(sctx, sess); err != nil {
		return "", fmt.Errorf("radius: put session: %w", err)
	}
	if !admitted.IsZero() && sess.Live() && s.starts != nil {
		// Standing may have changed between the Accept and this record,
		// when no enforcer could see the session: let it look again.
		s.starts.SessionStarted(ctx, sess, admitted)
	}
	return result, nil
}

// resolver finds the device of a Class that left a long id out.
func (s *Server) resolver(ctx context.Context) func(store.Hash) (string, error) {
	if s.bindings == nil {
		return nil
	}
	return func(h store.Hash) (string, error) {
		c, err := s.bindings.GetCertBinding(ctx, h)
		if err != nil {
			return "", err
		}
		return c.DeviceID, nil
	}
}

// refuseClass logs (rate-limited) and audits (budgeted) a Class that does
// not verify, naming what it claimed: a forged or replayed Class is how a
// NAS would make itself the target of another's devices.
func (s *Server) refuseClass(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, acctID string, cls []byte, err error) {
	claimed := ""
	if len(cls) > classHeader && string(cls[:len(classMagic)]) == classMagic {
		claimed = string(cls[classHeader:])
	}
	addr := from.Addr().Unmap().String()
	s.refusals.log(s.log, "accounting Class refused: not recorded as the device's session", "nas", n.Name, "from", addr,
		"acct_session_id", acctID, "claimed_device", claimed, "err", err)
	reason := acctBadClass + " from=" + auditValue(addr) + " acct_session_id=" + auditValue(acctID)
	if claimed != "" {
		reason += " claimed_device=" + auditValue(claimed)
	}
	if v := stringAttr(p, attrCallingStationID); v != "" {
		reason += " calling_station=" + auditValue(v)
	}
	s.auditBudgeted(ctx, &store.AuditEvent{
		V: store.RecordVersion, Time: s.now().UTC(), Actor: "nas:" + n.Name, Action: "radius.accounting",
		Subject: claimed, Result: "reject", Reason: reason, Source: addr,
	}, acctBadClass+"|"+addr)
}
