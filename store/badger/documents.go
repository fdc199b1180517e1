package badger

import (
	"context"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// maxInMemoryDocument bounds a document in an in-memory store (tests):
// there Badger keeps every value in its memtable, and a value above its
// value threshold (1 MiB, after the JSON's base64) cannot be written. On
// disk such a value goes to the value log, up to store.MaxDocumentSize.
const maxInMemoryDocument = 512 << 10

// GetDocument implements store.Store.
func (s *Store) GetDocument(ctx context.Context, name string) (*store.Document, error) {
	if err := store.CheckID("document name", name); err != nil {
		return nil, fmt.Errorf("store/badger: get document: %w", err)
	}
	d := new(store.Document)
	if err := s.view(ctx, "get document", func(txn *bdb.Txn) error {
		return getJSON(txn, keyDocument(name), d)
	}); err != nil {
		return nil, err
	}
	return d, nil
}

// PutDocument implements store.Store: the stored fetch time is compared
// and the document written in one transaction, so of two nodes writing
// at once the later fetch stays (Badger's conflict detection retries or
// fails the other).
func (s *Store) PutDocument(ctx context.Context, d *store.Document) error {
	if err := store.CheckDocument(d); err != nil {
		return fmt.Errorf("store/badger: put document: %w", err)
	}
	if s.dir == "" && len(d.Body) > maxInMemoryDocument {
		return fmt.Errorf("store/badger: put document %q: %d bytes, an in-memory store holds at most %d", d.Name, len(d.Body), maxInMemoryDocument)
	}
	out := *d
	out.V = store.RecordVersion
	// Microseconds, as PostgreSQL keeps them: both backends compare alike.
	out.Fetched = d.Fetched.UTC().Truncate(time.Microsecond)
	return s.update(ctx, "put document", func(txn *bdb.Txn) error {
		var cur store.Document
		switch err := getJSON(txn, keyDocument(d.Name), &cur); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case cur.Fetched.After(out.Fetched):
			return fmt.Errorf("%w: document %q stored was fetched at %s, after %s", store.ErrConflict, d.Name, cur.Fetched, out.Fetched)
		}
		return setJSON(txn, keyDocument(d.Name), &out)
	})
}
