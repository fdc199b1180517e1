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
		if err := s.closeNASSessions(ctx, n, from, p, name); err != nil {
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

// closeNASSessions handles Accounting-On/Off (RFC 2866 §5.1): the NAS
// (re)started or stops accounting, so every session it had open is gone.
// Closing them keeps Disconnect/CoA from being aimed at sessions that no
// longer exist. The stop time is the event time on the same clock as the
// NAS's Start records, so a session it started after the reboot (its Start
// overtook a retransmitted Accounting-On) stays open. A retransmission
// closes nothing more and is audited again with its own count.
func (s *Server) closeNASSessions(ctx context.Context, n *nas, from netip.AddrPort, p *packet.Packet, name string) error {
	at := s.eventTime(p)
	cause := uint32(terminateNASReboot)
	if v, ok := p.Uint32(attrAcctTerminateCause); ok {
		cause = v
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	closed, err := s.sessions.CloseNASSessions(sctx, n.Name, at, cause)
	if err != nil {
		return fmt.Errorf("radius: close sessions of NAS %s: %w", n.Name, err)
	}
	s.log.Info("NAS accounting on/off: closed its open sessions", "nas", n.Name, "status", name, "closed", closed, "at", at)
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
		Reason:  fmt.Sprintf("closed %d sessions", closed),
		Source:  from.Addr().Unmap().String(),
	})
	if err != nil {
		// The sessions are closed; the NAS gets its answer regardless.
		s.metrics.AuditError()
		s.log.Error("audit append failed", "nas", n.Name, "err", err)
	}
	return nil
}

// recordSession creates, updates or closes the store.Session keyed by
// (NAS name, Acct-Session-Id). Writes are idempotent: a retransmitted
// packet rewrites the same values. It returns the metric result.
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

	if cur != nil && !cur.Live() {
		switch {
		case status == acctStart && at.After(cur.StoppedAt):
			cur = nil // the NAS reused the id for a new session
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

	result := "ok"
	if cls, ok := p.Lookup(attrClass); ok {
		if h, dev, err := parseClass(cls); err == nil {
			sess.CertSHA256, sess.DeviceID = h, dev
		} else if sess.DeviceID == "" {
			result = "bad_class"
		}
	} else if sess.DeviceID == "" {
		result = "no_class"
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
	if v := ipAttr(p, attrNASIPAddress); v != "" {
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
		if v, ok := p.Uint32(attrAcctTerminateCause); ok {
			sess.TerminateCause = v
		}
	}
	if err := s.sessions.PutSession(sctx, sess); err != nil {
		return "", fmt.Errorf("radius: put session: %w", err)
	}
	return result, nil
}
