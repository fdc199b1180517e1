package posture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hardbound/store"
)

// EventKind names a change of standing.
type EventKind string

const (
	EventCompliance    EventKind = "compliance"
	EventQuarantined   EventKind = "quarantined"
	EventReleased      EventKind = "released"
	EventDeviceRevoked EventKind = "device_revoked"
	EventCertRevoked   EventKind = "cert_revoked"
)

// Event is published after a standing change is durable. Events are
// derived from the store's change feed, so a change written by any writer
// of the store is published, whichever wrote it. Device is shared with
// every subscriber: read it, never modify it.
type Event struct {
	Kind       EventKind
	DeviceID   string
	CertSHA256 store.Hash // EventCertRevoked only
	Device     *store.Device
	Source     string
	At         time.Time
	// Policy is set on EventPolicy only: the identity of the profiles the
	// certificate was judged by, the same on every node that loaded the
	// same profiles. At is each node's own clock there, so the
	// Disconnect/CoA enforcer names a policy change by Policy instead
	// (radius/dynauth claimKey).
	Policy store.Hash
}

// ErrInvalid reports a request the Service refuses (bad state value, release
// of a revoked device...).
var ErrInvalid = errors.New("posture: invalid request")

// Subscribe returns a channel of events and a cancel func. A subscriber that
// falls more than buffer events behind loses events (counted and logged):
// the publisher never blocks on a slow consumer.
func (s *Service) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	s.mu.Lock()
	id := s.next
	s.next++
	s.subs[id] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if _, ok := s.subs[id]; ok {
			delete(s.subs, id)
			close(ch)
		}
		s.mu.Unlock()
	}
}

func (s *Service) publish(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- ev:
		default:
			s.metrics.EventDropped()
			s.log.Error("posture event dropped: subscriber too slow", "kind", ev.Kind, "device", ev.DeviceID)
		}
	}
}

func (s *Service) audit(actor, action, subject, result, reason string) *store.AuditEvent {
	return &store.AuditEvent{Time: s.now(), Actor: actor, Action: action, Subject: subject, Result: result, Reason: reason}
}

// SetCompliance records an MDM (or admin) posture report. An event is
// published only when the state changes; a repeated report refreshes
// UpdatedAt.
func (s *Service) SetCompliance(ctx context.Context, deviceID string, state store.Compliance, source, actor string) (*store.Device, error) {
	switch state {
	case store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
	default:
		return nil, fmt.Errorf("%w: compliance state %q", ErrInvalid, state)
	}
	now := s.now()
	d, err := s.st.UpdateDevice(ctx, deviceID, func(d *store.Device) error {
		d.Posture = store.Posture{State: state, Source: source, UpdatedAt: now}
		return nil
	}, s.audit(actor, "posture.set", deviceID, "ok", string(state)))
	if err != nil {
		return nil, fmt.Errorf("posture: set compliance of %q: %w", deviceID, err)
	}
	s.metrics.PostureChange(source, state)
	return d, nil
}

// ResolveDevice maps an MDM identity to a device id. Kind "id" is the id itself.
func (s *Service) ResolveDevice(ctx context.Context, kind, value string) (string, error) {
	if value == "" {
		return "", fmt.Errorf("posture: resolve %s: empty value: %w", kind, store.ErrNotFound)
	}
	if kind == "id" {
		d, err := s.st.GetDevice(ctx, value)
		if err != nil {
			return "", fmt.Errorf("posture: resolve device %q: %w", value, err)
		}
		return d.ID, nil
	}
	d, err := s.st.FindDeviceByAlias(ctx, kind, value)
	if err != nil {
		return "", fmt.Errorf("posture: resolve %s %q: %w", kind, value, err)
	}
	return d.ID, nil
}

// Quarantine sets the device's status to quarantined.
func (s *Service) Quarantine(ctx context.Context, deviceID, actor string) (*store.Device, error) {
	return s.setStatus(ctx, deviceID, store.DeviceQuarantined, "device.quarantine", actor)
}

// Release returns a quarantined device to active. A revoked device stays revoked.
func (s *Service) Release(ctx context.Context, deviceID, actor string) (*store.Device, error) {
	return s.setStatus(ctx, deviceID, store.DeviceActive, "device.release", actor)
}

func (s *Service) setStatus(ctx context.Context, id string, status store.DeviceStatus, action, actor string) (*store.Device, error) {
	d, err := s.st.UpdateDevice(ctx, id, func(d *store.Device) error {
		if d.Status == store.DeviceRevoked {
			return fmt.Errorf("%w: device %q is revoked", ErrInvalid, id)
		}
		d.Status = status
		return nil
	}, s.audit(actor, action, id, "ok", ""))
	if err != nil {
		return nil, fmt.Errorf("posture: %s %q: %w", action, id, err)
	}
	return d, nil
}

// RevokeDevice revokes the device and every certificate of it.
func (s *Service) RevokeDevice(ctx context.Context, deviceID string, reason int, actor string) (*store.Device, []*store.Cert, error) {
	d, certs, err := s.st.RevokeDevice(ctx, deviceID, store.Revocation{At: s.now(), Reason: reason, Actor: actor},
		s.audit(actor, "device.revoke", deviceID, "ok", fmt.Sprintf("crl_reason=%d", reason)))
	if err != nil {
		return nil, nil, fmt.Errorf("posture: revoke device %q: %w", deviceID, err)
	}
	return d, certs, nil
}

