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
