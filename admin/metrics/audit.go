package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AuditExportMetrics implements auditexport.Metrics: one series per sink
// (the sink names come from hardbound.yaml, so the label is bounded).
type AuditExportMetrics struct {
	lag       *prometheus.GaugeVec
	success   *prometheus.GaugeVec
	delivered *prometheus.CounterVec
	errors    *prometheus.CounterVec
}

// AuditExport returns the adapter for auditexport.Metrics; it is created
// once per registry.
func (r *Registry) AuditExport() *AuditExportMetrics {
	r.auditOnce.Do(func() {
		r.audit = &AuditExportMetrics{
			lag:       r.gaugeVec("audit", "export_lag_events", "Audit events appended but not yet confirmed delivered, by sink.", "sink"),
			success:   r.gaugeVec("audit", "export_last_success_timestamp_seconds", "When the sink last confirmed a delivery or was caught up on a live connection.", "sink"),
			delivered: r.counterVec("audit", "export_events_total", "Audit events confirmed delivered, by sink (a resend after an outage counts again).", "sink"),
			errors:    r.counterVec("audit", "export_errors_total", "Failed connects, writes and POSTs, by sink.", "sink"),
		}
	})
	return r.audit
}

func (a *AuditExportMetrics) ExportLag(sink string, events uint64) {
	a.lag.WithLabelValues(sink).Set(float64(events))
}

func (a *AuditExportMetrics) ExportDelivered(sink string, events int, at time.Time) {
	a.delivered.WithLabelValues(sink).Add(float64(events))
	a.success.WithLabelValues(sink).Set(float64(at.UnixNano()) / 1e9)
}

func (a *AuditExportMetrics) ExportError(sink string) { a.errors.WithLabelValues(sink).Inc() }

// AuditHoldMetrics implements audithold.Metrics: the audit events held
// while the store's database is away.
type AuditHoldMetrics struct {
	events  prometheus.Gauge
	bytes   prometheus.Gauge
	dropped prometheus.Counter
}

// AuditHold returns the adapter for audithold.Metrics; it is created
// once per registry.
func (r *Registry) AuditHold() *AuditHoldMetrics {
	r.holdOnce.Do(func() {
		r.hold = &AuditHoldMetrics{
			events:  r.gauge("audit", "held_events", "Audit events held because the database is away, waiting to be appended in order."),
			bytes:   r.gauge("audit", "held_bytes", "Size (JSON) of the held audit events."),
			dropped: r.counter("audit", "held_dropped_total", "Audit events refused because the hold was full (or refused by the store when appended)."),
		}
	})
	return r.hold
}

func (a *AuditHoldMetrics) Held(events int, bytes int64) {
	a.events.Set(float64(events))
	a.bytes.Set(float64(bytes))
}

func (a *AuditHoldMetrics) Dropped(n int) { a.dropped.Add(float64(n)) }
