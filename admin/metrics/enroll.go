package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hardbound/enroll/limit"
	"hardbound/radius/dynauth"
	"hardbound/store"
)

// EnrollMetrics implements the Metrics interfaces of enroll/acme,
// enroll/scep, enroll/est, enroll/ocsp, enroll/limit, enroll/attest and
// enroll/ca.
type EnrollMetrics struct {
	enrollments  *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	refusals     *prometheus.CounterVec
	evictions    *prometheus.CounterVec
	verification *prometheus.CounterVec
	signed       *prometheus.CounterVec

	estRequests   *prometheus.CounterVec
	estRefusals   *prometheus.CounterVec
	ocspResponses *prometheus.CounterVec
	ocspCache     *prometheus.CounterVec
	ocspRotations *prometheus.CounterVec
}

// Enroll returns the enrollment adapter (created once).
func (r *Registry) Enroll() *EnrollMetrics {
	r.enrollOnce.Do(func() {
		r.enroll = &EnrollMetrics{
			enrollments:  r.counterVec("enroll", "enrollments_total", "Enrollment outcomes by protocol, attestation format and result.", "protocol", "format", "result"),
			latency:      r.histVec("enroll", "issuance_duration_seconds", "Time to answer an issuing request, by protocol and operation.", "protocol", "op"),
			refusals:     r.counterVec("enroll", "rate_limited_total", "Requests refused by a rate limit, by limit kind.", "kind"),
			evictions:    r.counterVec("enroll", "rate_limit_evictions_total", "Rate-limit buckets evicted to bound memory, by kind.", "kind"),
			verification: r.counterVec("enroll", "attestations_total", "Attestation verifications by format and outcome.", "format", "outcome"),
			signed:       r.counterVec("enroll", "ca_signatures_total", "CA signing operations by kind and result.", "kind", "result"),

			estRequests:   r.counterVec("est", "requests_total", "EST requests by operation and result (ok, refused, error).", "op", "result"),
			estRefusals:   r.counterVec("est", "refusals_total", "EST enrollments refused, by reason.", "reason"),
			ocspResponses: r.counterVec("ocsp", "responses_total", "OCSP responses by certificate status or OCSP error status.", "status"),
			ocspCache:     r.counterVec("ocsp", "cache_lookups_total", "OCSP answer cache lookups by result (hit, miss).", "result"),
			ocspRotations: r.counterVec("ocsp", "signer_rotations_total", "Delegated OCSP signing certificates issued, by result.", "result"),
		}
	})
	return r.enroll
}

func (m *EnrollMetrics) Enrollment(protocol, format, result string) {
	m.enrollments.WithLabelValues(protocol, format, result).Inc()
}
func (m *EnrollMetrics) IssuanceLatency(protocol string, d time.Duration) {
	m.latency.WithLabelValues(protocol, "finalize").Observe(d.Seconds())
}
func (m *EnrollMetrics) Latency(protocol, op string, d time.Duration) {
	m.latency.WithLabelValues(protocol, op).Observe(d.Seconds())
}
func (m *EnrollMetrics) Refused(k limit.Kind) { m.refusals.WithLabelValues(string(k)).Inc() }
func (m *EnrollMetrics) Evicted(k limit.Kind) { m.evictions.WithLabelValues(string(k)).Inc() }
func (m *EnrollMetrics) Verification(format, outcome string) {
	m.verification.WithLabelValues(format, outcome).Inc()
}
func (m *EnrollMetrics) Signed(kind, result string) { m.signed.WithLabelValues(kind, result).Inc() }

// Request, Refusal: est.Metrics.
func (m *EnrollMetrics) Request(op, result string) { m.estRequests.WithLabelValues(op, result).Inc() }
func (m *EnrollMetrics) Refusal(reason string)     { m.estRefusals.WithLabelValues(reason).Inc() }

// Response, CacheLookup, SignerRotation: ocsp.Metrics.
func (m *EnrollMetrics) Response(status string) { m.ocspResponses.WithLabelValues(status).Inc() }
func (m *EnrollMetrics) CacheLookup(hit bool) {
	if hit {
		m.ocspCache.WithLabelValues("hit").Inc()
		return
	}
	m.ocspCache.WithLabelValues("miss").Inc()
}
func (m *EnrollMetrics) SignerRotation(result string) { m.ocspRotations.WithLabelValues(result).Inc() }

// DynauthMetrics implements dynauth.Metrics and mdm.Metrics.
type DynauthMetrics struct {
	sent      *prometheus.CounterVec
	answered  *prometheus.CounterVec
	invalid   *prometheus.CounterVec
	enforced  *prometheus.HistogramVec
	events    *prometheus.CounterVec
	mdmChange *prometheus.CounterVec
	mdmReject *prometheus.CounterVec
	mdmPoll   *prometheus.CounterVec
}

// Dynauth returns the Disconnect/CoA and MDM connector adapter (created once).
func (r *Registry) Dynauth() *DynauthMetrics {
	r.dynOnce.Do(func() {
		r.dyn = &DynauthMetrics{
			sent:      r.counterVec("dynauth", "requests_total", "Disconnect/CoA datagrams sent, retransmissions included.", "code"),
			answered:  r.counterVec("dynauth", "answers_total", "Final Disconnect/CoA outcomes.", "code", "result"),
			invalid:   r.counterVec("dynauth", "invalid_responses_total", "Discarded DAS answers by cause.", "why"),
			enforced:  r.histVec("dynauth", "enforcement_seconds", "Standing change to the last NAS answer.", "kind"),
			events:    r.counterVec("dynauth", "events_total", "Standing events by kind and the action taken.", "kind", "action"),
			mdmChange: r.counterVec("posture", "mdm_reports_total", "MDM compliance reports applied, by source and state.", "source", "state"),
			mdmReject: r.counterVec("posture", "mdm_rejects_total", "MDM webhook requests refused, by source and reason.", "source", "reason"),
			mdmPoll:   r.counterVec("posture", "mdm_polls_total", "MDM poll cycles by source and result.", "source", "result"),
		}
	})
	return r.dyn
}

func (m *DynauthMetrics) Sent(k dynauth.Kind) { m.sent.WithLabelValues(k.String()).Inc() }
func (m *DynauthMetrics) Answered(k dynauth.Kind, r dynauth.Result) {
	m.answered.WithLabelValues(k.String(), string(r)).Inc()
}
func (m *DynauthMetrics) InvalidResponse(why string) { m.invalid.WithLabelValues(why).Inc() }
func (m *DynauthMetrics) Enforced(kind string, d time.Duration) {
	m.enforced.WithLabelValues(kind).Observe(d.Seconds())
}
func (m *DynauthMetrics) Event(kind, action string) { m.events.WithLabelValues(kind, action).Inc() }
func (m *DynauthMetrics) PostureChange(source string, state store.Compliance) {
	m.mdmChange.WithLabelValues(source, string(state)).Inc()
}
func (m *DynauthMetrics) WebhookReject(source, reason string) {
	m.mdmReject.WithLabelValues(source, reason).Inc()
}
func (m *DynauthMetrics) Poll(source, result string) { m.mdmPoll.WithLabelValues(source, result).Inc() }
