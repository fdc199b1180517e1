package posture

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/store"
	"hardbound/store/policy"
)

// Action is what a profile does with a device whose posture is not good.
type Action string

const (
	ActionReject     Action = "reject"
	ActionQuarantine Action = "quarantine"
)

// ErrUnknownAction is wrapped by ParseAction's errors.
var ErrUnknownAction = errors.New("posture: unknown action")

// ParseAction returns the action s names; empty is ActionReject, the strict
// default. New applies it to every profile; configuration loaders call it
// to report a bad action where it was written.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case "":
		return ActionReject, nil
	case ActionReject, ActionQuarantine:
		return a, nil
	}
	return "", fmt.Errorf("%w %q: must be %s or %s", ErrUnknownAction, s, ActionReject, ActionQuarantine)
}

// Profile is the authorization policy of a group of devices.
type Profile struct {
	Name string
	// Formats lists the attestation formats admitted (policy.Format*;
	// policy.FormatNone admits unattested bindings). Empty means every
	// hardware format.
	Formats policy.Formats
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
	// Minimums are what the verified facts of a binding's attestation must
	// meet (min_os, min_patch_level), as at issuance. They are checked when
	// a binding is loaded into the cache, so Decide compares one bool.
	Minimums policy.Minimums
}

func (p *Profile) allows(format string, attested bool) Reason {
	if !attested {
		if p.Formats.AdmitsUnattested() {
			return ReasonOK
		}
		return ReasonUnattested
	}
	if p.Formats.Admits(format) {
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
	// UnavailableAnswer counts an answer given while the store could
	// not be reached (WithOutage).
	UnavailableAnswer(r OutageResult)
}

type nopMetrics struct{}

func (nopMetrics) Decision(Reason, bool)                  {}
func (nopMetrics) PostureChange(string, store.Compliance) {}
func (nopMetrics) CacheLookup(bool)                       {}
func (nopMetrics) EventDropped()                          {}
func (nopMetrics) UnavailableAnswer(OutageResult)         {}

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
// The default, DefaultCacheSize, holds a million devices with room to
// spare; a cached binding plus its device costs about 250 bytes.
func WithCacheSize(n int) Option { return func(s *Service) { s.cacheSize = n } }

// DefaultCacheSize is the default bound of each cache (2^21 entries).
const DefaultCacheSize = 1 << 21

// Service holds device standing and makes the authorization decision.
// Reads are cached; the caches follow the store's change feed
// (store.Watcher), so a write by any writer of the store, or by another
// node sharing it, invalidates what it touches before it returns.
type Service struct {
	st store.Store
	// profiles is replaced whole by SetProfiles (policy.go): a decision
	// loads it once and judges by one consistent set.
	profiles  atomic.Pointer[profileSet]
	log       *slog.Logger
	now       func() time.Time
	metrics   Metrics
	cacheSize int

	// The caches hold only what Decide reads, in small pointer-free
	// structs (see intern.go), so the whole population of a large site
	// fits and the GC does not scan it: full records (aliases, groups,
	// DER, facts) would cost several times more.
	certs    *cache[store.Hash, binding]
	devices  *cache[devKey, standing]
	longIDs  *longIDs
	profileN *interner // profile names of cached bindings
	formatN  *interner // attestation formats of cached bindings

	mu   sync.Mutex
	subs map[int]chan Event
	next int

	stopWatch func() // ends the store subscription (Close)

	// The store's availability and what to do while it is away
	// (outage.go); avail is nil for a store that cannot go away.
	avail        Availability
	grace        time.Duration
	outagePolicy OutagePolicy
	olog         outageLog

	// gen is the Seq of the last store change applied to the caches.
	gen     atomic.Uint64
	changes *changeClock
}

// certInfo is what Decide needs of a store.Cert and its attestation. The
// attestation format is resolved when the binding is cached: an attestation
// never changes after issuance.
type certInfo struct {
	deviceID  string
	profile   string
	format    string // attestation format; "" when unattested
	dev       devKey
	notBefore int64 // unix ns, clamped (see unixNano)
	notAfter  int64
	revoked   bool
	attested  bool
	// belowMin: the attestation's facts are below the profile's Minimums.
	belowMin bool
	// unreadable: the attestation could not be read (never cached);
	// unavailable: because the store could not be reached.
	unreadable  bool
	unavailable bool
}

// binding is a certInfo as cached: without pointers, so a million of them
// cost the GC nothing to mark. The zero binding is the negative entry.
type binding struct {
	notBefore int64
	notAfter  int64
	dev       devKey
	profile   uint16 // index in Service.profileN
	format    uint16 // index in Service.formatN
	known     bool   // false: no such binding (negative entry)
	revoked   bool
	attested  bool
	belowMin  bool
}

// standing is what Decide needs of a store.Device: 16 bytes.
type standing struct {
	updatedAt int64 // posture report, unix ns; math.MinInt64: never
	status    statusCode
	state     stateCode
}

// statusCode and stateCode encode the few values Decide tells apart; any
// other stored value gets the "other" code and is treated as before
// (neither revoked nor quarantined; neither compliant nor noncompliant).
type (
	statusCode uint8
	stateCode  uint8
)

const (
	statusOther statusCode = iota
	statusActive
	statusQuarantined
	statusRevoked
)

const (
	stateOther stateCode = iota
	stateUnknown
	stateCompliant
	stateNoncompliant
)

// unixNano maps t onto int64 nanoseconds, clamping times outside 1678-2262
// (a zero time, or the 9999-12-31 "no expiry" of RFC 5280) to the extremes,
// which keeps every comparison with a present-day clock exact.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func infoOf(c *store.Cert, format string) certInfo {
	return certInfo{
		deviceID:  c.DeviceID,
		profile:   c.Profile,
		format:    format,
		dev:       keyOf(c.DeviceID),
		notBefore: unixNano(c.NotBefore),
		notAfter:  unixNano(c.NotAfter),
		revoked:   c.Revoked != nil,
		attested:  c.Attested,
	}
}

