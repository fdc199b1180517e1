package posture_test

import (
	"context"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/store/badger/badgertest"

	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	ctx   context.Context
	st    store.Store
	ca    *ca.CA
	svc   *posture.Service
	clock *clock
}

func newFixture(t testing.TB, profiles ...posture.Profile) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	c := catest.New(t, dir, ca.WithClock(clk.now))
	st := badgertest.Memory(t, badger.WithClock(clk.now))
	svc, err := posture.New(st, profiles, posture.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ctx: ctx, st: st, ca: c, svc: svc, clock: clk}
}

func (f *fixture) bind(t *testing.T, r devbind.Request) *devbind.Device {
	t.Helper()
	d, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var profiles = []posture.Profile{
	{Name: "default"},
	{Name: "strict", Formats: []string{"apple"}, MaxAge: time.Hour},
	{Name: "quarantining", MaxAge: time.Hour, Noncompliant: posture.ActionQuarantine, Unknown: posture.ActionQuarantine,
		QuarantineVLAN: "999", VLAN: "20"},
	{Name: "migration", Formats: []string{"none", "tpm"}},
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req       devbind.Request
		mutate    func(t *testing.T, f *fixture, d *devbind.Device)
		wantAllow bool
		want      posture.Reason
		wantVLAN  string
	}{
		{name: "accept/ok", req: devbind.Request{}, wantAllow: true, want: posture.ReasonOK},
		{name: "accept/ok-with-vlan", req: devbind.Request{Profile: "quarantining", Posture: store.ComplianceCompliant},
			wantAllow: true, want: posture.ReasonOK, wantVLAN: "20"},
		{name: "reject/unknown_cert", req: devbind.Request{NoBinding: true}, want: posture.ReasonUnknownCert},
		{name: "reject/unattested", req: devbind.Request{Format: "none"}, want: posture.ReasonUnattested},
		{name: "accept/unattested-allowed", req: devbind.Request{Format: "none", Profile: "migration"}, wantAllow: true, want: posture.ReasonOK},
		{name: "reject/attestation_not_allowed", req: devbind.Request{Format: "tpm", Profile: "strict", Posture: store.ComplianceCompliant},
			want: posture.ReasonAttestationNotAllowed},
		{name: "reject/cert_revoked", req: devbind.Request{}, mutate: func(t *testing.T, f *fixture, d *devbind.Device) {
			if _, err := f.svc.RevokeCert(f.ctx, d.Binding.Serial, 1, "admin:test"); err != nil {
				t.Fatal(err)
			}
		}, want: posture.ReasonCertRevoked},
		{name: "reject/cert_expired", req: devbind.Request{Validity: 2 * time.Hour}, mutate: func(t *testing.T, f *fixture, d *devbind.Device) {
			f.clock.add(3 * time.Hour)
		}, want: posture.ReasonCertExpired},
		{name: "reject/device_revoked", req: devbind.Request{}, mutate: func(t *testing.T, f *fixture, d *devbind.Device) {
			if _, _, err := f.svc.RevokeDevice(f.ctx, d.ID, 0, "admin:test"); err != nil {
				t.Fatal(err)
			}
		}, want: posture.ReasonDeviceRevoked},
		{name: "reject/device_quarantined", req: devbind.Request{}, mutate: func(t *testing.T, f *fixture, d *devbind.Device) {
			if _, err := f.svc.Quarantine(f.ctx, d.ID, "admin:test"); err != nil {
				t.Fatal(err)
			}
		}, want: posture.ReasonDeviceQuarantined},
		{name: "quarantine/device_quarantined", req: devbind.Request{Profile: "quarantining", Posture: store.ComplianceCompliant},
			mutate: func(t *testing.T, f *fixture, d *devbind.Device) {
				if _, err := f.svc.Quarantine(f.ctx, d.ID, "admin:test"); err != nil {
					t.Fatal(err)
				}
			}, wantAllow: true, want: posture.ReasonDeviceQuarantined, wantVLAN: "999"},
		{name: "reject/noncompliant", req: devbind.Request{Posture: store.ComplianceNoncompliant}, want: posture.ReasonNoncompliant},
		{name: "quarantine/noncompliant", req: devbind.Request{Profile: "quarantining", Posture: store.ComplianceNoncompliant},
			wantAllow: true, want: posture.ReasonNoncompliant, wantVLAN: "999"},
		{name: "reject/posture_unknown", req: devbind.Request{Profile: "strict", Format: "apple"}, want: posture.ReasonPostureUnknown},
		{name: "reject/posture_stale", req: devbind.Request{Profile: "strict", Format: "apple", Posture: store.ComplianceCompliant},
			mutate: func(t *testing.T, f *fixture, d *devbind.Device) { f.clock.add(61 * time.Minute) }, want: posture.ReasonPostureStale},
		{name: "accept/posture-fresh", req: devbind.Request{Profile: "strict", Format: "apple", Posture: store.ComplianceCompliant},
			mutate: func(t *testing.T, f *fixture, d *devbind.Device) { f.clock.add(59 * time.Minute) }, wantAllow: true, want: posture.ReasonOK},
		{name: "accept/released", req: devbind.Request{}, mutate: func(t *testing.T, f *fixture, d *devbind.Device) {
			if _, err := f.svc.Quarantine(f.ctx, d.ID, "admin:test"); err != nil {
				t.Fatal(err)
			}
			f.svc.Decide(f.ctx, d.Leaf) // warm the cache with the quarantined standing
			if _, err := f.svc.Release(f.ctx, d.ID, "admin:test"); err != nil {
				t.Fatal(err)
			}
		}, wantAllow: true, want: posture.ReasonOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, profiles...)
			tc.req.DeviceID = "dev-" + tc.name
			d := f.bind(t, tc.req)
			// Decide once before the change so the test proves invalidation.
			f.svc.Decide(f.ctx, d.Leaf)
			if tc.mutate != nil {
				tc.mutate(t, f, d)
			}
			v := f.svc.Decide(f.ctx, d.Leaf)
			if v.Allow != tc.wantAllow || v.Reason != tc.want || v.VLAN != tc.wantVLAN {
				t.Fatalf("Decide = allow %v reason %q vlan %q, want allow %v reason %q vlan %q",
					v.Allow, v.Reason, v.VLAN, tc.wantAllow, tc.want, tc.wantVLAN)
			}
			if tc.want != posture.ReasonUnknownCert && v.DeviceID != d.ID {
				t.Errorf("DeviceID = %q, want %q", v.DeviceID, d.ID)
			}
			if v.Allow && (v.SessionTimeout <= 0 || v.SessionTimeout > time.Until(d.Leaf.NotAfter)+time.Hour*24) {
				t.Errorf("SessionTimeout = %v", v.SessionTimeout)
			}
		})
	}
}

func TestSessionTimeoutCaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, posture.Profile{Name: "default", MaxAge: 2 * time.Hour}, posture.Profile{Name: "short", SessionTimeout: 10 * time.Minute})
	d := f.bind(t, devbind.Request{DeviceID: "a", Posture: store.ComplianceCompliant, Validity: 24 * time.Hour})
	f.clock.add(30 * time.Minute)
	if v := f.svc.Decide(f.ctx, d.Leaf); v.SessionTimeout != 90*time.Minute {
		t.Errorf("posture max age cap: SessionTimeout = %v, want 1h30m", v.SessionTimeout)
	}
	d2 := f.bind(t, devbind.Request{DeviceID: "b", Profile: "short", Validity: 24 * time.Hour})
	if v := f.svc.Decide(f.ctx, d2.Leaf); v.SessionTimeout != 10*time.Minute {
		t.Errorf("profile cap: SessionTimeout = %v, want 10m", v.SessionTimeout)
	}
	d3 := f.bind(t, devbind.Request{DeviceID: "c", Profile: "short", Validity: 2 * time.Hour})
	f.clock.add(115 * time.Minute)
	if v := f.svc.Decide(f.ctx, d3.Leaf); v.SessionTimeout > 5*time.Minute+time.Second || !v.Allow {
		t.Errorf("cert life cap: SessionTimeout = %v (allow %v), want <= ~5m", v.SessionTimeout, v.Allow)
	}
}

