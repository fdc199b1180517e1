package dynauth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/auditgroup"
)

// Events is the posture event source (*posture.Service satisfies it).
type Events interface {
	Subscribe(buffer int) (<-chan posture.Event, func())
}

// Sessions lists accounting sessions (store.Store satisfies it).
type Sessions interface {
	ListSessions(ctx context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error)
}

// Profiles finds a profile's policy by name (*posture.Service satisfies it).
type Profiles interface {
	Profile(name string) *posture.Profile
}

// Auditor appends to the audit chain (store.Store satisfies it).
type Auditor interface {
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}

// Claimer records a one-time claim shared by every node of a cluster
// (store.Store satisfies it). The first claim of a nonce in a scope returns
// nil; while it lives, another claim fails with store.ErrExists.
type Claimer interface {
	ClaimNonce(ctx context.Context, scope string, nonce store.Hash, expires time.Time) error
}

// claimScope is the nonce scope of enforcement claims.
const claimScope = "dynauth"

// auditWindow is how long enforcement outcomes gather before they reach
// the audit chain as one group: a mass quarantine records thousands.
const auditWindow = 10 * time.Millisecond

// Exchanger sends one request (*Sender satisfies it).
type Exchanger interface {
	Send(ctx context.Context, nas NAS, req Request) (Outcome, error)
}

// NASLookup maps a session's NAS client name to its DAS. A NAS with an empty
// Addr is reached at the session's NASAddr (the source address the NAS used
// for accounting) on NAS.Port, which suits NAS clients configured by prefix.
type NASLookup func(name string) (NAS, bool)

// EnforcerConfig wires an Enforcer. Events, Sessions, NAS and Sender are required.
type EnforcerConfig struct {
	Events   Events
	Sessions Sessions
	NAS      NASLookup
	Sender   Exchanger
	// Profiles is optional; without it (or for an unknown profile) every
	// enforcement is a Disconnect, which is always safe: the device
	// re-authenticates and posture.Decide applies the current policy.
	Profiles Profiles
	Auditor  Auditor // optional, strongly recommended
	Logger   *slog.Logger
	Metrics  Metrics
	// PreferCoA moves sessions of devices whose profile quarantines to the
	// profile's QuarantineVLAN with a CoA-Request instead of disconnecting
	// them. A CoA-NAK (other than 503) or an unanswered CoA falls back to
	// Disconnect, because many NASes do not implement VLAN CoA (hostapd
	// NAKs it; a Cisco WLC was seen to ignore CoA yet honour Disconnect).
	PreferCoA bool
	// ReauthOnRecovery disconnects sessions when a device becomes compliant
	// or is released, so that it re-authenticates out of quarantine at once
	// instead of at its next Session-Timeout.
	ReauthOnRecovery bool
	// Buffer is the posture subscription size (default 65536): the posture
	// Service drops events for a subscriber that falls this far behind.
	Buffer int
	// Workers bounds devices being enforced at once (default 1024); packets
	// in flight are bounded separately by the Sender.
	Workers int
	// MaxPending bounds devices waiting for a worker (default 1,000,000).
	MaxPending int
	// Claims, when set, makes one node of several sharing a database the
	// only sender for a session and a standing change: every node's
	// enforcer sees every change (the change feed), and before sending to
	// a session it claims (change, session) here; a node that loses the
	// claim leaves the session to the winner. Without it every node sends.
	Claims Claimer
	// ClaimTTL is how long a claim lives (default 24 h, the change feed's
	// retention: a node catching up later than that resets instead of
	// replaying, so it cannot enforce an old change again).
	ClaimTTL time.Duration
	// RecentWindow is how long a standing change is remembered for
	// SessionStarted (default 2 minutes): at least the RADIUS conversation
	// timeout, the longest an Accept can precede its Accounting-Start by
	// more than the network's delay.
	RecentWindow time.Duration
}

// Enforcer turns posture events into Disconnect/CoA requests to every NAS
// that holds a live session of the device. Events of one device are handled
// in order, one at a time; different devices proceed in parallel.
type Enforcer struct {
	cfg EnforcerConfig
	log *slog.Logger
	m   Metrics

	mu      sync.Mutex
	pending map[string]*devState
	waiting []string
	running int
	wg      sync.WaitGroup

	auditMu sync.RWMutex
	audit   *auditgroup.Writer // while Run is active

	recentMu sync.Mutex
	recent   map[string]posture.Event // the last event per device, for SessionStarted
	runCtx   context.Context          // Run's, while it runs; guarded by recentMu
}

