package mdm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"hardbound/store/inventory"
)

// Inventory sync: an MDM's device listing becomes hardbound's inventory
// (docs/inventory.md). Each connector lists its devices (jamf.Lister,
// intune.Poller.ListInventory); InventorySync applies the complete listing
// as the source's records, on a schedule and when a webhook hints that
// something changed, so devices appear, leave and change profile as they
// do in the MDM.

// Lister lists every device the MDM manages, as inventory records. An
// error means the listing is incomplete: nothing is removed.
type Lister interface {
	ListInventory(ctx context.Context) ([]inventory.Record, error)
}

// InventorySyncConfig configures an InventorySync.
type InventorySyncConfig struct {
	// Source names the connector ("jamf", "intune"): the records' source.
	Source string
	Lister Lister
	Store  inventory.Store
	// KnownProfile refuses records naming a profile that is not configured.
	KnownProfile func(string) bool
	// Interval between full syncs (default 1h); MinGap is the least time
	// between two syncs, so a burst of hints makes one sync (default 30s).
	Interval, MinGap time.Duration
	Metrics          Metrics
	Logger           *slog.Logger
	Now              func() time.Time
}

// InventorySync keeps one source's inventory records equal to its MDM's
// listing.
type InventorySync struct {
	cfg  InventorySyncConfig
	log  *slog.Logger
	hint chan struct{}
}

// NewInventorySync checks cfg.
func NewInventorySync(cfg InventorySyncConfig) (*InventorySync, error) {
	if cfg.Source == "" || cfg.Lister == nil || cfg.Store == nil {
		return nil, errors.New("mdm: inventory sync needs Source, Lister and Store")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &InventorySync{cfg: cfg, log: cfg.Logger.With("component", "posture", "mdm", cfg.Source, "task", "inventory"),
		hint: make(chan struct{}, 1)}, nil
}

// Hint asks for a sync soon (a webhook said a device was added,
// unenrolled or moved). It never blocks.
func (s *InventorySync) Hint() {
	select {
	case s.hint <- struct{}{}:
	default:
	}
}

// SyncOnce lists the MDM's devices and applies them as the complete
// listing of the source.
func (s *InventorySync) SyncOnce(ctx context.Context) (*inventory.Report, error) {
	recs, err := s.cfg.Lister.ListInventory(ctx)
	if err != nil {
		s.cfg.Metrics.Poll(s.cfg.Source+"-inventory", "error")
		return nil, fmt.Errorf("mdm: %s inventory listing: %w", s.cfg.Source, err)
	}
	rows := make([]inventory.Row, len(recs))
	for i, r := range recs {
		rows[i] = inventory.Row{Line: i + 1, Record: r}
	}
	rep, err := inventory.Apply(ctx, s.cfg.Store, rows, inventory.Options{
		Source: s.cfg.Source, Actor: "mdm:" + s.cfg.Source, Complete: true, KnownProfile: s.cfg.KnownProfile, Now: s.cfg.Now,
	})
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.cfg.Metrics.Poll(s.cfg.Source+"-inventory", result)
	if err != nil {
		return rep, fmt.Errorf("mdm: %s inventory: %w", s.cfg.Source, err)
	}
	s.log.Info("inventory synced", "listed", len(recs), "added", rep.Added, "updated", rep.Updated,
		"removed", rep.Removed, "unchanged", rep.Unchanged, "refused", rep.Failed)
	for _, e := range rep.Errors {
		s.log.Warn("inventory record refused", "device", e.ID, "err", e.Error)
	}
	return rep, nil
}

// Run syncs now, then every Interval and on hints (at most once per
// MinGap), until ctx ends. A failed sync is retried after a backoff that
// starts at MinGap and doubles up to Interval.
func (s *InventorySync) Run(ctx context.Context) error {
	backoff := s.cfg.MinGap
	for {
		wait := s.cfg.Interval
		started := time.Now()
		if _, err := s.SyncOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Error("inventory sync failed", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(backoff*2, s.cfg.Interval)
		} else {
			backoff = s.cfg.MinGap
		}
		if err := s.wait(ctx, started, wait); err != nil {
			return err
		}
	}
}

// wait returns after d, or once a hint arrived and MinGap has passed
// since the last sync started: a burst of hints makes one sync.
func (s *InventorySync) wait(ctx context.Context, last time.Time, d time.Duration) error {
	full := time.NewTimer(d)
	defer full.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-full.C:
		return nil
	case <-s.hint:
	}
	rest := s.cfg.MinGap - time.Since(last)
	if rest <= 0 {
		return nil
	}
	gap := time.NewTimer(min(rest, d))
	defer gap.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-gap.C:
		return nil
	}
}
