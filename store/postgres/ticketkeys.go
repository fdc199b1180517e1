package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// maxSealedTicketKeys bounds the sealed record, as the Badger backend does.
const maxSealedTicketKeys = 4 << 10

// GetTicketKeys implements store.Store.
func (s *Store) GetTicketKeys(ctx context.Context) (*store.TicketKeys, error) {
	k := new(store.TicketKeys)
	err := s.read(ctx, "get ticket keys", func(q querier) error {
		var b []byte
		if err := q.QueryRow(ctx, "SELECT rec FROM ticket_keys WHERE id = 1").Scan(&b); err != nil {
			return fmt.Errorf("ticket keys: %w", notFound(err))
		}
		return decodeInto(b, k)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// PutTicketKeys implements store.Store: the insert of the first record
// and every update name the version they expect, so of two nodes writing
// at once one changes a row and the other gets store.ErrConflict.
func (s *Store) PutTicketKeys(ctx context.Context, k *store.TicketKeys, prev uint64) error {
	switch {
	case k == nil:
		return errors.New("store/postgres: put ticket keys: nil record")
	case len(k.Sealed) == 0 || len(k.Sealed) > maxSealedTicketKeys:
		return fmt.Errorf("store/postgres: put ticket keys: sealed keys of %d bytes", len(k.Sealed))
	}
	v := *k
	v.V = store.RecordVersion
	v.Version = prev + 1
	v.Sealed = append([]byte(nil), k.Sealed...)
	v.Rotated = v.Rotated.UTC().Round(0)
	b, err := encode(&v)
	if err != nil {
		return fmt.Errorf("store/postgres: put ticket keys: %w", err)
	}
	if err := s.tx(ctx, "put ticket keys", func(tx pgx.Tx) error {
		var n int64
		if prev == 0 {
			tag, err := tx.Exec(ctx, "INSERT INTO ticket_keys (id, version, rec) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING", int64(v.Version), b)
			if err != nil {
				return err
			}
			n = tag.RowsAffected()
		} else {
			tag, err := tx.Exec(ctx, "UPDATE ticket_keys SET version = $1, rec = $2 WHERE id = 1 AND version = $3", int64(v.Version), b, int64(prev))
			if err != nil {
				return err
			}
			n = tag.RowsAffected()
		}
		if n != 1 {
			return fmt.Errorf("%w: ticket keys are not at version %d", store.ErrConflict, prev)
		}
		return nil
	}); err != nil {
		return err
	}
	*k = v
	return nil
}
