package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// ClaimNonce records nonce under scope until expires: the first claim
// inserts the row, a later one finds it live and fails with ErrExists. An
// expired claim is taken over in place, and each claim deletes up to 100
// expired claims of its scope, so the table holds little more than what can
// still be replayed.
func (s *Store) ClaimNonce(ctx context.Context, scope string, nonce store.Hash, expires time.Time) error {
	if err := store.CheckID("scope", scope); err != nil {
		return fmt.Errorf("store/postgres: claim nonce: %w", err)
	}
	now := s.now()
	if nonce.IsZero() || !expires.After(now) {
		return errors.New("store/postgres: claim nonce: a nonce and a future expiry are required")
	}
	return s.tx(ctx, "claim nonce", func(tx pgx.Tx) error {
		// One statement: insert, or take over a claim that has expired.
		// A live claim leaves the row alone and returns nothing.
		var got string
		err := tx.QueryRow(ctx, `INSERT INTO nonces (scope, nonce, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (scope, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
			WHERE nonces.expires_at <= $4
			RETURNING nonce`, scope, nonce.String(), expires.UTC(), now).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: nonce", store.ErrExists)
		}
		if err != nil {
			return err
		}
		// Drop a bounded number of expired claims of this scope, so the
		// table holds only what can still be replayed.
		_, err = tx.Exec(ctx, `DELETE FROM nonces WHERE ctid IN (SELECT ctid FROM nonces
			WHERE scope = $1 AND expires_at <= $2 LIMIT 100)`, scope, now)
		return err
	})
}
