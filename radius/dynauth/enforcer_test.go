package dynauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/posture"
	"hardbound/store"
)

type chanEvents struct{ ch chan posture.Event }

func (c *chanEvents) Subscribe(int) (<-chan posture.Event, func()) { return c.ch, func() {} }

// memSessions pages through sessions two at a time so paging is exercised.
type memSessions struct {
	mu   sync.Mutex
	byID map[string][]*store.Session
	page int
}

func (m *memSessions) ListSessions(_ context.Context, deviceID string, liveOnly bool, p store.Page) ([]*store.Session, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.byID[deviceID]
	start := 0
	if p.After != "" {
		fmt.Sscan(p.After, &start)
	}
	size := m.page
	if size == 0 {
		size = 2
	}
	end := min(start+size, len(all))
	var out []*store.Session
	for _, s := range all[start:end] {
		if !liveOnly || s.Live() {
			out = append(out, s)
		}
	}
	next := ""
	if end < len(all) {
		next = fmt.Sprint(end)
	}
	return out, next, nil
}

type recAuditor struct {
	mu  sync.Mutex
	evs []*store.AuditEvent
}

func (a *recAuditor) AppendAudits(_ context.Context, evs []*store.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, evs...)
	return nil
}

func (a *recAuditor) summary() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.evs {
		out = append(out, e.Action+" "+e.Result+" "+e.Source)
	}
	sort.Strings(out)
	return out
}

type profileMap map[string]*posture.Profile

func (m profileMap) Profile(name string) *posture.Profile { return m[name] }

// recExchanger records requests and ACKs them.
type recExchanger struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recExchanger) Send(_ context.Context, nas NAS, req Request) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, fmt.Sprintf("%s %s %s vlan=%s", req.Kind, nas.Addr, req.Identity.AcctSessionID, req.VLAN))
	return Outcome{Result: ResultACK, Attempts: 1, Addr: nas.Addr}, nil
}

func device(id, profile string, state store.Compliance) *store.Device {
	return &store.Device{ID: id, Profile: profile, Status: store.DeviceActive, Posture: store.Posture{State: state}}
}