type devState struct {
	events []posture.Event
}

// maxPerDevice bounds queued events of one device; beyond it they collapse
// into one "disconnect everything" event, a superset that is always safe.
const maxPerDevice = 16

// eventResync is the synthetic kind used when a device's queue overflows.
const eventResync posture.EventKind = "resync"

// NewEnforcer checks cfg and fills defaults.
func NewEnforcer(cfg EnforcerConfig) (*Enforcer, error) {
	switch {
	case cfg.Events == nil:
		return nil, errors.New("dynauth: enforcer: Events is required")
	case cfg.Sessions == nil:
		return nil, errors.New("dynauth: enforcer: Sessions is required")
	case cfg.NAS == nil:
		return nil, errors.New("dynauth: enforcer: NAS lookup is required")
	case cfg.Sender == nil:
		return nil, errors.New("dynauth: enforcer: Sender is required")
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 65536
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1024
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1_000_000
	}
	if cfg.RecentWindow <= 0 {
		cfg.RecentWindow = 2 * time.Minute
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	return &Enforcer{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "radius", "sub", "dynauth"),
		m:       cfg.Metrics,
		pending: make(map[string]*devState),
		recent:  make(map[string]posture.Event),
	}, nil
}

// maxRecent bounds the devices remembered for SessionStarted.
const maxRecent = 1 << 16

// remember keeps ev as its device's last standing change.
func (e *Enforcer) remember(ev posture.Event) {
	if ev.DeviceID == "" {
		return
	}
	at := ev.At
	if at.IsZero() {
		at = time.Now()
		ev.At = at
	}
	e.recentMu.Lock()
	defer e.recentMu.Unlock()
	if len(e.recent) >= maxRecent {
		for k, old := range e.recent {
			if at.Sub(old.At) > e.cfg.RecentWindow {
				delete(e.recent, k)
			}
		}
		if len(e.recent) >= maxRecent {
			// Still full of recent changes: forget an arbitrary one
			// rather than grow. Its sessions were enforced when it came.
			for k := range e.recent {
				delete(e.recent, k)
				break
			}
		}
	}
	e.recent[ev.DeviceID] = ev
}

// SessionStarted is told of an accounting session whose Access-Accept was
// built at admitted. A standing change after admitted found no session of
// the device to act on (its Accounting-Start had not arrived), so the
// change is enforced again now that the session exists. The RADIUS server
// calls it (radius.SessionStarts).
func (e *Enforcer) SessionStarted(_ context.Context, s *store.Session, admitted time.Time) {
	if s == nil || s.DeviceID == "" {
		return
	}
	e.recentMu.Lock()
	defer e.recentMu.Unlock() // held across dispatch: Run stops waiting for workers only after clearing runCtx
	ev, ok := e.recent[s.DeviceID]
	ctx := e.runCtx
	if !ok || ctx == nil || ctx.Err() != nil || !ev.At.After(admitted) || time.Since(ev.At) > e.cfg.RecentWindow {
		return
	}
	e.log.Info("session started after a standing change its Accept preceded; enforcing again",
		"device", s.DeviceID, "nas", s.NAS, "acct_session_id", s.AcctSessionID, "kind", ev.Kind, "change_at", ev.At, "admitted", admitted)
	e.dispatch(ctx, ev)
}

