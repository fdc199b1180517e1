package posture_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
)

// After Warm every binding and device is answered from memory: a login
// storm after a restart costs no store reads.
func TestWarmServesEveryDeviceFromCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	var leaves []*devbind.Device
	for i := range 5 {
		leaves = append(leaves, f.bind(t, devbind.Request{DeviceID: fmt.Sprintf("warm-%d", i)}))
	}
	unattested := f.bind(t, devbind.Request{DeviceID: "warm-none", Format: "none", Profile: "migration"})
	noncompliant := f.bind(t, devbind.Request{DeviceID: "warm-bad", Posture: store.ComplianceNoncompliant})
	m := &countingMetrics{decisions: map[posture.Reason]int{}}
	svc, err := posture.New(f.st, profiles, posture.WithMetrics(m), posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Warm(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(leaves, unattested) {
		if v := svc.Decide(f.ctx, d.Leaf); !v.Allow || v.Reason != posture.ReasonOK {
			t.Errorf("%s: Decide = %+v, want ok", d.ID, v)
		}
	}
	if v := svc.Decide(f.ctx, noncompliant.Leaf); v.Allow || v.Reason != posture.ReasonNoncompliant {
		t.Errorf("noncompliant: Decide = %+v", v)
	}
	if m.miss != 0 || m.hit != 7 {
		t.Errorf("cache misses %d hits %d after Warm, want 0 and 7", m.miss, m.hit)
	}
}

// Writes after Warm still invalidate what it loaded.
func TestWarmedEntriesAreInvalidatedByWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "warm-q"})
	d2 := f.bind(t, devbind.Request{DeviceID: "warm-r"})
	if err := f.svc.Warm(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Quarantine(f.ctx, d.ID, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RevokeCert(f.ctx, d2.Binding.SHA256, store.Revocation{Reason: 1, Actor: "admin:test"}, nil); err != nil {
		t.Fatal(err)
	}
	if v := f.svc.Decide(f.ctx, d.Leaf); v.Allow || v.Reason != posture.ReasonDeviceQuarantined {
		t.Errorf("quarantined after Warm: Decide = %+v", v)
	}
	if v := f.svc.Decide(f.ctx, d2.Leaf); v.Allow || v.Reason != posture.ReasonCertRevoked {
		t.Errorf("revoked after Warm: Decide = %+v", v)
	}
}

func TestWarmStopsWhenContextIsDone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.bind(t, devbind.Request{DeviceID: "warm-c"})
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if err := f.svc.Warm(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Warm = %v, want context.Canceled", err)
	}
	// Decide loads on demand as before.
	if v := f.svc.Decide(f.ctx, d.Leaf); !v.Allow {
		t.Errorf("Decide = %+v", v)
	}
}

// A cached binding carries its attestation's format; rewriting the
// attestation in the store, by any writer, drops the device's bindings.
func TestPutAttestationInvalidatesBindingFormat(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	d := f.bind(t, devbind.Request{DeviceID: "att-rewrite", Profile: "strict", Format: "tpm", Posture: store.ComplianceCompliant})
	if v := f.svc.Decide(f.ctx, d.Leaf); v.Reason != posture.ReasonAttestationNotAllowed {
		t.Fatalf("tpm under strict: Decide = %+v", v)
	}
	a, err := f.st.GetAttestation(f.ctx, d.Binding.AttestationID)
	if err != nil {
		t.Fatal(err)
	}
	a.Format = "apple"
	if err := f.st.PutAttestation(f.ctx, a); err != nil {
		t.Fatal(err)
	}
	if v := f.svc.Decide(f.ctx, d.Leaf); !v.Allow || v.Reason != posture.ReasonOK {
		t.Errorf("apple under strict: Decide = %+v", v)
	}
}

func TestNewRejectsNonPositiveCacheSize(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := posture.New(f.st, nil, posture.WithCacheSize(0)); err == nil {
		t.Error("New(WithCacheSize(0)) succeeded")
	}
}

// Writes racing with Warm win: Warm never caches a standing older than a
// write that completed (the shard generation check).
func TestWarmConcurrentWithWritesKeepsWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, profiles...)
	var devs []*devbind.Device
	for i := range 40 {
		devs = append(devs, f.bind(t, devbind.Request{DeviceID: fmt.Sprintf("race-%02d", i)}))
	}
	svc, err := posture.New(f.st, profiles, posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Warm(f.ctx) }()
	for _, d := range devs[:20] {
		if _, err := svc.Quarantine(f.ctx, d.ID, "admin:test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		want := posture.ReasonOK
		if i < 20 {
			want = posture.ReasonDeviceQuarantined
		}
		if v := svc.Decide(f.ctx, d.Leaf); v.Reason != want {
			t.Errorf("%s: Decide = %s, want %s", d.ID, v.Reason, want)
		}
	}
}
