package metrics

import (
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// opsMetrics are the gauges the operations pack alerts on that no
// component counts itself: certificate expiry and the audit chain's last
// verification.
type opsMetrics struct {
	certExpiry  *prometheus.GaugeVec
	auditOK     prometheus.Gauge
	auditEvents prometheus.Gauge
	auditAt     prometheus.Gauge
}

func (r *Registry) ops() *opsMetrics {
	r.opsOnce.Do(func() {
		r.opsM = &opsMetrics{
			certExpiry:  r.gaugeVec("cert", "expiry_timestamp_seconds", "NotAfter of the certificates the server holds, by cert (root, issuing, radius, enroll, admin), in Unix seconds.", "cert"),
			auditOK:     r.gauge("audit", "chain_ok", "1 if the last verification of the audit chain found it intact, 0 if broken."),
			auditEvents: r.gauge("audit", "chain_events", "Events in the audit chain at its last verification."),
			auditAt:     r.gauge("audit", "chain_verified_timestamp_seconds", "When the audit chain was last verified, in Unix seconds."),
		}
	})
	return r.opsM
}

// CertExpiry records when a certificate the server holds expires.
func (r *Registry) CertExpiry(cert string, notAfter time.Time) {
	r.ops().certExpiry.WithLabelValues(cert).Set(float64(notAfter.Unix()))
}

// AuditVerified records a verification of the audit chain.
func (r *Registry) AuditVerified(ok bool, events uint64, at time.Time) {
	m := r.ops()
	v := 0.0
	if ok {
		v = 1
	}
	m.auditOK.Set(v)
	m.auditEvents.Set(float64(events))
	m.auditAt.Set(float64(at.Unix()))
}

// Names lists every metric name the registry exports once every adapter
// exists (a histogram as its _bucket, _sum and _count), with the Go and
// process collectors' families: what dashboards and alert rules may use.
func (r *Registry) Names() []string {
	r.RADIUS()
	r.Enroll()
	r.Dynauth()
	r.AuditExport()
	r.ops()
	r.namesMu.Lock()
	out := append([]string(nil), r.names...)
	r.namesMu.Unlock()
	if mfs, err := r.reg.Gather(); err == nil {
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "hardbound_") {
				out = append(out, mf.GetName())
			}
		}
	}
	sort.Strings(out)
	return out
}
