package enroll_test

import (
	"context"
	"testing"
	"time"

	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
)

// Revocations and standing written to the store directly, by no posture or
// admin code, reach the very next Decide, the CRL and the posture events
// that drive Disconnect/CoA: all of them follow the store's change feed.
func TestDirectStoreWritesReachDecideCRLAndEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	svc, err := posture.New(f.store, nil, posture.WithClock(f.clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	events, cancel := svc.Subscribe(8)
	t.Cleanup(cancel)
	bind := func(id string) *devbind.Device {
		d, err := devbind.Bind(ctx, f.ca, f.store, f.clk.now(), devbind.Request{DeviceID: id, Posture: store.ComplianceCompliant})
		if err != nil {
			t.Fatal(err)
		}
		// Decided once, so the answer below could come from a stale cache.
		if v := svc.Decide(ctx, d.Leaf); !v.Allow {
			t.Fatalf("%s before any change: Decide = %+v", id, v)
		}
		if _, ok := svc.DecideCached(d.Leaf); !ok {
			t.Fatalf("%s: the verdict was not cached", id)
		}
		return d
	}
	a, b := bind("dev-a"), bind("dev-b")
	h := f.svc.PlainHandler()
	if crl := fetchCRL(t, f, h); len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("fresh CRL lists %d certs", len(crl.RevokedCertificateEntries))
	}
	wantEvent := func(kind posture.EventKind, device, source string) posture.Event {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Kind != kind || ev.DeviceID != device || ev.Source != source {
				t.Fatalf("event %+v, want %s of %s from %s", ev, kind, device, source)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", kind)
		}
		return posture.Event{}
	}
	wantDecide := func(d *devbind.Device, want posture.Reason) {
		t.Helper()
		if v := svc.Decide(ctx, d.Leaf); v.Allow || v.Reason != want {
			t.Fatalf("%s: Decide = %+v, want %s", d.ID, v, want)
		}
	}

	if _, err := f.store.RevokeCert(ctx, a.Binding.SHA256, store.Revocation{At: f.clk.now(), Reason: 1, Actor: "admin:script"}, nil); err != nil {
		t.Fatal(err)
	}
	wantDecide(a, posture.ReasonCertRevoked)
	if got := serials(fetchCRL(t, f, h)); len(got) != 1 || got[a.Binding.Serial] != 1 {
		t.Fatalf("CRL after revoking dev-a's cert = %v", got)
	}
	if ev := wantEvent(posture.EventCertRevoked, "dev-a", "admin:script"); ev.CertSHA256 != a.Binding.SHA256 {
		t.Fatalf("cert revoked event names %s, want %s", ev.CertSHA256, a.Binding.SHA256)
	}

	_, err = f.store.UpdateDevice(ctx, "dev-b", func(d *store.Device) error {
		d.Status = store.DeviceQuarantined
		return nil
	}, &store.AuditEvent{Time: f.clk.now(), Actor: "admin:script", Action: "device.quarantine", Subject: "dev-b", Result: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	wantDecide(b, posture.ReasonDeviceQuarantined)
	if ev := wantEvent(posture.EventQuarantined, "dev-b", "admin:script"); ev.Device == nil || ev.Device.Status != store.DeviceQuarantined {
		t.Fatalf("quarantine event carries device %+v", ev.Device)
	}

	_, err = f.store.UpdateDevice(ctx, "dev-b", func(d *store.Device) error {
		d.Posture = store.Posture{State: store.ComplianceNoncompliant, Source: "jamf", UpdatedAt: f.clk.now()}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(posture.EventCompliance, "dev-b", "jamf")

	if _, _, err := f.store.RevokeDevice(ctx, "dev-b", store.Revocation{At: f.clk.now(), Reason: 5, Actor: "admin:script"}, nil); err != nil {
		t.Fatal(err)
	}
	wantDecide(b, posture.ReasonDeviceRevoked)
	if got := serials(fetchCRL(t, f, h)); len(got) != 2 || got[ca.SerialString(b.Leaf.SerialNumber)] != 5 {
		t.Fatalf("CRL after revoking dev-b = %v, want both certs", got)
	}
	wantEvent(posture.EventDeviceRevoked, "dev-b", "admin:script")
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %+v: the device revocation covers its certs", ev)
	default:
	}
}