// RevokeCert revokes one certificate by serial (lower-case hex).
func (s *Service) RevokeCert(ctx context.Context, serial string, reason int, actor string) (*store.Cert, error) {
	c, err := s.st.GetCertBySerial(ctx, serial)
	if err != nil {
		return nil, fmt.Errorf("posture: revoke cert %s: %w", serial, err)
	}
	c, err = s.st.RevokeCert(ctx, c.SHA256, store.Revocation{At: s.now(), Reason: reason, Actor: actor},
		s.audit(actor, "cert.revoke", serial, "ok", fmt.Sprintf("crl_reason=%d", reason)))
	if err != nil {
		return nil, fmt.Errorf("posture: revoke cert %s: %w", serial, err)
	}
	return c, nil
}

// onChange keeps the caches and the event stream in step with the store.
// The store calls it after each committed change and before the write
// returns, so a Decide issued after any write (through this Service or
// not) never answers from what the write replaced.
func (s *Service) onChange(c store.Change) {
	// After the invalidation below: a decision reading gen >= c.Seq must
	// not find what c replaced (the deferred store runs last).
	defer s.gen.Store(c.Seq)
	s.markChange(c)
	switch c.Kind {
	case store.ChangeReset:
		s.invalidateAll()
		return
	case store.ChangeAttestation:
		s.invalidateDeviceCerts(context.Background(), c.DeviceID)
		return
	}
	// Bindings and devices are cached apart: a device change drops only
	// the device, a binding change only its hash. An issuance's
	// attestation is new, or the key's again (same hardware, same
	// format), so other bindings of the device stay valid.
	if c.Device != nil {
		s.invalidateDevice(c.DeviceID)
	}
	if c.Cert != nil {
		s.invalidateCert(c.CertSHA256)
	}
	for _, b := range c.Certs {
		s.invalidateCert(b.SHA256)
	}
	s.publishChange(c)
}

// publishChange publishes the standing changes c made: a revocation, or a
// device whose status or compliance differs from before. The source is
// the actor, or for compliance the reporting MDM.
func (s *Service) publishChange(c store.Change) {
	switch c.Kind {
	case store.ChangeCertRevoked:
		s.publish(Event{Kind: EventCertRevoked, DeviceID: c.DeviceID, CertSHA256: c.CertSHA256, Source: c.Actor, At: c.At})
		return
	case store.ChangeDeviceRevoked:
		if c.Prev == nil || c.Prev.Status != store.DeviceRevoked {
			// Covers every binding of the device.
			s.publish(Event{Kind: EventDeviceRevoked, DeviceID: c.DeviceID, Device: c.Device, Source: c.Actor, At: c.At})
			return
		}
		for _, b := range c.Certs {
			s.publish(Event{Kind: EventCertRevoked, DeviceID: c.DeviceID, CertSHA256: b.SHA256, Source: c.Actor, At: c.At})
		}
		return
	}
	if c.Prev == nil || c.Device == nil {
		return // created: nothing was admitted under an earlier standing
	}
	if c.Prev.Status != c.Device.Status {
		kind := EventKind("")
		switch c.Device.Status {
		case store.DeviceQuarantined:
			kind = EventQuarantined
		case store.DeviceActive:
			kind = EventReleased
		case store.DeviceRevoked:
			kind = EventDeviceRevoked
		}
		if kind != "" {
			s.publish(Event{Kind: kind, DeviceID: c.DeviceID, Device: c.Device, Source: c.Actor, At: c.At})
		}
	}
	if c.Prev.Posture.State != c.Device.Posture.State {
		s.publish(Event{Kind: EventCompliance, DeviceID: c.DeviceID, Device: c.Device, Source: c.Device.Posture.Source, At: c.At})
	}
}

// Generation is the Seq of the last store change the caches applied
// (Verdict.Generation of a decision starting now).
func (s *Service) Generation() uint64 { return s.gen.Load() }

// Close ends the Service's subscription to its store's changes: its caches
// no longer follow the store, and no more events are published. Call it
// when the Service is dropped while the store lives on.
func (s *Service) Close() { s.stopWatch() }

// invalidateDeviceCerts drops the cached bindings of one device, which carry
// their attestation's format. Attestations are not rewritten in practice,
// so this is rare; if the listing fails every binding is dropped.
func (s *Service) invalidateDeviceCerts(ctx context.Context, deviceID string) {
	if deviceID == "" {
		s.certs.clear()
		return
	}
	var p store.Page
	for {
		certs, next, err := s.st.ListCerts(ctx, store.CertFilter{DeviceID: deviceID, NoDER: true}, p)
		if err != nil {
			s.log.ErrorContext(ctx, "list bindings to invalidate: dropping all", "device", deviceID, "err", err)
			s.certs.clear()
			return
		}
		for _, c := range certs {
			s.invalidateCert(c.SHA256)
		}
		if next == "" {
			return
		}
		p.After = next
	}
}
