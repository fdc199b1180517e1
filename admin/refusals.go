package admin

import (
	"context"
	"fmt"
	"net"

	"hardbound/store"
	"hardbound/store/auditbudget"
)

// Metrics counts what the admin API refuses; admin/metrics implements it.
type Metrics interface {
	// AuthDenied counts every request refused for its token (reason
	// missing_token or wrong_token), audited or not.
	AuthDenied(reason string)
}

type nopMetrics struct{}

func (nopMetrics) AuthDenied(string) {}

// WithMetrics sets the metrics sink (default: none).
func WithMetrics(m Metrics) Option { return func(s *Server) { s.metrics = m } }

// denied records a request refused for its token. Anyone who can reach
// the port can send them, so they are audited on a budget: the first of
// each reason per source address in a window, carrying the count of those
// held back; the metric counts every one. Without it each 401 was a synced
// audit write (seconds of fsync under a few hundred requests).
func (s *Server) denied(ctx context.Context, method, path, reason, remote string) {
	s.metrics.AuthDenied(reason)
	src := remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		src = host
	}
	now := s.now()
	write, held := s.budget.Allow(now, reason+"|"+src, "admin.auth")
	if !write {
		return
	}
	ev := &store.AuditEvent{Actor: "anonymous", Action: "admin.auth", Subject: method + " " + path,
		Result: "denied", Reason: reason, Source: remote}
	if held > 0 {
		ev.Reason += fmt.Sprintf(" suppressed_before=%d", held)
	}
	s.record(ctx, ev)
	for _, sum := range s.budget.Expire(now) {
		// Windows that closed with requests held back and no later one.
		key := sum.Key
		if auditbudget.IsOverflow(key) {
			key = "(too many distinct sources)"
		}
		s.record(ctx, &store.AuditEvent{Actor: "anonymous", Action: "admin.auth", Result: "denied",
			Reason: fmt.Sprintf("suppressed %d denied requests of %s", sum.Suppressed, key)})
	}
}