func TestEnforcerPlans(t *testing.T) {
	t.Parallel()
	certA := store.Hash{1}
	profiles := profileMap{
		"reject":     {Name: "reject", MaxAge: time.Hour, Noncompliant: posture.ActionReject, Unknown: posture.ActionReject},
		"quarantine": {Name: "quarantine", MaxAge: time.Hour, Noncompliant: posture.ActionQuarantine, Unknown: posture.ActionQuarantine, QuarantineVLAN: "666"},
		"noposture":  {Name: "noposture", Noncompliant: posture.ActionReject, Unknown: posture.ActionReject},
	}
	sessions := func() *memSessions {
		return &memSessions{byID: map[string][]*store.Session{"d1": {
			{NAS: "ap1", NASAddr: "192.0.2.1", AcctSessionID: "S1", CertSHA256: certA},
			{NAS: "ap2", NASAddr: "192.0.2.2:41000", AcctSessionID: "S2", CertSHA256: store.Hash{2}},
			{NAS: "ap1", NASAddr: "192.0.2.1", AcctSessionID: "S3", CertSHA256: certA, StoppedAt: time.Unix(1, 0)},
		}}}
	}
	tests := []struct {
		name     string
		ev       posture.Event
		coa      bool
		recovery bool
		want     []string
	}{
		{name: "disconnect/noncompliant_reject", ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "reject", store.ComplianceNoncompliant)},
			want: []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}},
		{name: "coa/noncompliant_quarantine_prefers_coa", coa: true, ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "quarantine", store.ComplianceNoncompliant)},
			want: []string{"coa 192.0.2.1 S1 vlan=666", "coa 192.0.2.2 S2 vlan=666"}},
		{name: "disconnect/noncompliant_quarantine_without_coa", ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "quarantine", store.ComplianceNoncompliant)},
			want: []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}},
		{name: "disconnect/unknown_profile", ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "gone", store.ComplianceNoncompliant)},
			want: []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}},
		{name: "none/unknown_posture_not_required", ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "noposture", store.ComplianceUnknown)}},
		{name: "disconnect/unknown_posture_required", ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "reject", store.ComplianceUnknown)},
			want: []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}},
		{name: "none/compliant", ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "reject", store.ComplianceCompliant)}},
		{name: "disconnect/compliant_with_recovery", recovery: true, ev: posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "reject", store.ComplianceCompliant)},
			want: []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}},
		{name: "none/released", ev: posture.Event{Kind: posture.EventReleased, DeviceID: "d1", Device: device("d1", "reject", store.ComplianceCompliant)}},
		{name: "coa/quarantined", coa: true, ev: posture.Event{Kind: posture.EventQuarantined, DeviceID: "d1", Device: device("d1", "quarantine", store.ComplianceCompliant)},
			want: []string{"coa 192.0.2.1 S1 vlan=666", "coa 192.0.2.2 S2 vlan=666"}},
		{name: "disconnect/device_revoked", coa: true, ev: posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1", Device: device("d1", "quarantine", store.ComplianceCompliant)},
			want: []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}},
		{name: "disconnect/cert_revoked_only_its_sessions", ev: posture.Event{Kind: posture.EventCertRevoked, DeviceID: "d1", CertSHA256: certA},
			want: []string{"disconnect 192.0.2.1 S1 vlan="}},
		{name: "disconnect/policy_only_its_cert", coa: true, ev: posture.Event{Kind: posture.EventPolicy, DeviceID: "d1", CertSHA256: certA, Device: device("d1", "quarantine", store.ComplianceCompliant)},
			want: []string{"disconnect 192.0.2.1 S1 vlan="}},
		{name: "none/device_without_sessions", ev: posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex := &recExchanger{}
			aud := &recAuditor{}
			e, err := NewEnforcer(EnforcerConfig{
				Events: &chanEvents{}, Sessions: sessions(), Sender: ex, Profiles: profiles, Auditor: aud,
				NAS:       func(name string) (NAS, bool) { return NAS{Name: name, Secret: []byte("x")}, true },
				PreferCoA: tc.coa, ReauthOnRecovery: tc.recovery,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.Enforce(context.Background(), tc.ev)
			slices.Sort(ex.reqs)
			if !slices.Equal(ex.reqs, tc.want) {
				t.Fatalf("requests = %q, want %q", ex.reqs, tc.want)
			}
			if got := len(aud.summary()); got != len(tc.want) {
				t.Fatalf("%d audit events, want %d", got, len(tc.want))
			}
		})
	}
}

func TestEnforcerRunAgainstDAS(t *testing.T) {
	t.Parallel()
	ok := newFakeDAS(t, "secret-ok", nil)
	gone := newFakeDAS(t, "secret-gone", func(d *fakeDAS) { d.nak = 503 })
	noCoA := newFakeDAS(t, "secret-nocoa", func(d *fakeDAS) { d.coaNAK = 405 })
	nases := map[string]NAS{
		"ok":    {Name: "ok", Addr: ok.addr(), Secret: []byte("secret-ok")},
		"gone":  {Name: "gone", Addr: gone.addr(), Secret: []byte("secret-gone")},
		"nocoa": {Name: "nocoa", Addr: noCoA.addr(), Secret: []byte("secret-nocoa")},
	}
	var sess []*store.Session
	for _, n := range []string{"ok", "gone", "nocoa"} {
		sess = append(sess, &store.Session{NAS: n, AcctSessionID: "S-" + strings.ToUpper(n), UserName: "d1", CallingStationID: "02-00-00-00-00-01"})
	}
	aud := &recAuditor{}
	events := &chanEvents{ch: make(chan posture.Event, 1)}
	m := &countMetrics{}
	e, err := NewEnforcer(EnforcerConfig{
		Events: events, Sessions: &memSessions{byID: map[string][]*store.Session{"d1": sess}},
		// Answered requests finish at once; the long timeout only keeps a
		// loaded machine from turning a slow answer into a retry.
		Sender:   NewSender(SenderConfig{Tries: 2, Timeout: 2 * time.Second}),
		Profiles: profileMap{"q": {Name: "q", MaxAge: time.Hour, Noncompliant: posture.ActionQuarantine, QuarantineVLAN: "666"}},
		NAS:      func(name string) (NAS, bool) { n, ok := nases[name]; return n, ok },
		Auditor:  aud, Metrics: m, PreferCoA: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, nil) }()
	events.ch <- posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "q", store.ComplianceNoncompliant), At: time.Now()}
	m.waitEnforced(t, 1)
	cancel()
	<-done
	want := []string{
		"radius.coa ack nas:ok",
		"radius.coa nak nas:gone",         // 503: already gone, no fallback
		"radius.coa nak nas:nocoa",        // 405: unsupported, then...
		"radius.disconnect ack nas:nocoa", // ...Disconnect works
	}
	sort.Strings(want)
	if got := aud.summary(); !slices.Equal(got, want) {
		t.Fatalf("audit = %q\nwant    %q", got, want)
	}
	for _, ev := range aud.evs {
		if ev.Subject != "d1" || ev.Actor != "system" {
			t.Fatalf("audit event %+v", ev)
		}
		if strings.Contains(ev.Source, "gone") && !strings.Contains(ev.Reason, "503 Session-Context-Not-Found") {
			t.Fatalf("503 reason missing: %q", ev.Reason)
		}
	}
}