// compact returns the cached form of ci, or false when one of its strings
// does not fit the intern tables (the binding is then read from the store
// each time: slower, never wrong).
func (s *Service) compact(ci *certInfo) (binding, bool) {
	if ci.unreadable {
		return binding{}, false
	}
	if ci.dev.n == hashedID && !s.longIDs.add(ci.dev, ci.deviceID) {
		return binding{}, false
	}
	p, ok := s.profileN.intern(ci.profile)
	if !ok {
		return binding{}, false
	}
	f, ok := s.formatN.intern(ci.format)
	if !ok {
		return binding{}, false
	}
	return binding{
		notBefore: ci.notBefore,
		notAfter:  ci.notAfter,
		dev:       ci.dev,
		profile:   p,
		format:    f,
		known:     true,
		revoked:   ci.revoked,
		attested:  ci.attested,
		belowMin:  ci.belowMin,
	}, true
}

// expand is the inverse of compact; false when the device id of a long-id
// binding was forgotten (invalidateAll), which makes it a cache miss.
func (s *Service) expand(b *binding) (certInfo, bool) {
	id, ok := b.dev.inline()
	if !ok {
		if id, ok = s.longIDs.get(b.dev); !ok {
			return certInfo{}, false
		}
	}
	return certInfo{
		deviceID:  id,
		profile:   s.profileN.name(b.profile),
		format:    s.formatN.name(b.format),
		dev:       b.dev,
		notBefore: b.notBefore,
		notAfter:  b.notAfter,
		revoked:   b.revoked,
		attested:  b.attested,
		belowMin:  b.belowMin,
	}, true
}

func compactDevice(d *store.Device) standing {
	st := standing{updatedAt: unixNano(d.Posture.UpdatedAt)}
	switch d.Status {
	case store.DeviceActive:
		st.status = statusActive
	case store.DeviceQuarantined:
		st.status = statusQuarantined
	case store.DeviceRevoked:
		st.status = statusRevoked
	}
	switch d.Posture.State {
	case store.ComplianceUnknown:
		st.state = stateUnknown
	case store.ComplianceCompliant:
		st.state = stateCompliant
	case store.ComplianceNoncompliant:
		st.state = stateNoncompliant
	}
	return st
}

