package radius

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"hardbound/store"
	"hardbound/store/auditbudget"
)

// refusalLog writes refusal lines at a bounded rate: a flood of refusals
// must not become a flood of log lines. The metric counts every refusal;
// the next line written says how many were left out.
type refusalLog struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

// Refusal lines: 5 a second, bursts of 20.
func newRefusalLog() *refusalLog { return &refusalLog{lim: rate.NewLimiter(5, 20)} }

func (r *refusalLog) log(l *slog.Logger, msg string, args ...any) {
	if !r.lim.Allow() {
		r.suppressed.Add(1)
		return
	}
	if n := r.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed_before", n)
	}
	l.Warn(msg, args...)
}

// auditBudgeted appends ev unless the budget holds it back (key: what is
// refused and from where): the first of each key per window is written,
// carrying the count of those held back before it.
func (s *Server) auditBudgeted(ctx context.Context, ev *store.AuditEvent, key string) {
	write, held := s.budget.Allow(s.now(), key, ev.Action)
	if !write {
		return
	}
	if held > 0 {
		ev.Reason += fmt.Sprintf(" suppressed_before=%d", held)
	}
	actx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := s.groups.Append(actx, ev); err != nil {
		s.metrics.AuditError()
		s.log.Error("audit append failed", "action", ev.Action, "err", err)
	}
}

// flushBudget writes one summary event per key whose window closed with
// events held back (the janitor calls it).
func (s *Server) flushBudget(ctx context.Context) {
	for _, sum := range s.budget.Expire(s.now()) {
		key := sum.Key
		if auditbudget.IsOverflow(key) {
			key = "(too many distinct sources)"
		}
		s.auditBudgeted(ctx, &store.AuditEvent{
			V: store.RecordVersion, Time: s.now().UTC(), Actor: "system", Action: sum.Kind,
			Result: "reject", Reason: fmt.Sprintf("suppressed %d events of %s since %s", sum.Suppressed, auditValue(key), sum.Since.UTC().Format(time.RFC3339)),
		}, "\x00summary")
	}
}

// onOffTracker remembers, per NAS, the Event-Timestamp of the last
// Accounting-On/Off applied, so that a replayed or reordered one closes
// nothing. Entries older than the acceptance window cannot matter (such a
// packet is refused as stale anyway) and are pruned; the table is bounded.
type onOffTracker struct {
	mu sync.Mutex
	m  map[store.NASScope]time.Time
}

const maxOnOffScopes = 65536

func (t *onOffTracker) advance(sc store.NASScope, at, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[store.NASScope]time.Time)
	}
	if last, ok := t.m[sc]; ok && !at.After(last) {
		return false
	}
	if len(t.m) >= maxOnOffScopes {
		for k, v := range t.m {
			if now.Sub(v) > 2*onOffAge {
				delete(t.m, k)
			}
		}
		if len(t.m) >= maxOnOffScopes {
			return false // fail closed: keep the sessions
		}
	}
	t.m[sc] = at
	return true
}

// forget undoes advance after a failed close, so the NAS's retransmission
// is applied.
func (t *onOffTracker) forget(sc store.NASScope, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[sc].Equal(at) {
		delete(t.m, sc)
	}
}