// scriptedExchanger answers per "kind nas" from a table (no network).
type scriptedExchanger struct {
	mu     sync.Mutex
	script map[string]Outcome
	calls  []string
}

func (s *scriptedExchanger) Send(_ context.Context, nas NAS, req Request) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := req.Kind.String() + " " + nas.Name
	s.calls = append(s.calls, key)
	out, ok := s.script[key]
	if !ok {
		out = Outcome{Result: ResultACK}
	}
	switch out.Result {
	case ResultNAK:
		return out, &NAKError{Kind: req.Kind, Cause: out.ErrorCause}
	case ResultTimeout:
		return out, ErrTimeout
	}
	return out, nil
}

func TestEnforcerCoAFallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		coa   Outcome
		calls []string
	}{
		{"fallback/timeout", Outcome{Result: ResultTimeout}, []string{"coa ap", "disconnect ap"}},
		{"fallback/nak_unsupported_service", Outcome{Result: ResultNAK, ErrorCause: 405}, []string{"coa ap", "disconnect ap"}},
		{"none/nak_session_gone", Outcome{Result: ResultNAK, ErrorCause: 503}, []string{"coa ap"}},
		{"none/ack", Outcome{Result: ResultACK}, []string{"coa ap"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex := &scriptedExchanger{script: map[string]Outcome{"coa ap": tc.coa}}
			e, err := NewEnforcer(EnforcerConfig{
				Events: &chanEvents{}, Sender: ex, PreferCoA: true,
				Sessions: &memSessions{byID: map[string][]*store.Session{"d1": {{NAS: "ap", NASAddr: "192.0.2.9", AcctSessionID: "S"}}}},
				Profiles: profileMap{"q": {Name: "q", Noncompliant: posture.ActionQuarantine, QuarantineVLAN: "666"}},
				NAS:      func(name string) (NAS, bool) { return NAS{Name: name, Secret: []byte("x")}, true },
			})
			if err != nil {
				t.Fatal(err)
			}
			out := e.Enforce(context.Background(), posture.Event{Kind: posture.EventCompliance, DeviceID: "d1", Device: device("d1", "q", store.ComplianceNoncompliant)})
			if !slices.Equal(ex.calls, tc.calls) {
				t.Fatalf("calls %q, want %q", ex.calls, tc.calls)
			}
			if len(out) != 1 {
				t.Fatalf("%d outcomes", len(out))
			}
		})
	}
}

type countMetrics struct {
	NopMetrics
	mu       sync.Mutex
	enforced int
}

func (c *countMetrics) Enforced(string, time.Duration) {
	c.mu.Lock()
	c.enforced++
	c.mu.Unlock()
}

func (c *countMetrics) waitEnforced(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := c.enforced
		c.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("enforcement did not finish")
}