// New builds a Service over st. Bindings whose profile is not configured
// get policy.DefaultProfile, which is added with the strict defaults unless
// profiles has it.
func New(st store.Store, profiles []Profile, opts ...Option) (*Service, error) {
	s := &Service{
		st:        st,
		log:       slog.New(slog.DiscardHandler),
		now:       time.Now,
		metrics:   nopMetrics{},
		cacheSize: DefaultCacheSize,
		subs:      map[int]chan Event{},
		grace:     DefaultOutageGrace,
	}
	for _, o := range opts {
		o(s)
	}
	set, err := s.buildProfiles(profiles)
	if err != nil {
		return nil, err
	}
	if s.outagePolicy == "" {
		s.outagePolicy = OutageReject
	}
	if _, err := ParseOutagePolicy(string(s.outagePolicy)); err != nil {
		return nil, err
	}
	if s.grace < 0 {
		return nil, fmt.Errorf("posture: store.unavailable grace %s: must not be negative", s.grace)
	}
	s.profiles.Store(set)
	if s.cacheSize < 1 {
		return nil, fmt.Errorf("posture: cache size %d: must be positive", s.cacheSize)
	}
	s.certs = newCache[store.Hash, binding](s.cacheSize)
	s.devices = newCache[devKey, standing](s.cacheSize)
	s.longIDs = newLongIDs(s.cacheSize)
	names := make([]string, 0, len(set.byName))
	for n := range set.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	s.profileN = newInterner(names...)
	s.formatN = newInterner(append([]string{"", policy.FormatNone}, policy.HardwareFormats()...)...)
	s.changes = newChangeClock(min(s.cacheSize, maxChangedDevices), s.now())
	s.stopWatch = sync.OnceFunc(st.Watch(s.onChange))
	return s, nil
}

// Profile returns the named profile, or the default one, as configured
// now (SetProfiles replaces them).
func (s *Service) Profile(name string) *Profile { return s.profiles.Load().get(name) }

// Decide says whether leaf may authenticate now. The caller must already have
// verified leaf's chain to the issuing CA; Decide looks the binding up by
// store.HashCert(leaf). Every reason but ok is final for this certificate
// until an admin or MDM changes the device's standing; posture_stale and
// posture_unknown clear when the MDM reports again. A store error other than
// not-found yields unknown_cert (fail closed) and is logged, except an
// unavailable store (store.ErrUnavailable), which yields store_unavailable;
// while the store is unavailable the caches answer for the grace period,
// then the policy of WithOutage applies (outage.go).
func (s *Service) Decide(ctx context.Context, leaf *x509.Certificate) Verdict {
	v, _ := s.decide(ctx, leaf, false)
	s.metrics.Decision(v.Reason, v.Allow)
	return v
}

// DecideCached is Decide answered from memory only: ok is false, and
// nothing is counted, when the answer would need a store read. Callers that
// must not block (a RADIUS reader answering on its own goroutine) try it
// first and call Decide when it fails.
func (s *Service) DecideCached(leaf *x509.Certificate) (v Verdict, ok bool) {
	v, ok = s.decide(context.Background(), leaf, true)
	if ok {
		s.metrics.CacheLookup(true)
		s.metrics.Decision(v.Reason, v.Allow)
	}
	return v, ok
}

// errCacheMiss stops a cache-only decide before the store.
var errCacheMiss = errors.New("posture: not cached")

// decide reports false only in cacheOnly mode, when a store read was needed.
func (s *Service) decide(ctx context.Context, leaf *x509.Certificate, cacheOnly bool) (Verdict, bool) {
	now := s.now()
	nowNs := unixNano(now)
	sha := store.HashCert(leaf)
	// Read before the caches: a change applied meanwhile has a higher Seq,
	// so the Generation never claims more than the decision saw.
	v := Verdict{CertSHA256: sha, Reason: ReasonUnknownCert, Generation: s.gen.Load()}
	st := s.outage(now)
	if st == outageRejects {
		// Fail closed: whatever the caches say, the standing may have
		// changed since the store was last heard from.
		v.Reason = ReasonStoreUnavailable
		s.outageAnswer(&v, st)
		return v, true
	}
	v, ok := s.decideRead(ctx, v, now, nowNs, leaf, sha, cacheOnly)
	if ok {
		s.outageAnswer(&v, st)
	}
	return v, ok
}

