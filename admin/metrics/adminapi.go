package metrics

import "github.com/prometheus/client_golang/prometheus"

// AdminMetrics implements admin.Metrics.
type AdminMetrics struct{ denied *prometheus.CounterVec }

// Admin returns the adapter for admin.Metrics; it is created once per
// registry.
func (r *Registry) Admin() *AdminMetrics {
	r.adminOnce.Do(func() {
		r.admin = &AdminMetrics{denied: r.counterVec("admin", "auth_denied_total",
			"Admin API requests refused for their bearer token, by reason (every one; the audit chain gets them on a budget).", "reason")}
	})
	return r.admin
}

// AuthDenied counts one refused request.
func (a *AdminMetrics) AuthDenied(reason string) { a.denied.WithLabelValues(reason).Inc() }
