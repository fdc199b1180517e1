package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// GetDocument implements store.Store.
func (s *Store) GetDocument(ctx context.Context, name string) (*store.Document, error) {
	if err := store.CheckID("document name", name); err != nil {
		return nil, fmt.Errorf("store/postgres: get document: %w", err)
	}
	d := &store.Document{V: store.RecordVersion, Name: name}
	err := s.read(ctx, "get document", func(q querier) error {
		err := q.QueryRow(ctx, "SELECT source, fetched, body FROM documents WHERE name = $1", name).Scan(&d.Source, &d.Fetched, &d.Body)
		if err != nil {
			return fmt.Errorf("document %q: %w", name, notFound(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.Fetched = d.Fetched.UTC()
	return d, nil
}

// PutDocument implements store.Store: one upsert whose WHERE keeps a row
// fetched later, so of two nodes writing at once the newer fetch stays
// and the other gets store.ErrConflict.
func (s *Store) PutDocument(ctx context.Context, d *store.Document) error {
	if err := store.CheckDocument(d); err != nil {
		return fmt.Errorf("store/postgres: put document: %w", err)
	}
	// timestamptz holds microseconds; compare what is stored.
	fetched := d.Fetched.UTC().Truncate(time.Microsecond)
	return s.tx(ctx, "put document", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO documents (name, source, fetched, body) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET source = excluded.source, fetched = excluded.fetched, body = excluded.body
			WHERE documents.fetched <= excluded.fetched`, d.Name, d.Source, fetched, d.Body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("%w: document %q stored was fetched after %s", store.ErrConflict, d.Name, fetched)
		}
		return nil
	})
}
