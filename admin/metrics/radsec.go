package metrics

import "github.com/prometheus/client_golang/prometheus"

// RadSecMetrics is radsec.Metrics over Prometheus (hardbound_radsec_*).
type RadSecMetrics struct {
	conns    prometheus.Gauge
	accepted *prometheus.CounterVec
	refused  *prometheus.CounterVec
	closed   *prometheus.CounterVec
	packets  *prometheus.CounterVec
}

// RadSec returns the RADIUS/TLS listener's metrics, made on first use.
func (r *Registry) RadSec() *RadSecMetrics {
	r.radsecOnce.Do(func() {
		r.radsec = &RadSecMetrics{
			conns:    r.gauge("radsec", "connections", "RADIUS/TLS connections open, handshaking ones included."),
			accepted: r.counterVec("radsec", "accepted_total", "RADIUS/TLS connections whose NAS was identified, by certificate source.", "source"),
			refused:  r.counterVec("radsec", "refused_total", "RADIUS/TLS connections refused, by reason.", "reason"),
			closed:   r.counterVec("radsec", "closed_total", "Identified RADIUS/TLS connections closed, by reason.", "reason"),
			packets:  r.counterVec("radsec", "packets_total", "RADIUS packets on RADIUS/TLS connections, by kind.", "kind"),
		}
	})
	return r.radsec
}

func (m *RadSecMetrics) Connections(n int)      { m.conns.Set(float64(n)) }
func (m *RadSecMetrics) Accepted(source string) { m.accepted.WithLabelValues(source).Inc() }
func (m *RadSecMetrics) Refused(reason string)  { m.refused.WithLabelValues(reason).Inc() }
func (m *RadSecMetrics) Closed(reason string)   { m.closed.WithLabelValues(reason).Inc() }
func (m *RadSecMetrics) Packet(kind string)     { m.packets.WithLabelValues(kind).Inc() }