// Run subscribes to posture events and enforces them until ctx ends; it then
// waits for in-progress enforcements (which see ctx cancelled) and returns
// ctx's error. ready, if non-nil, is closed once the subscription exists.
func (e *Enforcer) Run(ctx context.Context, ready chan<- struct{}) error {
	ch, cancel := e.cfg.Events.Subscribe(e.cfg.Buffer)
	defer cancel()
	if e.cfg.Auditor != nil {
		w := auditgroup.New(e.cfg.Auditor, auditgroup.Options{
			Window: auditWindow,
			Failed: func(n int, err error) { e.log.Error("audit append failed", "events", n, "err", err) },
		})
		e.auditMu.Lock()
		e.audit = w
		e.auditMu.Unlock()
		// Runs after the workers are done (defers are LIFO): every
		// outcome is in the chain before Run returns.
		defer func() {
			e.auditMu.Lock()
			e.audit = nil
			e.auditMu.Unlock()
			w.Flush()
		}()
	}
	if ready != nil {
		close(ready)
	}
	defer e.wg.Wait()
	// Before the workers are waited for (defers are LIFO): no
	// SessionStarted dispatches once the wait began.
	e.recentMu.Lock()
	e.runCtx = ctx
	e.recentMu.Unlock()
	defer func() {
		e.recentMu.Lock()
		e.runCtx = nil
		e.recentMu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-ch:
			if !ok {
				return errors.New("dynauth: posture event stream closed")
			}
			e.remember(ev)
			e.dispatch(ctx, ev)
		}
	}
}

// dispatch never blocks: the posture publisher drops events for a slow
// subscriber, so queueing happens here, bounded.
func (e *Enforcer) dispatch(ctx context.Context, ev posture.Event) {
	key := ev.DeviceID
	if key == "" {
		key = "cert:" + ev.CertSHA256.String()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if st, ok := e.pending[key]; ok {
		if len(st.events) >= maxPerDevice {
			e.log.Warn("device event queue overflow; collapsing to disconnect", "device", ev.DeviceID)
			st.events = []posture.Event{{Kind: eventResync, DeviceID: ev.DeviceID, Device: ev.Device, Source: ev.Source, At: st.events[0].At}}
			return
		}
		st.events = append(st.events, ev)
		return
	}
	if len(e.pending) >= e.cfg.MaxPending {
		e.m.Event(string(ev.Kind), "dropped")
		e.log.Error("enforcement queue full; event dropped", "kind", ev.Kind, "device", ev.DeviceID)
		return
	}
	if e.running < e.cfg.Workers {
		e.pending[key] = &devState{}
		e.running++
		e.wg.Add(1)
		go e.work(ctx, key, ev)
		return
	}
	e.pending[key] = &devState{events: []posture.Event{ev}}
	e.waiting = append(e.waiting, key)
}

func (e *Enforcer) work(ctx context.Context, key string, ev posture.Event) {
	defer e.wg.Done()
	for {
		e.Enforce(ctx, ev)
		e.mu.Lock()
		if st := e.pending[key]; len(st.events) > 0 {
			ev, st.events = st.events[0], st.events[1:]
			e.mu.Unlock()
			continue
		}
		delete(e.pending, key)
		if len(e.waiting) == 0 {
			e.running--
			e.mu.Unlock()
			return
		}
		key, e.waiting = e.waiting[0], e.waiting[1:]
		st := e.pending[key]
		ev, st.events = st.events[0], st.events[1:]
		e.mu.Unlock()
	}
}

// plan is what an event asks for.
type plan struct {
	kind Kind
	vlan string
	act  bool
	cert store.Hash // non-zero: only sessions of this cert
}

func (e *Enforcer) plan(ev posture.Event) plan {
	disconnect := plan{kind: Disconnect, act: true}
	var prof *posture.Profile
	if e.cfg.Profiles != nil && ev.Device != nil {
		prof = e.cfg.Profiles.Profile(ev.Device.Profile)
	}
	quarantine := func() plan {
		if e.cfg.PreferCoA && prof != nil && prof.QuarantineVLAN != "" {
			return plan{kind: CoA, vlan: prof.QuarantineVLAN, act: true}
		}
		return disconnect
	}
	byAction := func(a posture.Action) plan {
		if a == posture.ActionQuarantine {
			return quarantine()
		}
		return disconnect
	}
	switch ev.Kind {
	case posture.EventDeviceRevoked, eventResync:
		return disconnect
	case posture.EventCertRevoked:
		return plan{kind: Disconnect, act: true, cert: ev.CertSHA256}
	case posture.EventPolicy:
		// The profiles changed (a config reload) and no longer admit this
		// certificate's sessions as they were: the re-authentication
		// gets the new decision (refusal or VLAN).
		return plan{kind: Disconnect, act: true, cert: ev.CertSHA256}
	case posture.EventQuarantined:
		return quarantine()
	case posture.EventReleased:
		if e.cfg.ReauthOnRecovery {
			return disconnect
		}
		return plan{}
	case posture.EventCompliance:
		if ev.Device == nil {
			return disconnect
		}
		switch ev.Device.Posture.State {
		case store.ComplianceNoncompliant:
			if prof == nil {
				return disconnect
			}
			return byAction(prof.Noncompliant)
		case store.ComplianceUnknown:
			// A profile without MaxAge does not require posture: unknown is fine.
			if prof != nil && prof.MaxAge == 0 {
				return plan{}
			}
			if prof == nil {
				return disconnect
			}
			return byAction(prof.Unknown)
		default:
			if e.cfg.ReauthOnRecovery {
				return disconnect
			}
			return plan{}
		}
	}
	return plan{}
}

// SessionOutcome is the result for one session.
type SessionOutcome struct {
	Session *store.Session
	Kind    Kind
	Outcome Outcome
	Err     error
}

// Enforce acts on one event synchronously and returns what happened to each
// live session. Run calls it; admin tooling may too.
func (e *Enforcer) Enforce(ctx context.Context, ev posture.Event) []SessionOutcome {
	start := ev.At
	if start.IsZero() {
		start = time.Now()
	}
	pl := e.plan(ev)
	if !pl.act || ev.DeviceID == "" {
		e.m.Event(string(ev.Kind), "none")
		return nil
	}
	sessions, err := e.liveSessions(ctx, ev.DeviceID, pl.cert)
	if err != nil {
		e.m.Event(string(ev.Kind), "error")
		e.log.Error("listing sessions", "device", ev.DeviceID, "err", err)
		return nil
	}
	if len(sessions) == 0 {
		e.m.Event(string(ev.Kind), "none")
		return nil
	}
	if sessions = e.claim(ctx, ev, sessions); len(sessions) == 0 {
		e.m.Event(string(ev.Kind), "claimed_elsewhere")
		return nil
	}
	e.m.Event(string(ev.Kind), pl.kind.String())
	out := make([]SessionOutcome, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() { out[i] = e.one(ctx, ev, pl, s) })
	}
	wg.Wait()
	e.m.Enforced(string(ev.Kind), time.Since(start))
	return out
}

