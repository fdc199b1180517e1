package audithold_test

import (
	"testing"

	"hardbound/store"
	"hardbound/store/audithold"
)

// TestStoreAppendsThroughHold: a store wrapped by NewStore holds its
// AppendAudit and AppendAudits while the database is away, in order behind
// what the Holder already held, and passes every other call through.
func TestStoreAppendsThroughHold(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	h, err := audithold.New(st, audithold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := audithold.NewStore(st, h)
	if err := s.PutDevice(ctx, &store.Device{ID: "d1", Status: store.DeviceActive}); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	if err := h.AppendAudit(ctx, ev("radius")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, ev("refusal")); err != nil {
		t.Fatalf("AppendAudit through the store while away: %v, want held", err)
	}
	if err := s.AppendAudits(ctx, []*store.AuditEvent{ev("refusal-2"), ev("refusal-3")}); err != nil {
		t.Fatalf("AppendAudits through the store while away: %v, want held", err)
	}
	if d, err := s.GetDevice(ctx, "d1"); err != nil || d.ID != "d1" {
		t.Fatalf("GetDevice through the wrapper: %+v, %v", d, err)
	}
	if h.Held() != 4 {
		t.Fatalf("%d held, want 4", h.Held())
	}
	st.down.Store(false)
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := subjects(t, st), []string{"radius", "refusal", "refusal-2", "refusal-3"}; !equal(got, want) {
		t.Fatalf("chain %q, want %q", got, want)
	}
}
