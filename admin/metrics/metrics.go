// Package metrics is the one place hardbound imports Prometheus. Domain
// packages define narrow Metrics interfaces; the adapters here implement
// them on one registry (no global registry, so tests can read counters).
//
// Names follow hardbound_<subsystem>_<thing>_<unit|total>; labels are
// bounded (reason, protocol, format, result, type, cause, source, state).
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hardbound/posture"
	"hardbound/store"
)

// Registry holds every hardbound metric.
type Registry struct {
	reg *prometheus.Registry

	decisions      *prometheus.CounterVec
	postureChanges *prometheus.CounterVec
	cacheLookups   *prometheus.CounterVec
	eventsDropped  prometheus.Counter
	outageAnswers  *prometheus.CounterVec
	// avail is the store's availability the store gauges read (nil: a
	// store that cannot go away, the gauges say 0).
	avail atomic.Pointer[availability]

	radiusOnce sync.Once
	radius     *RADIUSMetrics
	enrollOnce sync.Once
	enroll     *EnrollMetrics
	dynOnce    sync.Once
	radsecOnce sync.Once
	radsec     *RadSecMetrics
	dyn        *DynauthMetrics
	auditOnce  sync.Once
	audit      *AuditExportMetrics
	holdOnce   sync.Once
	hold       *AuditHoldMetrics
	opsOnce    sync.Once
	opsM       *opsMetrics
	adminOnce  sync.Once
	admin      *AdminMetrics

	namesMu sync.Mutex
	names   []string // every hardbound_ name registered, for Names
}

// New creates a registry with the Go and process collectors.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := &Registry{reg: reg}
	r.decisions = r.counterVec("posture", "decisions_total", "Authorization decisions by reason and outcome.", "reason", "allow")
	r.postureChanges = r.counterVec("posture", "changes_total", "Posture reports by source and state.", "source", "state")
	r.cacheLookups = r.counterVec("posture", "cache_lookups_total", "Binding cache lookups by result.", "result")
	r.eventsDropped = r.counter("posture", "events_dropped_total", "Standing events dropped because a subscriber was too slow.")
	for _, reason := range posture.Reasons {
		r.decisions.WithLabelValues(string(reason), "false")
	}
	r.outageAnswers = r.counterVec("store", "unavailable_answers_total",
		"Authentication decisions made while the store could not reach its database, by result: cached (within the grace), cached_after_grace (accept_cached), rejected (past the grace, reject), miss (not cached).", "result")
	for _, res := range posture.OutageResults {
		r.outageAnswers.WithLabelValues(string(res))
	}
	r.gaugeFunc("store", "unavailable", "1 while the store cannot reach its database, else 0.", func() float64 {
		if _, down := r.unavailable(); down {
			return 1
		}
		return 0
	})
	r.gaugeFunc("store", "unavailable_since_seconds", "Unix time the current database outage began; 0 while the database answers.", func() float64 {
		if since, down := r.unavailable(); down {
			return float64(since.UnixNano()) / 1e9
		}
		return 0
	})
	return r
}

// availability is the store's view of its database (posture.Availability).
type availability struct{ a posture.Availability }

// StoreAvailability makes the store gauges follow a.
func (r *Registry) StoreAvailability(a posture.Availability) {
	if a != nil {
		r.avail.Store(&availability{a})
	}
}

func (r *Registry) unavailable() (time.Time, bool) {
	if p := r.avail.Load(); p != nil {
		return p.a.Unavailable()
	}
	return time.Time{}, false
}

func (r *Registry) gaugeFunc(sub, name, help string, fn func() float64) {
	r.named(sub, name)
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "hardbound", Subsystem: sub, Name: name, Help: help}, fn))
}

// Prometheus exposes the registry to adapters defined in other files.
func (r *Registry) Prometheus() *prometheus.Registry { return r.reg }

// Handler serves /metrics.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

func (r *Registry) named(sub, name string, suffixes ...string) {
	full := "hardbound_" + sub + "_" + name
	r.namesMu.Lock()
	defer r.namesMu.Unlock()
	if len(suffixes) == 0 {
		r.names = append(r.names, full)
	}
	for _, s := range suffixes {
		r.names = append(r.names, full+s)
	}
}

func (r *Registry) counterVec(sub, name, help string, labels ...string) *prometheus.CounterVec {
	r.named(sub, name)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "hardbound", Subsystem: sub, Name: name, Help: help}, labels)
	r.reg.MustRegister(c)
	return c
}

func (r *Registry) counter(sub, name, help string) prometheus.Counter {
	r.named(sub, name)
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "hardbound", Subsystem: sub, Name: name, Help: help})
	r.reg.MustRegister(c)
	return c
}

func (r *Registry) gauge(sub, name, help string) prometheus.Gauge {
	r.named(sub, name)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "hardbound", Subsystem: sub, Name: name, Help: help})
	r.reg.MustRegister(g)
	return g
}

func (r *Registry) gaugeVec(sub, name, help string, labels ...string) *prometheus.GaugeVec {
	r.named(sub, name)
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "hardbound", Subsystem: sub, Name: name, Help: help}, labels)
	r.reg.MustRegister(g)
	return g
}

// latencyBuckets span 100 µs to ~13 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 18)

func (r *Registry) histVec(sub, name, help string, labels ...string) *prometheus.HistogramVec {
	r.named(sub, name, "_bucket", "_sum", "_count")
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "hardbound", Subsystem: sub, Name: name, Help: help, Buckets: latencyBuckets}, labels)
	r.reg.MustRegister(h)
	return h
}

// Posture returns the posture.Metrics adapter.
func (r *Registry) Posture() posture.Metrics { return postureMetrics{r} }

type postureMetrics struct{ r *Registry }

func (m postureMetrics) Decision(reason posture.Reason, allow bool) {
	a := "false"
	if allow {
		a = "true"
	}
	m.r.decisions.WithLabelValues(string(reason), a).Inc()
}

func (m postureMetrics) PostureChange(source string, state store.Compliance) {
	m.r.postureChanges.WithLabelValues(source, string(state)).Inc()
}

func (m postureMetrics) CacheLookup(hit bool) {
	if hit {
		m.r.cacheLookups.WithLabelValues("hit").Inc()
		return
	}
	m.r.cacheLookups.WithLabelValues("miss").Inc()
}

func (m postureMetrics) EventDropped() { m.r.eventsDropped.Inc() }

func (m postureMetrics) UnavailableAnswer(res posture.OutageResult) {
	m.r.outageAnswers.WithLabelValues(string(res)).Inc()
}
