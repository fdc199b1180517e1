package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// orderLockClass is the first key of the transaction-scoped advisory lock
// CreateACMEOrder takes per account (the second is a hash of the account),
// in the two-key space that the migration lock's one-key form does not
// share.
const orderLockClass = 0x61636d65 // "acme"

// pruneOrderBatch bounds how many expired orders one creation deletes.
const pruneOrderBatch = 100

// CreateACMEOrder implements store.Store. The per-account bound is exact
// across nodes: creations for one account take one advisory lock for
// their transaction, so they count and insert one at a time.
func (s *Store) CreateACMEOrder(ctx context.Context, o *store.ACMEOrder, maxPerAccount int) error {
	if err := store.CheckACMEOrder(o); err != nil {
		return fmt.Errorf("store/postgres: create acme order: %w", err)
	}
	if maxPerAccount <= 0 {
		return errors.New("store/postgres: create acme order: maxPerAccount must be positive")
	}
	var out *store.ACMEOrder
	err := s.tx(ctx, "create acme order", func(tx pgx.Tx) error {
		now := s.now()
		out = store.CloneACMEOrder(o)
		out.V, out.Version, out.UpdatedAt = store.RecordVersion, 1, now
		store.NormACMEOrderTimes(out)
		b, err := encode(out)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", int32(orderLockClass), out.Account); err != nil {
			return err
		}
		// Abandoned orders of every account: a bounded batch, skipping
		// rows another creation is deleting.
		if _, err := tx.Exec(ctx, `DELETE FROM acme_orders WHERE id IN (SELECT id FROM acme_orders
			WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now, pruneOrderBatch); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM acme_orders WHERE account = $1 AND expires_at > $2",
			out.Account, out.CreatedAt).Scan(&n); err != nil {
			return err
		}
		if n >= maxPerAccount {
			return fmt.Errorf("%w: account %s holds %d unexpired acme orders", store.ErrLimit, out.Account, n)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO acme_orders (id, account, version, created_at, expires_at, rec)
			VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (id) DO NOTHING`, out.ID, out.Account, out.CreatedAt, out.ExpiresAt, b)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: acme order %s", store.ErrExists, out.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*o = *out
	return nil
}

// GetACMEOrder implements store.Store.
func (s *Store) GetACMEOrder(ctx context.Context, id string) (*store.ACMEOrder, error) {
	if err := store.CheckID("acme order id", id); err != nil {
		return nil, fmt.Errorf("store/postgres: get acme order: %w: %w", store.ErrNotFound, err)
	}
	return getOne[store.ACMEOrder](ctx, s, "get acme order", "SELECT rec FROM acme_orders WHERE id = $1", id)
}

// UpdateACMEOrder implements store.Store: the update names the version it
// expects, so of two nodes writing one order at once one changes the row
// and the other gets store.ErrConflict.
func (s *Store) UpdateACMEOrder(ctx context.Context, o *store.ACMEOrder, prev uint64) error {
	if err := store.CheckACMEOrder(o); err != nil {
		return fmt.Errorf("store/postgres: update acme order: %w", err)
	}
	var out *store.ACMEOrder
	if err := s.tx(ctx, "update acme order", func(tx pgx.Tx) error {
		var err error
		out, err = s.updateOrderTx(ctx, tx, o, prev)
		return err
	}); err != nil {
		return err
	}
	*o = *out
	return nil
}

// updateOrderTx is UpdateACMEOrder inside tx (RecordIssuance uses it too).
func (s *Store) updateOrderTx(ctx context.Context, tx pgx.Tx, o *store.ACMEOrder, prev uint64) (*store.ACMEOrder, error) {
	var b []byte
	if err := tx.QueryRow(ctx, "SELECT rec FROM acme_orders WHERE id = $1 FOR UPDATE", o.ID).Scan(&b); err != nil {
		return nil, fmt.Errorf("acme order %s: %w", o.ID, notFound(err))
	}
	var cur store.ACMEOrder
	if err := decodeInto(b, &cur); err != nil {
		return nil, err
	}
	out := store.CloneACMEOrder(o)
	store.NormACMEOrderTimes(out)
	switch {
	case cur.Version != prev:
		return nil, fmt.Errorf("%w: acme order %s at version %d, expected %d", store.ErrConflict, o.ID, cur.Version, prev)
	case cur.Account != out.Account || !cur.CreatedAt.Equal(out.CreatedAt) || !cur.ExpiresAt.Equal(out.ExpiresAt):
		return nil, fmt.Errorf("acme order %s: account, creation and expiry cannot change", o.ID)
	}
	out.V, out.Version, out.UpdatedAt = store.RecordVersion, prev+1, s.now()
	rec, err := encode(out)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "UPDATE acme_orders SET version = $1, rec = $2 WHERE id = $3", int64(out.Version), rec, out.ID); err != nil {
		return nil, err
	}
	return out, nil
}

// ListACMEOrders implements store.Store.
func (s *Store) ListACMEOrders(ctx context.Context, account string) ([]*store.ACMEOrder, error) {
	if store.CheckID("acme order account", account) != nil {
		return nil, nil
	}
	var out []*store.ACMEOrder
	err := s.read(ctx, "list acme orders", func(q querier) error {
		out = nil
		rows, err := q.Query(ctx, "SELECT rec FROM acme_orders WHERE account = $1 AND expires_at > $2 ORDER BY created_at, id", account, s.now())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				return err
			}
			o := new(store.ACMEOrder)
			if err := decodeInto(b, o); err != nil {
				return err
			}
			out = append(out, o)
		}
		return rows.Err()
	})
	return out, err
}