// claim keeps the sessions this node won the claim for. The claim names the
// change by what every node's posture derives identically from the change
// feed (kind, device, certificate, the store's time of the change, to the
// nanosecond) and the session by its NAS and Acct-Session-Id, so a session
// whose Accounting-Start arrives after the change (SessionStarted) is a
// claim of its own. A claim the store cannot record is sent anyway: a
// duplicate Disconnect is answered with a NAK (RFC 5176 Error-Cause 503), a
// missed one leaves a revoked device on the network.
func (e *Enforcer) claim(ctx context.Context, ev posture.Event, sessions []*store.Session) []*store.Session {
	if e.cfg.Claims == nil || ev.At.IsZero() {
		return sessions // no time, no identity across nodes: never claim two changes as one
	}
	expires := time.Now().Add(e.cfg.ClaimTTL)
	kept := sessions[:0]
	for _, s := range sessions {
		err := e.cfg.Claims.ClaimNonce(ctx, claimScope, claimKey(ev, s), expires)
		switch {
		case err == nil:
			kept = append(kept, s)
		case errors.Is(err, store.ErrExists):
			e.log.Debug("enforcement claimed by another node", "device", ev.DeviceID, "kind", ev.Kind,
				"nas", s.NAS, "acct_session_id", s.AcctSessionID)
		default:
			e.log.Warn("enforcement claim failed; sending anyway", "device", ev.DeviceID, "kind", ev.Kind,
				"nas", s.NAS, "acct_session_id", s.AcctSessionID, "err", err)
			kept = append(kept, s)
		}
	}
	return kept
}

// claimKey hashes a change and a session into a claim nonce; every field is
// length-prefixed so no two inputs share an encoding.
func claimKey(ev posture.Event, s *store.Session) store.Hash {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var at [8]byte
	binary.BigEndian.PutUint64(at[:], uint64(ev.At.UnixNano()))
	field([]byte(ev.Kind))
	field([]byte(ev.DeviceID))
	field(ev.CertSHA256[:])
	field(at[:])
	field([]byte(s.NAS))
	field([]byte(s.AcctSessionID))
	var k store.Hash
	h.Sum(k[:0])
	return k
}

