package node

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/audithold"
)

// auditAppender is where the components that audit outside a store
// transaction (RADIUS decisions, Disconnect/CoA, RadSec connections)
// append: the store itself, or a holder in front of it.
type auditAppender interface {
	AppendAudit(ctx context.Context, ev *store.AuditEvent) error
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}

// holdDrainTimeout bounds the last attempt, at shutdown, to append what
// is still held (it stays in the spill file otherwise).
const holdDrainTimeout = 3 * time.Second

// outageOptions are posture's options for a store that can lose its
// database (store.unavailable); none for one that cannot (Badger).
func (in *Node) outageOptions() []posture.Option {
	a, ok := in.st.(posture.Availability)
	if !ok {
		return nil
	}
	in.metrics.StoreAvailability(a)
	u := in.cfg.Store.Unavailable
	p, _ := posture.ParseOutagePolicy(u.Policy) // checked by Validate
	return []posture.Option{posture.WithOutage(a, u.Grace.D(), p)}
}

// startAuditHold puts an audithold.Holder in front of a store that can
// lose its database, spilling to <data_dir>/audit/held.jsonl, so that the
// decisions answered while it is away reach the chain when it is back.
// Its closer runs after the components' (it is registered before them).
func (in *Node) startAuditHold() error {
	in.auditor = in.st
	if _, ok := in.st.(posture.Availability); !ok {
		return nil
	}
	dir := filepath.Join(in.cfg.DataDir, "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	log := in.log.With("component", "audit")
	h, err := audithold.New(in.st, audithold.Options{
		SpillPath: filepath.Join(dir, "held.jsonl"), Log: log, Metrics: in.metrics.AuditHold(),
	})
	if err != nil {
		return err
	}
	in.auditor = h
	ctx, cancel := context.WithCancel(context.WithoutCancel(in.ctx))
	var wg sync.WaitGroup
	wg.Go(func() { h.Run(ctx) })
	in.onClose(func(context.Context) error {
		cancel()
		wg.Wait()
		dctx, dcancel := context.WithTimeout(context.Background(), holdDrainTimeout)
		_ = h.Drain(dctx) // what is left stays in the spill file
		dcancel()
		return h.Close()
	})
	return nil
}
