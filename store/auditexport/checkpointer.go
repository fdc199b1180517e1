package auditexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hardbound/store"
)

// Checkpointer signs the chain's head every Every events or every Interval
// (whichever comes first, once the head moved) and stores the checkpoint,
// which the sinks then export after the event it signs.
type Checkpointer struct {
	st       Store
	signer   *Signer
	every    uint64
	interval time.Duration
	log      *slog.Logger

	mu     sync.Mutex // Checkpoint may be called while Run runs
	last   *store.AuditCheckpoint
	lastAt time.Time
	warned bool // the cut chain was reported
}

// NewCheckpointer signs with s on the schedule of cfg.
func NewCheckpointer(st Store, s *Signer, cfg CheckpointConfig, log *slog.Logger) *Checkpointer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checkpointer{st: st, signer: s, every: cfg.Every, interval: cfg.Interval.D(), log: log}
}

// Checkpoint signs the head if it moved past the last checkpoint and
// returns the new checkpoint (nil when the head did not move).
func (c *Checkpointer) Checkpoint(ctx context.Context) (*store.AuditCheckpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	head, err := c.head(ctx)
	if err != nil || head == nil {
		return nil, err
	}
	last, err := c.lastCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if last != nil && last.Seq >= head.Seq {
		return nil, nil
	}
	return c.sign(ctx, head)
}

func (c *Checkpointer) head(ctx context.Context) (*store.AuditEvent, error) {
	t, err := c.st.TailAudit(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("auditexport: checkpoint: %w", err)
	}
	if len(t) == 0 {
		return nil, nil
	}
	return t[0], nil
}

func (c *Checkpointer) lastCheckpoint(ctx context.Context) (*store.AuditCheckpoint, error) {
	if c.last != nil {
		return c.last, nil
	}
	cp, err := c.st.LastAuditCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditexport: checkpoint: %w", err)
	}
	c.last, c.lastAt = cp, cp.Time
	return cp, nil
}

func (c *Checkpointer) sign(ctx context.Context, head *store.AuditEvent) (*store.AuditCheckpoint, error) {
	cp, err := c.signer.Sign(head.Seq, head.Hash)
	if err != nil {
		return nil, err
	}
	if err := c.st.PutAuditCheckpoint(ctx, cp); err != nil {
		return nil, fmt.Errorf("auditexport: checkpoint: %w", err)
	}
	c.last, c.lastAt = cp, time.Now()
	return cp, nil
}

// due reports whether the schedule asks for a checkpoint of head.
func (c *Checkpointer) due(head uint64, now time.Time) bool {
	var lastSeq uint64
	if c.last != nil {
		lastSeq = c.last.Seq
	}
	if head <= lastSeq {
		return false
	}
	return (c.every > 0 && head-lastSeq >= c.every) ||
		(c.interval > 0 && (c.last == nil || now.Sub(c.lastAt) >= c.interval))
}

// Run checkpoints on schedule until ctx ends, then once more so that a
// clean stop leaves the head signed.
func (c *Checkpointer) Run(ctx context.Context) {
	poll := DefaultPoll
	if c.every == 0 && c.interval > 0 {
		poll = min(c.interval, time.Second)
	}
	if c.every == 0 && c.interval == 0 {
		return
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	wasAway := false
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if _, err := c.Checkpoint(sctx); err != nil {
				c.log.WarnContext(sctx, "audit checkpoint at shutdown failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
		}
		err := c.tick(ctx)
		// An unreachable database is logged by the store once per
		// outage; a tick each poll would repeat it several times a second.
		away := errors.Is(err, store.ErrUnavailable)
		if err != nil && ctx.Err() == nil && !(away && wasAway) {
			c.log.WarnContext(ctx, "audit checkpoint failed", "err", err)
		}
		wasAway = away
	}
}

// tick signs the head if the schedule asks for it.
func (c *Checkpointer) tick(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.lastCheckpoint(ctx); err != nil {
		return err
	}
	head, err := c.head(ctx)
	if err != nil {
		return err
	}
	var headSeq uint64
	if head != nil {
		headSeq = head.Seq
	}
	if c.last != nil && headSeq < c.last.Seq && !c.warned {
		// Appends never move the head back: the chain was cut.
		c.log.ErrorContext(ctx, "audit chain ends before its newest signed checkpoint: events were removed; run `hardbound audit verify`",
			"head_seq", headSeq, "checkpoint_seq", c.last.Seq)
		c.warned = true
	}
	if head == nil || !c.due(head.Seq, time.Now()) {
		return nil
	}
	_, err = c.sign(ctx, head)
	return err
}