func (e *Enforcer) liveSessions(ctx context.Context, deviceID string, cert store.Hash) ([]*store.Session, error) {
	var all []*store.Session
	var p store.Page
	for range 1000 { // bounded paging
		page, next, err := e.cfg.Sessions.ListSessions(ctx, deviceID, true, p)
		if err != nil {
			return nil, fmt.Errorf("dynauth: list sessions of %s: %w", deviceID, err)
		}
		for _, s := range page {
			if !s.Live() || (!cert.IsZero() && s.CertSHA256 != cert) {
				continue
			}
			all = append(all, s)
		}
		if next == "" || len(page) == 0 {
			return all, nil
		}
		p.After = next
	}
	return all, nil
}

func (e *Enforcer) one(ctx context.Context, ev posture.Event, pl plan, s *store.Session) SessionOutcome {
	res := SessionOutcome{Session: s, Kind: pl.kind}
	nas, ok := e.cfg.NAS(s.NAS)
	if !ok {
		res.Outcome = Outcome{Result: ResultError}
		res.Err = fmt.Errorf("%w: unknown NAS %q", ErrBadRequest, s.NAS)
		e.record(ctx, ev, res)
		return res
	}
	if nas.Name == "" {
		nas.Name = s.NAS
	}
	if nas.Addr == "" {
		nas.Addr = s.NASAddr
		if host, _, err := net.SplitHostPort(s.NASAddr); err == nil {
			nas.Addr = host // accounting source port is not the DAS port
		}
	}
	req := Request{Kind: pl.kind, Identity: IdentityFromSession(s), VLAN: pl.vlan}
	res.Outcome, res.Err = e.cfg.Sender.Send(ctx, nas, req)
	refused := res.Outcome.Result == ResultNAK && res.Outcome.ErrorCause != ErrorCauseSessionNotFound
	if pl.kind == CoA && (refused || res.Outcome.Result == ResultTimeout) {
		e.record(ctx, ev, res)
		// Fall back to the portable lever.
		res = SessionOutcome{Session: s, Kind: Disconnect}
		req.Kind, req.VLAN = Disconnect, ""
		res.Outcome, res.Err = e.cfg.Sender.Send(ctx, nas, req)
	}
	e.record(ctx, ev, res)
	return res
}

func (e *Enforcer) record(ctx context.Context, ev posture.Event, r SessionOutcome) {
	reason := "trigger=" + string(ev.Kind) + " session=" + r.Session.AcctSessionID
	if r.Outcome.ErrorCause != 0 {
		reason += " error_cause=" + r.Outcome.ErrorCause.String()
	}
	lvl := slog.LevelInfo
	if r.Outcome.Result != ResultACK && r.Outcome.ErrorCause != ErrorCauseSessionNotFound {
		lvl = slog.LevelWarn
	}
	e.log.Log(ctx, lvl, "dynamic authorization", "action", r.Kind.String(), "result", r.Outcome.Result,
		"device", ev.DeviceID, "nas", r.Session.NAS, "nas_addr", r.Outcome.Addr, "acct_session_id", r.Session.AcctSessionID,
		"error_cause", r.Outcome.ErrorCause.String(), "attempts", r.Outcome.Attempts, "err", r.Err)
	if e.cfg.Auditor == nil {
		return
	}
	ae := &store.AuditEvent{
		Time:    time.Now(),
		Actor:   "system",
		Action:  "radius." + r.Kind.String(),
		Subject: ev.DeviceID,
		Result:  string(r.Outcome.Result),
		Reason:  reason,
		Source:  "nas:" + r.Session.NAS,
	}
	// While Run is active outcomes are written in groups, in the
	// background, so a slow audit chain never delays the next Disconnect;
	// the writer pushes back once too many groups are in flight. Outside
	// Run (tests, one-off calls) the outcome is written here.
	e.auditMu.RLock()
	w := e.audit
	e.auditMu.RUnlock()
	if w != nil {
		_ = w.Append(ctx, ae) // failures are logged by the writer
		return
	}
	// Audit even when the caller's ctx is cancelled: the packet was sent.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.cfg.Auditor.AppendAudits(actx, []*store.AuditEvent{ae}); err != nil {
		e.log.Error("audit append failed", "action", ae.Action, "device", ae.Subject, "err", err)
	}
}
