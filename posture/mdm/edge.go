package mdm

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"hardbound/store"
)

// Edge is what webhook handlers share at the HTTP edge: JSON answers, reject
// metrics and audit events for refused requests.
//
// Audit events for rejects are rate limited: refused requests come from
// unauthenticated senders, and an unbounded stream of them must not grow the
// audit chain without bound. Rejects beyond the rate are still counted and
// logged.
type Edge struct {
	source  string
	auditor Auditor
	metrics Metrics
	log     *slog.Logger
	limit   *rate.Limiter
	now     func() time.Time
}

// EdgeConfig configures NewEdge.
type EdgeConfig struct {
	Source  string // metric label and audit actor mdm:<Source>
	Auditor Auditor
	Metrics Metrics
	Logger  *slog.Logger
	// AuditRejectsPerSecond and AuditRejectBurst bound audit events for
	// rejects (defaults 10/s, burst 100).
	AuditRejectsPerSecond float64
	AuditRejectBurst      int
	Now                   func() time.Time
}

// NewEdge fills defaults.
func NewEdge(c EdgeConfig) *Edge {
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AuditRejectsPerSecond <= 0 {
		c.AuditRejectsPerSecond = 10
	}
	if c.AuditRejectBurst <= 0 {
		c.AuditRejectBurst = 100
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Edge{
		source: c.Source, auditor: c.Auditor, metrics: c.Metrics,
		log:   c.Logger.With("component", "posture", "mdm", c.Source),
		limit: rate.NewLimiter(rate.Limit(c.AuditRejectsPerSecond), c.AuditRejectBurst),
		now:   c.Now,
	}
}

// Source is the connector name.
func (e *Edge) Source() string { return e.source }

// Logger is the connector's scoped logger.
func (e *Edge) Logger() *slog.Logger { return e.log }

// Metrics is the connector's metrics sink.
func (e *Edge) Metrics() Metrics { return e.metrics }

// ErrorBody is the JSON body of every refused webhook request.
type ErrorBody struct {
	Error  string `json:"error"`  // one of the Reject* reasons
	Detail string `json:"detail"` // human-readable
}

// Reject answers status with a JSON error, counts and audits it. Nothing
// else has happened when Reject is called.
func (e *Edge) Reject(w http.ResponseWriter, r *http.Request, status int, reason, detail, subject string) {
	e.metrics.WebhookReject(e.source, reason)
	e.log.Warn("webhook refused", "reason", reason, "detail", detail, "remote", r.RemoteAddr, "subject", subject)
	if e.auditor != nil && e.limit.AllowN(e.now(), 1) {
		result := "reject"
		switch reason {
		case RejectUnauthorized, RejectBadSignature, RejectStale, RejectReplayed:
			result = "denied"
		case RejectInternal:
			result = "error"
		}
		e.audit(r.Context(), &store.AuditEvent{
			Actor: "mdm:" + e.source, Action: "posture.webhook", Subject: subject,
			Result: result, Reason: reason, Source: r.RemoteAddr,
		})
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="hardbound"`)
	}
	WriteJSON(w, status, ErrorBody{Error: reason, Detail: detail})
}

func (e *Edge) audit(ctx context.Context, ev *store.AuditEvent) {
	ev.Time = e.now()
	// The client may hang up; the audit record must still be written.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.auditor.AppendAudit(actx, ev); err != nil {
		e.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

// Applied counts a compliance report that SetCompliance accepted.
func (e *Edge) Applied(state store.Compliance) { e.metrics.PostureChange(e.source, state) }

// WriteJSON writes v as the JSON body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
