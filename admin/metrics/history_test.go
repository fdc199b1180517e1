package metrics

import (
	"testing"
	"time"
)

func TestHistoryRatesAndTotalsFromTheRegistry(t *testing.T) {
	t.Parallel()
	r := New()
	rad := r.RADIUS()
	h := r.NewHistory(10*time.Second, 30*time.Second, "hardbound_radius_rejects_total", "hardbound_radius_auth_duration_seconds_count", "hardbound_radius_conversations")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h.Sample(t0)
	for range 10 {
		rad.Reject("revoked")
		rad.AuthDuration("reject", time.Millisecond)
	}
	for range 20 {
		rad.AuthDuration("accept", time.Millisecond)
	}
	rad.Conversations(3)
	h.Sample(t0.Add(10 * time.Second))
	rad.Reject("quarantined")
	h.Sample(t0.Add(20 * time.Second))

	rej := h.Rates("hardbound_radius_rejects_total", nil, "reason")
	if p := rej["revoked"]; len(p) != 2 || p[0].V != 1 || p[1].V != 0 {
		t.Errorf("revoked rate = %+v, want [1 0]", p)
	}
	if p := rej["quarantined"]; len(p) != 2 || p[0].V != 0 || p[1].V != 0.1 {
		t.Errorf("quarantined rate = %+v, want [0 0.1] (padded from the first interval)", p)
	}
	auth := h.Rates("hardbound_radius_auth_duration_seconds_count", nil, "")
	if p := auth[""]; len(p) != 2 || p[0].V != 3 {
		t.Errorf("auth/s = %+v, want 3 then 0", p)
	}
	acc := h.Rates("hardbound_radius_auth_duration_seconds_count", map[string]string{"result": "accept"}, "")
	if p := acc[""]; len(p) != 2 || p[0].V != 2 {
		t.Errorf("accept/s = %+v", p)
	}
	if tot := h.Totals("hardbound_radius_rejects_total", nil, "reason"); tot["revoked"] != 10 || tot["quarantined"] != 1 {
		t.Errorf("totals = %v", tot)
	}
	if g := Groups(h.Totals("hardbound_radius_rejects_total", nil, "reason")); len(g) < 2 || g[0] != "revoked" {
		t.Errorf("groups = %v", g)
	}
	if v := h.Values("hardbound_radius_conversations", nil, ""); len(v[""]) != 3 || v[""][2].V != 3 {
		t.Errorf("conversations = %+v", v)
	}
	// The window keeps span/interval+1 samples.
	for i := 3; i < 10; i++ {
		h.Sample(t0.Add(time.Duration(i) * 10 * time.Second))
	}
	if v := h.Values("hardbound_radius_conversations", nil, ""); len(v[""]) != 4 {
		t.Errorf("kept %d samples, want 4", len(v[""]))
	}
}

func TestNamesListsEveryFamilyAndOpsGauges(t *testing.T) {
	t.Parallel()
	r := New()
	r.CertExpiry("issuing", time.Unix(2000000000, 0))
	r.AuditVerified(true, 42, time.Unix(1700000000, 0))
	names := map[string]bool{}
	for _, n := range r.Names() {
		names[n] = true
	}
	for _, want := range []string{"hardbound_radius_rejects_total", "hardbound_radius_auth_duration_seconds_bucket",
		"hardbound_radius_auth_duration_seconds_count", "hardbound_enroll_enrollments_total", "hardbound_dynauth_answers_total",
		"hardbound_cert_expiry_timestamp_seconds", "hardbound_audit_chain_ok", "process_start_time_seconds"} {
		if !names[want] {
			t.Errorf("Names lacks %s", want)
		}
	}
	if names["hardbound_radius_auth_duration_seconds"] {
		t.Error("a histogram is listed without its suffixes")
	}
}

// BenchmarkHistorySample is one sample of the console's families from a
// registry with every adapter's series in use.
func BenchmarkHistorySample(b *testing.B) {
	r := New()
	rad := r.RADIUS()
	for _, reason := range []string{"ok", "cert_revoked", "noncompliant", "device_quarantined", "posture_stale"} {
		rad.Reject(reason)
	}
	rad.AuthDuration("accept", time.Millisecond)
	rad.AuthDuration("reject", time.Millisecond)
	h := r.NewHistory(10*time.Second, time.Hour, "hardbound_radius_rejects_total", "hardbound_radius_auth_duration_seconds_count",
		"hardbound_enroll_enrollments_total", "hardbound_dynauth_answers_total", "hardbound_radius_conversations")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(10 * time.Second)
		h.Sample(now)
	}
}

// BenchmarkHistoryRates is what one overview page costs per chart: the
// rates of a family over a full hour (360 samples).
func BenchmarkHistoryRates(b *testing.B) {
	r := New()
	rad := r.RADIUS()
	h := r.NewHistory(10*time.Second, time.Hour, "hardbound_radius_rejects_total")
	now := time.Now()
	for i := range 361 {
		rad.Reject([]string{"cert_revoked", "noncompliant", "device_quarantined"}[i%3])
		now = now.Add(10 * time.Second)
		h.Sample(now)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(h.Rates("hardbound_radius_rejects_total", nil, "reason")) != 3 {
			b.Fatal("want 3 groups")
		}
	}
}