func TestEnforcerUnknownNASIsAuditedAsError(t *testing.T) {
	t.Parallel()
	aud := &recAuditor{}
	e, err := NewEnforcer(EnforcerConfig{
		Events: &chanEvents{}, Sender: &recExchanger{}, Auditor: aud,
		Sessions: &memSessions{byID: map[string][]*store.Session{"d1": {{NAS: "gone-nas", AcctSessionID: "S"}}}},
		NAS:      func(string) (NAS, bool) { return NAS{}, false },
	})
	if err != nil {
		t.Fatal(err)
	}
	out := e.Enforce(context.Background(), posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1"})
	if len(out) != 1 || out[0].Outcome.Result != ResultError || !errors.Is(out[0].Err, ErrBadRequest) {
		t.Fatalf("outcome %+v", out)
	}
	if got := aud.summary(); !slices.Equal(got, []string{"radius.disconnect error nas:gone-nas"}) {
		t.Fatalf("audit %q", got)
	}
}

// gateExchanger blocks every Send until gate is closed, counting calls.
type gateExchanger struct {
	gate  chan struct{}
	calls atomic.Int32
}

func (g *gateExchanger) Send(ctx context.Context, nas NAS, req Request) (Outcome, error) {
	g.calls.Add(1)
	<-g.gate
	return Outcome{Result: ResultACK}, nil
}

func TestEnforcerQueueOverflowCollapsesToOneDisconnect(t *testing.T) {
	t.Parallel()
	ex := &gateExchanger{gate: make(chan struct{})}
	m := &countMetrics{}
	e, err := NewEnforcer(EnforcerConfig{
		Events: &chanEvents{}, Sender: ex, Metrics: m, Workers: 1,
		Sessions: &memSessions{byID: map[string][]*store.Session{"d1": {{NAS: "ap", NASAddr: "192.0.2.1", AcctSessionID: "S"}}}},
		NAS:      func(name string) (NAS, bool) { return NAS{Name: name, Secret: []byte("x")}, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1"}
	// dispatch is what Run calls per event; calling it here keeps the
	// order exact: one in flight, then one more than fits behind it.
	for range maxPerDevice + 2 {
		e.dispatch(ctx, ev)
	}
	close(ex.gate)
	m.waitEnforced(t, 2)
	e.wg.Wait()
	if n := ex.calls.Load(); n != 2 {
		t.Fatalf("%d sends, want 2 (the first, then one collapsed resync)", n)
	}
}

// TestEnforcerSessionStarted: a session whose Accept preceded the device's
// last standing change is enforced when its Start arrives; one admitted
// after the change, one of another device, or one after the window is not.
func TestEnforcerSessionStarted(t *testing.T) {
	t.Parallel()
	sess := &store.Session{NAS: "sw", NASAddr: "127.0.0.1", AcctSessionID: "S1", DeviceID: "d1"}
	ms := &memSessions{byID: map[string][]*store.Session{"d1": {sess}}}
	ex := &recExchanger{}
	events := &chanEvents{ch: make(chan posture.Event, 4)}
	e, err := NewEnforcer(EnforcerConfig{
		Events: events, Sender: ex, Sessions: ms, RecentWindow: time.Minute,
		NAS: func(name string) (NAS, bool) { return NAS{Name: name, Addr: "127.0.0.1"}, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, ready) }()
	<-ready
	change := time.Now()
	// The change found no session when it came: the Start had not arrived.
	ms.mu.Lock()
	ms.byID["d1"] = nil
	ms.mu.Unlock()
	events.ch <- posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1", At: change}
	waitUntil := func(cond func() bool) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if cond() {
				return true
			}
		}
		return false
	}
	sent := func() int { ex.mu.Lock(); defer ex.mu.Unlock(); return len(ex.reqs) }
	// The change reached the enforcer (remembered) before the starts below.
	if !waitUntil(func() bool { e.recentMu.Lock(); defer e.recentMu.Unlock(); return len(e.recent) == 1 }) {
		t.Fatal("change not remembered")
	}
	ms.mu.Lock()
	ms.byID["d1"] = []*store.Session{sess}
	ms.mu.Unlock()

	e.SessionStarted(ctx, sess, change.Add(time.Second)) // admitted after the change: already decided on it
	e.SessionStarted(ctx, &store.Session{NAS: "sw", AcctSessionID: "X", DeviceID: "d2"}, change.Add(-time.Second))
	time.Sleep(100 * time.Millisecond)
	if n := sent(); n != 0 {
		t.Fatalf("%d requests for starts that need none", n)
	}
	e.SessionStarted(ctx, sess, change.Add(-time.Second)) // admitted before it
	if !waitUntil(func() bool { return sent() == 1 }) {
		t.Fatalf("no Disconnect for a session admitted before the change: %v", ex.reqs)
	}
	if got := ex.reqs[0]; !strings.HasPrefix(got, "disconnect 127.0.0.1 S1") {
		t.Fatalf("request %q", got)
	}
	cancel()
	<-done
	e.SessionStarted(ctx, sess, change.Add(-time.Second)) // after Run: nothing, no panic
}