func TestEventsAndAudit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.bind(t, devbind.Request{DeviceID: "ev"})
	events, cancel := f.svc.Subscribe(16)
	defer cancel()
	steps := []struct {
		do   func() error
		kind posture.EventKind
	}{
		{func() error {
			_, err := f.svc.SetCompliance(f.ctx, d.ID, store.ComplianceNoncompliant, "jamf", "mdm:jamf")
			return err
		}, posture.EventCompliance},
		{func() error { _, err := f.svc.Quarantine(f.ctx, d.ID, "admin:t"); return err }, posture.EventQuarantined},
		{func() error { _, err := f.svc.Release(f.ctx, d.ID, "admin:t"); return err }, posture.EventReleased},
		{func() error { _, err := f.svc.RevokeCert(f.ctx, d.Binding.Serial, 4, "admin:t"); return err }, posture.EventCertRevoked},
		{func() error { _, _, err := f.svc.RevokeDevice(f.ctx, d.ID, 0, "admin:t"); return err }, posture.EventDeviceRevoked},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		select {
		case ev := <-events:
			if ev.Kind != s.kind || ev.DeviceID != d.ID {
				t.Errorf("step %d: event %+v, want kind %s", i, ev, s.kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("step %d: no event", i)
		}
	}
	// A repeated identical report refreshes the time but publishes nothing.
	if _, err := f.svc.SetCompliance(f.ctx, d.ID, store.ComplianceNoncompliant, "jamf", "mdm:jamf"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Errorf("unexpected event %+v", ev)
	default:
	}
	// A revoked device cannot be released.
	if _, err := f.svc.Release(f.ctx, d.ID, "admin:t"); err == nil {
		t.Error("release of a revoked device succeeded")
	}
	evs, err := f.st.TailAudit(f.ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, e := range evs {
		actions[e.Action] = true
	}
	for _, a := range []string{"enroll.dev", "posture.set", "device.quarantine", "device.release", "cert.revoke", "device.revoke"} {
		if !actions[a] {
			t.Errorf("audit chain lacks %s (have %v)", a, actions)
		}
	}
	if res, err := f.st.VerifyAudit(f.ctx); err != nil || !res.OK {
		t.Errorf("VerifyAudit = %+v, %v", res, err)
	}
	if _, err := f.svc.SetCompliance(f.ctx, d.ID, "sortof", "x", "y"); err == nil {
		t.Error("bad state accepted")
	}
}

func TestResolveDevice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.bind(t, devbind.Request{DeviceID: "SER123"})
	if _, err := f.st.UpdateDevice(f.ctx, "SER123", func(d *store.Device) error {
		d.Aliases = map[string]string{"udid": "UDID-1"}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ kind, value, want string }{
		{"id", "SER123", "SER123"}, {"udid", "UDID-1", "SER123"}, {"udid", "nope", ""}, {"id", "", ""},
	} {
		got, err := f.svc.ResolveDevice(f.ctx, tc.kind, tc.value)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("ResolveDevice(%s,%s) = %q, %v; want %q", tc.kind, tc.value, got, err, tc.want)
		}
	}
}

func TestNewRejectsBadProfiles(t *testing.T) {
	t.Parallel()
	st, err := badger.Open(context.Background(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, ps := range map[string][]posture.Profile{
		"fail/empty-name": {{}},
		"fail/duplicate":  {{Name: "a"}, {Name: "a"}},
		"fail/action":     {{Name: "a", Unknown: "allow"}},
	} {
		if _, err := posture.New(st, ps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type countingMetrics struct {
	mu        sync.Mutex
	hit, miss int
	decisions map[posture.Reason]int
}

func (m *countingMetrics) Decision(r posture.Reason, _ bool) {
	m.mu.Lock()
	m.decisions[r]++
	m.mu.Unlock()
}
func (m *countingMetrics) PostureChange(string, store.Compliance) {}
func (m *countingMetrics) EventDropped()                          {}
func (m *countingMetrics) UnavailableAnswer(posture.OutageResult) {}
func (m *countingMetrics) CacheLookup(hit bool) {
	m.mu.Lock()
	if hit {
		m.hit++
	} else {
		m.miss++
	}
	m.mu.Unlock()
}

// A certificate without a binding is answered from the negative cache after
// the first lookup, so a flood of unbound certs costs no disk reads.
func TestUnknownCertCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := &countingMetrics{decisions: map[posture.Reason]int{}}
	svc, err := posture.New(f.st, nil, posture.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{Raw: []byte("not a binding"), NotAfter: time.Now().Add(time.Hour)}
	for range 3 {
		if v := svc.Decide(f.ctx, leaf); v.Reason != posture.ReasonUnknownCert || v.Allow {
			t.Fatalf("Decide = %+v", v)
		}
	}
	if m.miss != 1 || m.hit != 2 || m.decisions[posture.ReasonUnknownCert] != 3 {
		t.Errorf("cache misses %d hits %d decisions %v; want 1, 2, 3 unknown_cert", m.miss, m.hit, m.decisions)
	}
}

// DecideCached answers only from memory: nothing before the first Decide,
// the same verdict as Decide afterwards, nothing again once a write path
// invalidated the device, and a cached unknown certificate is an answer.
func TestDecideCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := &countingMetrics{decisions: map[posture.Reason]int{}}
	svc, err := posture.New(f.st, nil, posture.WithMetrics(m), posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	d, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), devbind.Request{DeviceID: "dev-cached", Posture: store.ComplianceCompliant})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := svc.DecideCached(d.Leaf); ok {
		t.Fatalf("cold cache answered %+v", v)
	}
	if m.hit+m.miss != 0 || len(m.decisions) != 0 {
		t.Fatalf("a cache-only miss was counted: hits %d misses %d decisions %v", m.hit, m.miss, m.decisions)
	}
	want := svc.Decide(f.ctx, d.Leaf)
	got, ok := svc.DecideCached(d.Leaf)
	if !ok || got != want || !got.Allow {
		t.Fatalf("DecideCached = %+v, %v; Decide said %+v", got, ok, want)
	}
	if m.miss != 1 || m.hit != 1 || m.decisions[posture.ReasonOK] != 2 {
		t.Errorf("cache misses %d hits %d decisions %v; want 1, 1, 2 ok", m.miss, m.hit, m.decisions)
	}
	if _, err := svc.Quarantine(f.ctx, d.ID, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if v, ok := svc.DecideCached(d.Leaf); ok {
		t.Fatalf("answered %+v after the device changed", v)
	}
	if v := svc.Decide(f.ctx, d.Leaf); v.Reason != posture.ReasonDeviceQuarantined {
		t.Fatalf("Decide after quarantine = %+v", v)
	}
	if v, ok := svc.DecideCached(d.Leaf); !ok || v.Reason != posture.ReasonDeviceQuarantined {
		t.Fatalf("DecideCached after quarantine = %+v, %v", v, ok)
	}

	unknown := &x509.Certificate{Raw: []byte("not a binding"), NotAfter: time.Now().Add(time.Hour)}
	if _, ok := svc.DecideCached(unknown); ok {
		t.Fatal("unknown certificate answered before any lookup")
	}
	svc.Decide(f.ctx, unknown)
	if v, ok := svc.DecideCached(unknown); !ok || v.Reason != posture.ReasonUnknownCert || v.Allow {
		t.Fatalf("cached unknown certificate = %+v, %v", v, ok)
	}
}
