package node

import (
	"context"
	"fmt"
	"sync"

	"hardbound/store/auditexport"
)

// startAudit loads (or creates) the audit key, then runs the checkpoints
// and the export sinks of the audit: section until shutdown.
func (in *Node) startAudit() error {
	cfg := in.cfg.Audit
	key, err := auditexport.LoadOrCreateKey(cfg.Checkpoint.KeyPath(in.cfg.DataDir))
	if err != nil {
		return err
	}
	signer, err := auditexport.NewSigner(key)
	if err != nil {
		return err
	}
	keys := auditexport.KeySet{}
	if err := keys.Add(signer.Public()); err != nil {
		return err
	}
	for i, path := range cfg.Checkpoint.TrustedKeys {
		pub, err := auditexport.LoadPublicKey(path)
		if err == nil {
			err = keys.Add(pub)
		}
		if err != nil {
			return fmt.Errorf("config: audit.checkpoint.trusted_keys[%d]: %w", i, err)
		}
	}
	log := in.log.With("component", "audit")
	exp, err := auditexport.New(in.st, cfg, auditexport.Options{Log: log, Metrics: in.metrics.AuditExport()})
	if err != nil {
		return err
	}
	in.audit = auditexport.NewChain(in.st, keys, "")
	cpr := auditexport.NewCheckpointer(in.st, signer, cfg.Checkpoint, log)
	// Not in.ctx: Shutdown cancels that first, while the components still
	// append; this stops in its own closer, after theirs.
	ctx, cancel := context.WithCancel(context.WithoutCancel(in.ctx))
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	wg.Go(func() { cpr.Run(ctx) })
	wg.Go(func() { auditexport.NewPruner(in.st, cfg, log).Run(ctx) })
	in.onClose(func(context.Context) error {
		cancel()
		wg.Wait()
		return nil
	})
	log.Info("audit chain", "key_id", signer.KeyID(), "sinks", len(cfg.Sinks), "checkpoint_every", cfg.Checkpoint.Every,
		"checkpoint_interval", cfg.Checkpoint.Interval.D())
	return nil
}
