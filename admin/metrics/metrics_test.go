package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/limit"
	"hardbound/posture"
	"hardbound/radius/dynauth"
	"hardbound/store"
)

// downSince is a store that lost its database at a time.
type downSince time.Time

func (d downSince) Unavailable() (time.Time, bool) { return time.Time(d), true }

func TestRegistryExposesAdapters(t *testing.T) {
	t.Parallel()
	r := New()
	r.Posture().Decision(posture.ReasonNoncompliant, false)
	r.Posture().CacheLookup(true)
	r.Posture().UnavailableAnswer(posture.OutageCached)
	r.StoreAvailability(downSince(time.Unix(1700000000, 0)))
	rm := r.RADIUS()
	if r.RADIUS() != rm {
		t.Fatal("RADIUS adapter created twice")
	}
	rm.Request("access_request", "accept")
	rm.Drop("missing_message_authenticator")
	rm.AuthDuration("accept", 3*time.Millisecond)
	rm.Handshake("1.3", true)
	rm.ChainCache(true)
	e := r.Enroll()
	e.Enrollment("acme", "tpm", "ok")
	e.Refused(limit.KindIP)
	e.Request("simplereenroll", "ok")
	e.Refusal("channel_binding_mismatch")
	e.Response("hold")
	e.CacheLookup(false)
	e.SignerRotation("ok")
	d := r.Dynauth()
	d.Answered(dynauth.Disconnect, dynauth.ResultACK)
	d.PostureChange("jamf", store.ComplianceNoncompliant)
	a := r.AuditExport()
	a.ExportLag("siem", 12)
	a.ExportDelivered("siem", 3, time.Unix(1700000000, 0))
	a.ExportError("siem")
	r.AuditHold().Held(7, 700)
	r.AuditHold().Dropped(2)

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`hardbound_posture_decisions_total{allow="false",reason="noncompliant"} 1`,
		`hardbound_posture_decisions_total{allow="false",reason="posture_stale"} 0`, // pre-registered
		`hardbound_store_unavailable_answers_total{result="cached"} 1`,
		`hardbound_store_unavailable_answers_total{result="rejected"} 0`,
		"hardbound_store_unavailable 1",
		"hardbound_store_unavailable_since_seconds 1.7e+09",
		`hardbound_radius_requests_total{result="accept",type="access_request"} 1`,
		`hardbound_radius_drops_total{cause="missing_message_authenticator"} 1`,
		`hardbound_radius_auth_duration_seconds_count{result="accept"} 1`,
		`hardbound_eaptls_handshakes_total{result="ok",version="1.3"} 1`,
		`hardbound_eaptls_chain_cache_total{result="hit"} 1`,
		`hardbound_enroll_enrollments_total{format="tpm",protocol="acme",result="ok"} 1`,
		`hardbound_enroll_rate_limited_total{kind="ip"} 1`,
		`hardbound_est_requests_total{op="simplereenroll",result="ok"} 1`,
		`hardbound_est_refusals_total{reason="channel_binding_mismatch"} 1`,
		`hardbound_ocsp_responses_total{status="hold"} 1`,
		`hardbound_ocsp_cache_lookups_total{result="miss"} 1`,
		`hardbound_ocsp_signer_rotations_total{result="ok"} 1`,
		`hardbound_dynauth_answers_total{code="disconnect",result="ack"} 1`,
		`hardbound_posture_mdm_reports_total{source="jamf",state="noncompliant"} 1`,
		`hardbound_audit_export_lag_events{sink="siem"} 12`,
		`hardbound_audit_export_last_success_timestamp_seconds{sink="siem"} 1.7e+09`,
		`hardbound_audit_export_events_total{sink="siem"} 3`,
		`hardbound_audit_export_errors_total{sink="siem"} 1`,
		"hardbound_audit_held_events 7",
		"hardbound_audit_held_bytes 700",
		"hardbound_audit_held_dropped_total 2",
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
