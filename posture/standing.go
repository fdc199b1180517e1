package posture

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Event is published after a standing change is durable.
type Event struct {
	Kind       EventKind
	DeviceID   string
	CertSHA256 store.Hash // EventCertRevoked only
	Device     *store.Device
	Source     string
	At         time.Time
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

// SetCompliance records an MDM (or admin) posture report. It publishes an
// event only when the state changes; a repeated report refreshes UpdatedAt.
func (s *Service) SetCompliance(ctx context.Context, deviceID string, state store.Compliance, source, actor string) (*store.Device, error) {
	switch state {
	case store.ComplianceCompliant, store.ComplianceNoncompliant, store.ComplianceUnknown:
	default:
		return nil, fmt.Errorf("%w: compliance state %q", ErrInvalid, state)
	}
	var prev store.Compliance
	now := s.now()
	d, err := s.st.UpdateDevice(ctx, deviceID, func(d *store.Device) error {
		prev = d.Posture.State
		d.Posture = store.Posture{State: state, Source: source, UpdatedAt: now}
		return nil
	}, s.audit(actor, "posture.set", deviceID, "ok", string(state)))
	s.invalidateDevice(deviceID)
	if err != nil {
		return nil, fmt.Errorf("posture: set compliance of %q: %w", deviceID, err)
	}
	s.metrics.PostureChange(source, state)
	if prev != state {
		s.publish(Event{Kind: EventCompliance, DeviceID: deviceID, Device: d, Source: source, At: now})
	}
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
	return s.setStatus(ctx, deviceID, store.DeviceQuarantined, "device.quarantine", actor, EventQuarantined)
}

// Release returns a quarantined device to active. A revoked device stays revoked.
func (s *Service) Release(ctx context.Context, deviceID, actor string) (*store.Device, error) {
	return s.setStatus(ctx, deviceID, store.DeviceActive, "device.release", actor, EventReleased)
}

func (s *Service) setStatus(ctx context.Context, id string, status store.DeviceStatus, action, actor string, kind EventKind) (*store.Device, error) {
	now := s.now()
	d, err := s.st.UpdateDevice(ctx, id, func(d *store.Device) error {
		if d.Status == store.DeviceRevoked {
			return fmt.Errorf("%w: device %q is revoked", ErrInvalid, id)
		}
		d.Status = status
		return nil
	}, s.audit(actor, action, id, "ok", ""))
	s.invalidateDevice(id)
	if err != nil {
		return nil, fmt.Errorf("posture: %s %q: %w", action, id, err)
	}
	s.publish(Event{Kind: kind, DeviceID: id, Device: d, Source: actor, At: now})
	return d, nil
}

// RevokeDevice revokes the device and every certificate of it.
func (s *Service) RevokeDevice(ctx context.Context, deviceID string, reason int, actor string) (*store.Device, []*store.Cert, error) {
	now := s.now()
	d, certs, err := s.st.RevokeDevice(ctx, deviceID, store.Revocation{At: now, Reason: reason, Actor: actor},
		s.audit(actor, "device.revoke", deviceID, "ok", fmt.Sprintf("crl_reason=%d", reason)))
	s.invalidateDevice(deviceID)
	for _, c := range certs {
		s.invalidateCert(c.SHA256)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("posture: revoke device %q: %w", deviceID, err)
	}
	s.publish(Event{Kind: EventDeviceRevoked, DeviceID: deviceID, Device: d, Source: actor, At: now})
	return d, certs, nil
}

// RevokeCert revokes one certificate by serial (lower-case hex).
func (s *Service) RevokeCert(ctx context.Context, serial string, reason int, actor string) (*store.Cert, error) {
	c, err := s.st.GetCertBySerial(ctx, serial)
	if err != nil {
		return nil, fmt.Errorf("posture: revoke cert %s: %w", serial, err)
	}
	now := s.now()
	c, err = s.st.RevokeCert(ctx, c.SHA256, store.Revocation{At: now, Reason: reason, Actor: actor},
		s.audit(actor, "cert.revoke", serial, "ok", fmt.Sprintf("crl_reason=%d", reason)))
	if c != nil {
		s.invalidateCert(c.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("posture: revoke cert %s: %w", serial, err)
	}
	s.publish(Event{Kind: EventCertRevoked, DeviceID: c.DeviceID, CertSHA256: c.SHA256, Source: actor, At: now})
	return c, nil
}

// Store returns st wrapped so that every write through it invalidates this
// Service's cache. Give it to every other writer (enrollment, admin).
func (s *Service) Store() store.Store { return &invalidating{Store: s.st, s: s} }

type invalidating struct {
	store.Store
	s *Service
}

func (w *invalidating) PutDevice(ctx context.Context, d *store.Device) error {
	err := w.Store.PutDevice(ctx, d)
	w.s.invalidateDevice(d.ID)
	return err
}

func (w *invalidating) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, ev *store.AuditEvent) (*store.Device, error) {
	d, err := w.Store.UpdateDevice(ctx, id, fn, ev)
	w.s.invalidateDevice(id)
	return d, err
}

func (w *invalidating) RecordIssuance(ctx context.Context, is store.Issuance) error {
	err := w.Store.RecordIssuance(ctx, is)
	if is.Device != nil {
		w.s.invalidateDevice(is.Device.ID)
	}
	// The new binding carries its attestation's format when it is next
	// cached; an attestation recorded again for the same key keeps its
	// format (the key's hardware), so other bindings stay valid.
	if is.Cert != nil {
		w.s.invalidateCert(is.Cert.SHA256)
	}
	return err
}

func (w *invalidating) RevokeCert(ctx context.Context, sha store.Hash, r store.Revocation, ev *store.AuditEvent) (*store.Cert, error) {
	c, err := w.Store.RevokeCert(ctx, sha, r, ev)
	w.s.invalidateCert(sha)
	return c, err
}

func (w *invalidating) RevokeDevice(ctx context.Context, id string, r store.Revocation, ev *store.AuditEvent) (*store.Device, []*store.Cert, error) {
	d, certs, err := w.Store.RevokeDevice(ctx, id, r, ev)
	w.s.invalidateDevice(id)
	for _, c := range certs {
		w.s.invalidateCert(c.SHA256)
	}
	return d, certs, err
}

func (w *invalidating) PutAttestation(ctx context.Context, a *store.Attestation) error {
	err := w.Store.PutAttestation(ctx, a)
	w.s.invalidateDeviceCerts(ctx, a.DeviceID)
	return err
}

func (w *invalidating) Restore(ctx context.Context, r io.Reader) error {
	err := w.Store.Restore(ctx, r)
	w.s.invalidateAll()
	return err
}

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
		certs, next, err := s.st.ListCerts(ctx, store.CertFilter{DeviceID: deviceID}, p)
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
