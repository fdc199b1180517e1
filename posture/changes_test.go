package posture_test

import (
	"testing"
	"time"

	"hardbound/enroll/devbind"
	"hardbound/store"
)

// StandingChangedSince answers from the change feed: a quarantine, a
// compliance change or a revocation by any writer counts, a refreshed
// report with the same state does not, and nothing before the Service
// started is trusted.
func TestStandingChangedSince(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "chg"})
	other := f.bind(t, devbind.Request{DeviceID: "other"})
	f.clock.add(time.Second)
	granted := f.clock.now()
	if f.svc.StandingChangedSince(d.ID, granted.Add(-time.Hour)) != true {
		t.Fatal("a time before the Service started was trusted")
	}
	f.clock.add(time.Second)
	if f.svc.StandingChangedSince(d.ID, granted) {
		t.Fatal("changed without a change")
	}
	set := func(t *testing.T, id string, mut func(*store.Device)) {
		t.Helper()
		if _, err := f.st.UpdateDevice(f.ctx, id, func(d *store.Device) error { mut(d); return nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The same state reported again is not a standing change.
	set(t, d.ID, func(d *store.Device) { d.Posture.UpdatedAt = f.clock.now() })
	if f.svc.StandingChangedSince(d.ID, granted) {
		t.Fatal("a refreshed report with the same state counted as a change")
	}
	set(t, d.ID, func(d *store.Device) { d.Status = store.DeviceQuarantined })
	if !f.svc.StandingChangedSince(d.ID, granted) {
		t.Fatal("a quarantine written to the store was not seen")
	}
	if f.svc.StandingChangedSince(other.ID, granted) {
		t.Fatal("another device's change counted")
	}
	f.clock.add(time.Second)
	later := f.clock.now()
	f.clock.add(time.Second)
	if f.svc.StandingChangedSince(d.ID, later) {
		t.Fatal("a change before the grant counted")
	}
	if _, err := f.svc.RevokeCert(f.ctx, other.Binding.Serial, 1, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if !f.svc.StandingChangedSince(other.ID, later) {
		t.Fatal("a certificate revocation was not seen")
	}
}
