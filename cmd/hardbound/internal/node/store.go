package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/postgres"
)

// openStore opens the backend the store: section names: Badger in
// <data_dir>/db (the default), or PostgreSQL (store.postgres), whose
// migrations Open applies under an advisory lock.
func openStore(ctx context.Context, cfg *Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Store.Backend {
	case postgres.BackendPostgres:
		pc := &cfg.Store.Postgres
		st, err := postgres.Open(ctx, pc.ResolvedDSN(), append(pc.Options(), postgres.WithLogger(log))...)
		if err != nil {
			return nil, err
		}
		log.Info("store: postgres", "listen", pc.Listen, "poll_interval", pc.PollInterval.D(), "max_conns", pc.MaxConns)
		return st, nil
	default:
		return badger.Open(ctx, filepath.Join(cfg.DataDir, "db"), badger.WithLogger(log))
	}
}

// afterWarm runs once posture's caches are warm. The warm read every
// device and binding; on Badger that went through its mapped tables, whose
// pages are handed back to the kernel (they stay on disk; Decide now
// answers from the caches). Tables written later are released by the store
// itself.
func (in *Node) afterWarm(st store.Store) {
	bs, ok := st.(*badger.Store)
	if !ok {
		return
	}
	t0 := time.Now()
	rel, err := bs.ReleaseTablePages(in.ctx)
	switch {
	case err != nil && in.ctx.Err() == nil:
		in.log.Warn("release table pages after warm", "err", err)
	case err == nil:
		in.log.Info("released table pages after warm", "tables", rel.Tables, "mapped_bytes", rel.Bytes,
			"took", time.Since(t0).Round(time.Millisecond))
	}
}

// MigrateStore applies the PostgreSQL migrations ahead of a start
// (`hardbound store migrate`), returning the versions applied. With the
// Badger backend there is nothing to migrate.
func MigrateStore(ctx context.Context, cfg *Config) ([]int, error) {
	if cfg.Store.Backend != postgres.BackendPostgres {
		return nil, fmt.Errorf("store.backend is %q: only postgres has migrations", cfg.Store.Backend)
	}
	return postgres.Migrate(ctx, cfg.Store.Postgres.ResolvedDSN())
}

// Migrated says what MigrateStore did, as `hardbound store migrate`
// reports it: the versions applied and the schema's version now.
func Migrated(applied []int) string {
	if len(applied) == 0 {
		return fmt.Sprintf("schema is at version %d: nothing to do", postgres.SchemaVersion())
	}
	return fmt.Sprintf("applied migrations %v: schema is at version %d", applied, postgres.SchemaVersion())
}
