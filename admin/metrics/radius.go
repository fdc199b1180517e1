package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type radiusMetrics struct {
	requests       *prometheus.CounterVec
	rejects        *prometheus.CounterVec
	drops          *prometheus.CounterVec
	authDuration   *prometheus.HistogramVec
	conversations  prometheus.Gauge
	accounting     *prometheus.CounterVec
	auditErrors    prometheus.Counter
	handshakes     *prometheus.CounterVec
	chainCache     *prometheus.CounterVec
	resumptions    *prometheus.CounterVec
	ticketsIgnored *prometheus.CounterVec
}

// RADIUS returns the adapter for radius.Metrics and eaptls.Metrics; it is
// created once per registry.
func (r *Registry) RADIUS() *RADIUSMetrics {
	r.radiusOnce.Do(func() {
		r.radius = &RADIUSMetrics{radiusMetrics{
			requests:       r.counterVec("radius", "requests_total", "RADIUS packets by type and result.", "type", "result"),
			rejects:        r.counterVec("radius", "rejects_total", "Access-Rejects by reason.", "reason"),
			drops:          r.counterVec("radius", "drops_total", "Packets silently discarded, by cause.", "cause"),
			authDuration:   r.histVec("radius", "auth_duration_seconds", "First packet of a conversation to Access-Accept or Access-Reject.", "result"),
			conversations:  r.gauge("radius", "conversations", "Live EAP conversations."),
			accounting:     r.counterVec("radius", "accounting_requests_total", "Accounting-Requests by Acct-Status-Type and result.", "status", "result"),
			auditErrors:    r.counter("radius", "audit_errors_total", "Decisions whose audit append failed."),
			handshakes:     r.counterVec("eaptls", "handshakes_total", "Finished EAP-TLS sessions by TLS version and outcome.", "version", "result"),
			chainCache:     r.counterVec("eaptls", "chain_cache_total", "Client certificate chains looked up in the cache of verified chains, by result (hit skips the CA signature check).", "result"),
			resumptions:    r.counterVec("eaptls", "resumptions_total", "EAP-TLS sessions resumed from a ticket (a subset of handshakes_total), by TLS version and result: ok, refused (the decision on the ticket's certificate said no), failed.", "version", "result"),
			ticketsIgnored: r.counterVec("eaptls", "tickets_ignored_total", "Session tickets offered that did not resume (a full handshake followed), by cause: undecryptable, expired, refused.", "cause"),
		}}
	})
	return r.radius
}

// RADIUSMetrics implements radius.Metrics and eaptls.Metrics.
type RADIUSMetrics struct{ m radiusMetrics }

func (a *RADIUSMetrics) Request(packet, result string) {
	a.m.requests.WithLabelValues(packet, result).Inc()
}
func (a *RADIUSMetrics) Reject(reason string) { a.m.rejects.WithLabelValues(reason).Inc() }
func (a *RADIUSMetrics) Drop(cause string)    { a.m.drops.WithLabelValues(cause).Inc() }
func (a *RADIUSMetrics) AuthDuration(result string, d time.Duration) {
	a.m.authDuration.WithLabelValues(result).Observe(d.Seconds())
}
func (a *RADIUSMetrics) Conversations(n int) { a.m.conversations.Set(float64(n)) }
func (a *RADIUSMetrics) Accounting(status, result string) {
	a.m.accounting.WithLabelValues(status, result).Inc()
}
func (a *RADIUSMetrics) AuditError() { a.m.auditErrors.Inc() }

// Handshake implements eaptls.Metrics.
func (a *RADIUSMetrics) Handshake(version string, ok bool) {
	r := "fail"
	if ok {
		r = "ok"
	}
	a.m.handshakes.WithLabelValues(version, r).Inc()
}

// ChainCache implements eaptls.Metrics.
func (a *RADIUSMetrics) ChainCache(hit bool) {
	r := "miss"
	if hit {
		r = "hit"
	}
	a.m.chainCache.WithLabelValues(r).Inc()
}

// Resumed implements eaptls.Metrics.
func (a *RADIUSMetrics) Resumed(version, result string) {
	a.m.resumptions.WithLabelValues(version, result).Inc()
}

// TicketIgnored implements eaptls.Metrics.
func (a *RADIUSMetrics) TicketIgnored(cause string) {
	a.m.ticketsIgnored.WithLabelValues(cause).Inc()
}
