package auditexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"hardbound/store"
)

// Pruner removes the chain's oldest events once every sink confirmed them,
// a signed checkpoint covers them, and they are older than the retention
// age. It always prunes up to just before a checkpoint's event, so the
// chain keeps starting at an event that a signature vouches for (Verify
// checks exactly that).
type Pruner struct {
	st     Store
	pruner interface {
		PruneAudit(context.Context, uint64) (int, error)
	}
	sinks    []string
	maxAge   time.Duration
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time
}

// Retention defaults.
const DefaultRetentionInterval = time.Hour

// NewPruner prunes st (which must also implement PruneAudit) on the
// schedule of cfg.Retention, waiting for every sink of cfg.
func NewPruner(st interface {
	Store
	PruneAudit(context.Context, uint64) (int, error)
}, cfg FileConfig, log *slog.Logger) *Pruner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pruner{st: st, pruner: st, maxAge: cfg.Retention.MaxAge.D(), interval: cfg.Retention.Interval.D(), log: log, now: time.Now}
	if p.interval <= 0 {
		p.interval = DefaultRetentionInterval
	}
	for _, s := range cfg.Sinks {
		p.sinks = append(p.sinks, s.Name)
	}
	return p
}

// Prune removes what may be removed now and returns the last seq removed
// (0: nothing) and how many events went.
func (p *Pruner) Prune(ctx context.Context) (uint64, int, error) {
	if p.maxAge <= 0 {
		return 0, 0, nil
	}
	tail, err := p.st.TailAudit(ctx, 1)
	if err != nil || len(tail) == 0 {
		return 0, 0, err
	}
	// Everything pruned must have reached every sink.
	limit := tail[0].Seq - 1
	for _, s := range p.sinks {
		c, err := p.st.GetAuditCursor(ctx, s)
		if errors.Is(err, store.ErrNotFound) {
			return 0, 0, nil // a sink that delivered nothing holds everything
		}
		if err != nil {
			return 0, 0, fmt.Errorf("auditexport: prune: %w", err)
		}
		limit = min(limit, c.Seq)
	}
	first, err := firstEvent(ctx, p.st)
	if err != nil || first == nil {
		return 0, 0, err
	}
	// The newest checkpoint C old enough, with C-1 delivered everywhere:
	// prune through C-1, keeping C's event as the first. A checkpoint is
	// made after the event it signs, so its time bounds the pruned ones'.
	cutoff := p.now().Add(-p.maxAge)
	var through uint64
	err = p.st.ScanAuditCheckpoints(ctx, first.Seq+1, func(cp *store.AuditCheckpoint) error {
		if cp.Seq-1 > limit || !cp.Time.Before(cutoff) {
			return errStopScan
		}
		through = cp.Seq - 1
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, 0, fmt.Errorf("auditexport: prune: %w", err)
	}
	if through < first.Seq {
		return 0, 0, nil
	}
	n, err := p.pruner.PruneAudit(ctx, through)
	if err != nil {
		return 0, n, fmt.Errorf("auditexport: prune: %w", err)
	}
	return through, n, nil
}

// Run prunes every interval until ctx ends.
func (p *Pruner) Run(ctx context.Context) {
	if p.maxAge <= 0 {
		return
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		through, n, err := p.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.WarnContext(ctx, "audit retention failed", "err", err)
		case n > 0:
			p.log.InfoContext(ctx, "audit retention pruned the chain", "through_seq", through, "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
