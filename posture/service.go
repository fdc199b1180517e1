package posture

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"hardbound/store"
)

// Action is what a profile does with a device whose posture is not good.
type Action string

const (
	ActionReject     Action = "reject"
	ActionQuarantine Action = "quarantine"
)

// FormatNone in Profile.Formats admits certificates without hardware
// attestation. WARNING: it reopens the "key in a file" gap; use only for
// migration profiles.
const FormatNone = "none"

// Profile is the authorization policy of a group of devices.
type Profile struct {
	Name string
	// Formats lists the attestation formats admitted ("apple", "tpm",
	// "android-key"; "none" admits unattested bindings). Empty means every
	// hardware format.
	Formats []string
	// MaxAge is how old an MDM posture report may be. Zero means the profile
	// does not require posture: only an explicit noncompliant report acts.
	MaxAge time.Duration
	// Noncompliant is applied to noncompliant devices; Unknown to unknown or
	// stale posture. Quarantine needs QuarantineVLAN, else it rejects.
	Noncompliant   Action
	Unknown        Action
	QuarantineVLAN string
	// VLAN is assigned to admitted devices in good standing (optional).
	VLAN string
	// SessionTimeout caps Session-Timeout (zero: only cert life and posture age cap it).
	SessionTimeout time.Duration
}

// HardwareFormats are the attestation formats hardbound verifies.
var HardwareFormats = []string{"apple", "tpm", "android-key"}

func (p *Profile) allows(format string, attested bool) Reason {
	if !attested {
		if slices.Contains(p.Formats, FormatNone) {
			return ReasonOK
		}
		return ReasonUnattested
	}
	formats := p.Formats
	if len(formats) == 0 {
		formats = HardwareFormats
	}
	if slices.Contains(formats, format) {
		return ReasonOK
	}
	return ReasonAttestationNotAllowed
}

// Metrics receives decision outcomes and standing changes.
type Metrics interface {
	Decision(reason Reason, allow bool)
	PostureChange(source string, state store.Compliance)
	CacheLookup(hit bool)
	EventDropped()
}

type nopMetrics struct{}

