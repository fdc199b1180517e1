package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// PutAuditCheckpoint stores cp under its seq, replacing one already there.
func (s *Store) PutAuditCheckpoint(ctx context.Context, cp *store.AuditCheckpoint) error {
	if cp == nil || cp.Seq == 0 {
		return errors.New("store/postgres: put audit checkpoint: nil checkpoint or seq 0")
	}
	c := *cp
	c.V = store.RecordVersion
	c.Time = c.Time.UTC().Round(0)
	b, err := encode(&c)
	if err != nil {
		return fmt.Errorf("store/postgres: put audit checkpoint: %w", err)
	}
	return s.tx(ctx, "put audit checkpoint", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO audit_checkpoints (seq, rec) VALUES ($1, $2) ON CONFLICT (seq) DO UPDATE SET rec = EXCLUDED.rec",
			int64(c.Seq), b)
		return err
	})
}

// ScanAuditCheckpoints calls fn for every checkpoint with Seq >= from, in
// order, from one read snapshot.
func (s *Store) ScanAuditCheckpoints(ctx context.Context, from uint64, fn func(*store.AuditCheckpoint) error) error {
	if from > 1<<63-1 {
		return nil
	}
	return s.readTx(ctx, "scan audit checkpoints", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT rec FROM audit_checkpoints WHERE seq >= $1 ORDER BY seq", int64(from))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				return err
			}
			cp := new(store.AuditCheckpoint)
			if err := decodeInto(b, cp); err != nil {
				return err
			}
			if err := fn(cp); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// LastAuditCheckpoint returns the checkpoint with the highest seq.
func (s *Store) LastAuditCheckpoint(ctx context.Context) (*store.AuditCheckpoint, error) {
	cp := new(store.AuditCheckpoint)
	err := s.read(ctx, "last audit checkpoint", func(q querier) error {
		var b []byte
		if err := q.QueryRow(ctx, "SELECT rec FROM audit_checkpoints ORDER BY seq DESC LIMIT 1").Scan(&b); err != nil {
			return fmt.Errorf("audit checkpoint: %w", notFound(err))
		}
		return decodeInto(b, cp)
	})
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// GetAuditCursor returns the cursor of one export sink.
func (s *Store) GetAuditCursor(ctx context.Context, sink string) (*store.AuditCursor, error) {
	if err := store.CheckID("sink", sink); err != nil {
		return nil, err
	}
	c := new(store.AuditCursor)
	err := s.read(ctx, "get audit cursor", func(q querier) error {
		var b []byte
		if err := q.QueryRow(ctx, "SELECT rec FROM audit_cursors WHERE sink = $1", sink).Scan(&b); err != nil {
			return fmt.Errorf("audit cursor %q: %w", sink, notFound(err))
		}
		return decodeInto(b, c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// PutAuditCursor replaces the cursor of c.Sink; UpdatedAt is set if zero.
func (s *Store) PutAuditCursor(ctx context.Context, c *store.AuditCursor) error {
	if c == nil {
		return errors.New("store/postgres: put audit cursor: nil cursor")
	}
	if err := store.CheckID("sink", c.Sink); err != nil {
		return err
	}
	v := *c
	v.V = store.RecordVersion
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = s.now()
	}
	v.UpdatedAt = v.UpdatedAt.UTC().Round(0)
	b, err := encode(&v)
	if err != nil {
		return fmt.Errorf("store/postgres: put audit cursor: %w", err)
	}
	return s.tx(ctx, "put audit cursor", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO audit_cursors (sink, rec) VALUES ($1, $2) ON CONFLICT (sink) DO UPDATE SET rec = EXCLUDED.rec",
			v.Sink, b)
		return err
	})
}

// pruneBatch bounds the events one PruneAudit transaction deletes.
const pruneBatch = 2000

// PruneAudit deletes the events up to through in transactions of
// pruneBatch, each moving the prune mark (audit_pruned) to the last event
// it deleted, so the mark and the deleted prefix always agree. Nodes
// pruning at once delete the same rows; the mark only moves forward.
func (s *Store) PruneAudit(ctx context.Context, through uint64) (int, error) {
	var head int64
	if err := s.read(ctx, "prune audit", func(q querier) error {
		return q.QueryRow(ctx, "SELECT seq FROM audit_head").Scan(&head)
	}); err != nil {
		return 0, err
	}
	if through >= uint64(head) {
		return 0, fmt.Errorf("store/postgres: prune audit through %d: the head is %d and always stays", through, head)
	}
	total := 0
	for {
		var n int
		err := s.tx(ctx, "prune audit", func(tx pgx.Tx) error {
			n = 0
			var (
				last int64
				b    []byte
			)
			err := tx.QueryRow(ctx, `SELECT seq, rec FROM audit WHERE seq IN
				(SELECT seq FROM audit WHERE seq <= $1 ORDER BY seq LIMIT $2) ORDER BY seq DESC LIMIT 1`,
				int64(through), pruneBatch).Scan(&last, &b)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			var e store.AuditEvent
			if err := json.Unmarshal(b, &e); err != nil {
				return fmt.Errorf("event %d: %w", last, err)
			}
			tag, err := tx.Exec(ctx, "DELETE FROM audit WHERE seq <= $1", last)
			if err != nil {
				return err
			}
			n = int(tag.RowsAffected())
			_, err = tx.Exec(ctx, `INSERT INTO audit_pruned (seq, hash) VALUES ($1, $2)
				ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE audit_pruned.seq < excluded.seq`,
				last, e.Hash.String())
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
