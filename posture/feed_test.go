package posture_test

import (
	"bytes"
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
)

// A restore replaces the store's contents behind every cache: the reset
// it announces drops them, negative entries included.
func TestRestoreDropsTheCaches(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "restored"})
	var backup bytes.Buffer
	if err := f.st.Backup(f.ctx, &backup); err != nil {
		t.Fatal(err)
	}
	empty := badgertest.Memory(t, badger.WithClock(f.clock.now))
	svc, err := posture.New(empty, profiles, posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if v := svc.Decide(f.ctx, d.Leaf); v.Reason != posture.ReasonUnknownCert {
		t.Fatalf("Decide on the empty store = %+v", v)
	}
	if _, ok := svc.DecideCached(d.Leaf); !ok {
		t.Fatal("the unknown certificate was not cached")
	}
	if err := empty.Restore(f.ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if v := svc.Decide(f.ctx, d.Leaf); !v.Allow || v.Reason != posture.ReasonOK {
		t.Fatalf("Decide after Restore = %+v, want ok", v)
	}
}

// After Close the Service no longer follows the store: nothing drops what
// it cached and nothing is published.
func TestCloseEndsTheSubscription(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "closed"})
	svc, err := posture.New(f.st, profiles, posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := svc.Subscribe(4)
	defer cancel()
	want := svc.Decide(f.ctx, d.Leaf)
	svc.Close()
	svc.Close() // a second Close is harmless
	if _, err := f.st.UpdateDevice(f.ctx, d.ID, func(d *store.Device) error {
		d.Status = store.DeviceQuarantined
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if v, ok := svc.DecideCached(d.Leaf); !ok || v != want {
		t.Fatalf("DecideCached after Close = %+v, %v; want the cached %+v", v, ok, want)
	}
	select {
	case ev := <-events:
		t.Fatalf("event %+v after Close", ev)
	default:
	}
}

// The events follow what changed, not who wrote it: a status set back to
// what it was, or a write that changes neither status nor compliance,
// publishes nothing.
func TestEventsFollowChangesOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "quiet", Posture: store.ComplianceCompliant})
	events, cancel := f.svc.Subscribe(8)
	defer cancel()
	for _, fn := range []func(*store.Device) error{
		func(d *store.Device) error { d.Aliases = map[string]string{"serial": "SN-Q"}; return nil },
		func(d *store.Device) error { d.Status = store.DeviceActive; return nil },
		func(d *store.Device) error { d.Posture.Source = "intune"; return nil },
	} {
		if _, err := f.st.UpdateDevice(f.ctx, d.ID, fn, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Release(f.ctx, d.ID, "admin:t"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Fatalf("event %+v for a write that changed no standing", ev)
	default:
	}
	if _, err := f.svc.Quarantine(f.ctx, d.ID, "admin:t"); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Kind != posture.EventQuarantined || ev.Source != "admin:t" {
		t.Fatalf("event %+v, want quarantined from admin:t", ev)
	}
}