// decideRead is decide's lookup: the caches, then the store.
func (s *Service) decideRead(ctx context.Context, v Verdict, now time.Time, nowNs int64, leaf *x509.Certificate, sha store.Hash, cacheOnly bool) (Verdict, bool) {
	c, err := s.cert(ctx, sha, cacheOnly)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			v.Reason = ReasonStoreUnavailable
		}
		return v, !errors.Is(err, errCacheMiss)
	}
	v.DeviceID = c.deviceID
	v.Profile = c.profile
	if c.profile == policy.NASProfile {
		// A NAS's RADIUS/TLS certificate (radius/radsec) is not a device
		// credential: without this it would fall to the default profile.
		return v, true
	}
	p := s.Profile(c.profile)
	d, err := s.device(ctx, c.dev, c.deviceID, cacheOnly)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			v.Reason = ReasonStoreUnavailable
		}
		return v, !errors.Is(err, errCacheMiss)
	}
	return s.judge(v, p, now, nowNs, leaf.NotAfter, &c, d), true
}

// judge applies the profile and the device's standing to a known binding.
// leafNotAfter is the presented certificate's (the binding's own when
// SetProfiles reviews a live session).
func (s *Service) judge(v Verdict, p *Profile, now time.Time, nowNs int64, leafNotAfter time.Time, c *certInfo, d standing) Verdict {
	// A revoked device is reported as such even though its certs were
	// revoked with it: the operator wants the cause, not the mechanism.
	if d.status == statusRevoked {
		v.Reason = ReasonDeviceRevoked
		return v
	}
	if c.revoked {
		v.Reason = ReasonCertRevoked
		return v
	}
	if nowNs > c.notAfter || now.After(leafNotAfter) || nowNs < c.notBefore {
		v.Reason = ReasonCertExpired
		return v
	}
	if c.unreadable {
		// The binding names an attestation the store could not return
		// (see loadCert): fail closed.
		v.Reason = ReasonUnattested
		return v
	}
	if r := p.allows(c.format, c.attested); r != ReasonOK {
		v.Reason = r
		return v
	}
	if c.belowMin {
		v.Reason = ReasonBelowMinimum
		return v
	}
	if d.status == statusQuarantined {
		v.Reason = ReasonDeviceQuarantined
		return s.apply(v, p, ActionQuarantine, nowNs, c, d)
	}
	switch {
	case d.state == stateNoncompliant:
		v.Reason = ReasonNoncompliant
		return s.apply(v, p, p.Noncompliant, nowNs, c, d)
	case p.MaxAge > 0 && (d.state != stateCompliant || d.updatedAt == math.MinInt64):
		v.Reason = ReasonPostureUnknown
		return s.apply(v, p, p.Unknown, nowNs, c, d)
	case p.MaxAge > 0 && nowNs-d.updatedAt > int64(p.MaxAge):
		v.Reason = ReasonPostureStale
		return s.apply(v, p, p.Unknown, nowNs, c, d)
	}
	v.Reason = ReasonOK
	v.Allow = true
	v.VLAN = p.VLAN
	v.SessionTimeout = s.sessionTimeout(p, nowNs, c, d)
	return v
}

// apply turns a bad standing into a reject, or into admission to the
// quarantine VLAN when the action says so and the profile has one.
func (s *Service) apply(v Verdict, p *Profile, a Action, now int64, c *certInfo, d standing) Verdict {
	if a != ActionQuarantine || p.QuarantineVLAN == "" {
		return v
	}
	v.Allow = true
	v.VLAN = p.QuarantineVLAN
	v.SessionTimeout = s.sessionTimeout(p, now, c, d)
	return v
}