func (nopMetrics) Decision(Reason, bool)                  {}
func (nopMetrics) PostureChange(string, store.Compliance) {}
func (nopMetrics) CacheLookup(bool)                       {}
func (nopMetrics) EventDropped()                          {}

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger (component=posture is added).
func WithLogger(l *slog.Logger) Option {
	return func(s *Service) { s.log = l.With("component", "posture") }
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithMetrics sets the metrics sink.
func WithMetrics(m Metrics) Option { return func(s *Service) { s.metrics = m } }

// WithCacheSize bounds the number of cached bindings and devices (each).
func WithCacheSize(n int) Option { return func(s *Service) { s.cacheSize = n } }

// DefaultProfile is used for bindings whose profile is not configured.
const DefaultProfile = "default"

// Service holds device standing and makes the authorization decision.
// Reads are cached; every write that goes through the Service, or through
// the store returned by Store, invalidates what it touches.
type Service struct {
	st        store.Store
	profiles  map[string]*Profile
	log       *slog.Logger
	now       func() time.Time
	metrics   Metrics
	cacheSize int

	certs   *cache[store.Hash, certEntry]
	devices *cache[string, *store.Device]
	atts    *cache[string, *store.Attestation]

	mu   sync.Mutex
	subs map[int]chan Event
	next int
}

type certEntry struct {
	cert *store.Cert // nil: known absent
}

// New builds a Service over st. profiles must include "default" or one is
// added with the strict defaults.
func New(st store.Store, profiles []Profile, opts ...Option) (*Service, error) {
	s := &Service{
		st:        st,
		profiles:  map[string]*Profile{},
		log:       slog.New(slog.DiscardHandler),
		now:       time.Now,
		metrics:   nopMetrics{},
		cacheSize: 1 << 18,
		subs:      map[int]chan Event{},
	}
	for _, o := range opts {
		o(s)
	}
	for i := range profiles {
		p := profiles[i]
		if p.Name == "" {
			return nil, fmt.Errorf("posture: profiles[%d]: name is empty", i)
		}
		if _, dup := s.profiles[p.Name]; dup {
			return nil, fmt.Errorf("posture: profiles[%d]: duplicate name %q", i, p.Name)
		}
		if p.Noncompliant == "" {
			p.Noncompliant = ActionReject
		}
		if p.Unknown == "" {
			p.Unknown = ActionReject
		}
		for _, a := range []Action{p.Noncompliant, p.Unknown} {
			if a != ActionReject && a != ActionQuarantine {
				return nil, fmt.Errorf("posture: profile %q: unknown action %q", p.Name, a)
			}
		}
		if slices.Contains(p.Formats, FormatNone) {
			s.log.Warn("WARNING: profile admits unattested certificates", "profile", p.Name)
		}
		s.profiles[p.Name] = &p
	}
	if _, ok := s.profiles[DefaultProfile]; !ok {
		s.profiles[DefaultProfile] = &Profile{Name: DefaultProfile, Noncompliant: ActionReject, Unknown: ActionReject}
	}
	s.certs = newCache[store.Hash, certEntry](s.cacheSize)
	s.devices = newCache[string, *store.Device](s.cacheSize)
	s.atts = newCache[string, *store.Attestation](s.cacheSize)
	return s, nil
}

// Profile returns the named profile, or the default one.
func (s *Service) Profile(name string) *Profile {
	if p, ok := s.profiles[name]; ok {
		return p
	}
	return s.profiles[DefaultProfile]
}

// Decide says whether leaf may authenticate now. The caller must already have
// verified leaf's chain to the issuing CA; Decide looks the binding up by
// store.HashCert(leaf). Every reason but ok is final for this certificate
// until an admin or MDM changes the device's standing; posture_stale and
// posture_unknown clear when the MDM reports again. A store error other than
// not-found yields unknown_cert (fail closed) and is logged.
func (s *Service) Decide(ctx context.Context, leaf *x509.Certificate) Verdict {
	v := s.decide(ctx, leaf)
	s.metrics.Decision(v.Reason, v.Allow)
	return v
}

func (s *Service) decide(ctx context.Context, leaf *x509.Certificate) Verdict {
	now := s.now()
	sha := store.HashCert(leaf)
	v := Verdict{CertSHA256: sha, Reason: ReasonUnknownCert}
	c, err := s.cert(ctx, sha)
	if err != nil {
		return v
	}
	v.DeviceID = c.DeviceID
	v.Profile = c.Profile
	p := s.Profile(c.Profile)
	d, err := s.device(ctx, c.DeviceID)
	if err != nil {
		return v
	}
	// A revoked device is reported as such even though its certs were
	// revoked with it: the operator wants the cause, not the mechanism.
	if d.Status == store.DeviceRevoked {
		v.Reason = ReasonDeviceRevoked
		return v
	}
	if c.Revoked != nil {
		v.Reason = ReasonCertRevoked
		return v
	}
	if now.After(c.NotAfter) || now.After(leaf.NotAfter) || now.Before(c.NotBefore) {
		v.Reason = ReasonCertExpired
		return v
	}
	format := ""
	if c.Attested && c.AttestationID != "" {
		a, err := s.attestation(ctx, c.AttestationID)
		if err != nil {
			v.Reason = ReasonUnattested
			return v
		}
		format = a.Format
	}
	if r := p.allows(format, c.Attested); r != ReasonOK {
		v.Reason = r
		return v
	}
	if d.Status == store.DeviceQuarantined {
		v.Reason = ReasonDeviceQuarantined
		return s.apply(v, p, ActionQuarantine, now, c, d)
	}
	switch {
	case d.Posture.State == store.ComplianceNoncompliant:
		v.Reason = ReasonNoncompliant
		return s.apply(v, p, p.Noncompliant, now, c, d)
	case p.MaxAge > 0 && (d.Posture.State != store.ComplianceCompliant || d.Posture.UpdatedAt.IsZero()):
		v.Reason = ReasonPostureUnknown
		return s.apply(v, p, p.Unknown, now, c, d)
	case p.MaxAge > 0 && now.Sub(d.Posture.UpdatedAt) > p.MaxAge:
		v.Reason = ReasonPostureStale
		return s.apply(v, p, p.Unknown, now, c, d)
	}
	v.Reason = ReasonOK
	v.Allow = true
	v.VLAN = p.VLAN
	v.SessionTimeout = s.sessionTimeout(p, now, c, d)
	return v
}

// apply turns a bad standing into a reject, or into admission to the
// quarantine VLAN when the action says so and the profile has one.
func (s *Service) apply(v Verdict, p *Profile, a Action, now time.Time, c *store.Cert, d *store.Device) Verdict {
	if a != ActionQuarantine || p.QuarantineVLAN == "" {
		return v
	}
	v.Allow = true
	v.VLAN = p.QuarantineVLAN
	v.SessionTimeout = s.sessionTimeout(p, now, c, d)
	return v
}

func (s *Service) sessionTimeout(p *Profile, now time.Time, c *store.Cert, d *store.Device) time.Duration {
	t := c.NotAfter.Sub(now)
	if p.SessionTimeout > 0 && p.SessionTimeout < t {
		t = p.SessionTimeout
	}
	if p.MaxAge > 0 && !d.Posture.UpdatedAt.IsZero() {
		if left := p.MaxAge - now.Sub(d.Posture.UpdatedAt); left < t {
			t = left
		}
	}
	if t < time.Second {
		t = time.Second
	}
	return t.Truncate(time.Second)
}

func (s *Service) cert(ctx context.Context, sha store.Hash) (*store.Cert, error) {
	e, gen, ok := s.certs.get(sha)
	if ok {
		s.metrics.CacheLookup(true)
		if e.cert == nil {
			return nil, store.ErrNotFound
		}
		return e.cert, nil
	}
	s.metrics.CacheLookup(false)
	c, err := s.st.GetCert(ctx, sha)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A binding is written before its cert is handed out, so an unknown
		// hash stays unknown: caching the miss is safe and stops a flood of
		// foreign-but-chaining certs from reaching disk.
		s.certs.put(sha, certEntry{}, gen)
		return nil, err
	case err != nil:
		s.log.ErrorContext(ctx, "read binding", "err", err)
		return nil, err
	}
	c.DER = nil // not needed on the hot path; keep the cache small
	s.certs.put(sha, certEntry{cert: c}, gen)
	return c, nil
}

func (s *Service) device(ctx context.Context, id string) (*store.Device, error) {
	d, gen, ok := s.devices.get(id)
	if ok {
		return d, nil
	}
	d, err := s.st.GetDevice(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(ctx, "read device", "device", id, "err", err)
		}
		return nil, err
	}
	s.devices.put(id, d, gen)
	return d, nil
}

func (s *Service) attestation(ctx context.Context, id string) (*store.Attestation, error) {
	a, gen, ok := s.atts.get(id)
	if ok {
		return a, nil
	}
	a, err := s.st.GetAttestation(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(ctx, "read attestation", "id", id, "err", err)
		}
		return nil, err
	}
	s.atts.put(id, a, gen)
	return a, nil
}

// Bindings and devices are cached separately, so a device change drops only
// the device; a binding change (issuance, revocation) drops only its hash.
func (s *Service) invalidateDevice(id string) { s.devices.del(id) }

func (s *Service) invalidateCert(sha store.Hash) { s.certs.del(sha) }

func (s *Service) invalidateAll() {
	s.certs.clear()
	s.devices.clear()
	s.atts.clear()
}