// sessionTimeout works on clamped unix nanoseconds; a difference that
// overflows a Duration saturates instead of wrapping.
func (s *Service) sessionTimeout(p *Profile, now int64, c *certInfo, d standing) time.Duration {
	t := time.Duration(math.MaxInt64)
	if c.notAfter-now >= 0 { // no overflow: notAfter >= now here
		t = time.Duration(c.notAfter - now)
	}
	if p.SessionTimeout > 0 && p.SessionTimeout < t {
		t = p.SessionTimeout
	}
	if p.MaxAge > 0 && d.updatedAt != math.MinInt64 {
		if left := p.MaxAge - time.Duration(now-d.updatedAt); left < t {
			t = left
		}
	}
	if t < time.Second {
		t = time.Second
	}
	return t.Truncate(time.Second)
}

// cert counts the lookup unless cacheOnly (DecideCached counts its hit).
func (s *Service) cert(ctx context.Context, sha store.Hash, cacheOnly bool) (certInfo, error) {
	b, gen, ok := s.certs.get(sha)
	if ok && !b.known {
		if !cacheOnly {
			s.metrics.CacheLookup(true)
		}
		return certInfo{}, store.ErrNotFound
	}
	if ok {
		if ci, ok := s.expand(&b); ok {
			if !cacheOnly {
				s.metrics.CacheLookup(true)
			}
			return ci, nil
		}
	}
	if cacheOnly {
		return certInfo{}, errCacheMiss
	}
	s.metrics.CacheLookup(false)
	c, err := s.st.GetCertBinding(ctx, sha)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A binding is written before its cert is handed out, so an unknown
		// hash stays unknown: caching the miss is safe and stops a flood of
		// foreign-but-chaining certs from reaching disk.
		s.certs.put(sha, binding{}, gen)
		return certInfo{}, err
	case errors.Is(err, store.ErrUnavailable):
		return certInfo{}, err // counted, and logged once per outage
	case err != nil:
		s.log.ErrorContext(ctx, "read binding", "err", err)
		return certInfo{}, err
	}
	ci := s.loadCert(ctx, c)
	if ci.unavailable {
		return certInfo{}, store.ErrUnavailable
	}
	if b, ok := s.compact(&ci); ok {
		s.certs.put(sha, b, gen)
	}
	return ci, nil
}

// loadCert resolves c's attestation format. A binding whose attestation
// cannot be read is returned with an empty format and marked unreadable
// (Decide says unattested); compact refuses to cache it, so it heals once
// the attestation is readable.
func (s *Service) loadCert(ctx context.Context, c *store.Cert) certInfo {
	if !c.Attested || c.AttestationID == "" {
		return infoOf(c, "")
	}
	a, err := s.st.GetAttestation(ctx, c.AttestationID)
	if err != nil {
		ci := infoOf(c, "")
		ci.unreadable = true
		switch {
		case errors.Is(err, store.ErrUnavailable):
			ci.unavailable = true
		case !errors.Is(err, store.ErrNotFound):
			s.log.ErrorContext(ctx, "read attestation", "id", c.AttestationID, "err", err)
		}
		return ci
	}
	ci := infoOf(c, a.Format)
	ci.belowMin = belowMinimums(s.Profile(c.Profile), a)
	return ci
}

// belowMinimums reports whether a's facts fail p's minimums.
func belowMinimums(p *Profile, a *store.Attestation) bool {
	return !p.Minimums.IsZero() && p.Minimums.Check(a.Format, a.Facts) != nil
}

func (s *Service) device(ctx context.Context, k devKey, id string, cacheOnly bool) (standing, error) {
	d, gen, ok := s.devices.get(k)
	if ok {
		return d, nil
	}
	if cacheOnly {
		return standing{}, errCacheMiss
	}
	rec, err := s.st.GetDevice(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnavailable) {
			s.log.ErrorContext(ctx, "read device", "device", id, "err", err)
		}
		return standing{}, err
	}
	d = compactDevice(rec)
	s.devices.put(k, d, gen)
	return d, nil
}

// Invalidation bumps the shard generation, so a load that raced with the
// change is not cached (cache.put).
func (s *Service) invalidateDevice(id string) { s.devices.del(keyOf(id)) }

func (s *Service) invalidateCert(sha store.Hash) { s.certs.del(sha) }

func (s *Service) invalidateAll() {
	s.certs.clear()
	s.devices.clear()
	s.longIDs.clear()
}
