package badger

import (
	"context"
	"fmt"
	"io"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// Backup writes a full snapshot in Badger's stream backup format (a
// consistent read view; writers are not blocked). Challenge TTLs travel
// with it.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store/badger: backup: %w", err)
	}
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("store/badger: backup: %w", err)
	}
	return nil
}

// maxPendingWrites bounds the memory Restore uses while loading.
const maxPendingWrites = 256

// Restore loads a backup made by Backup into an empty store; a store with
// any record fails with store.ErrExists. Badger's loader must not race with
// other transactions, so nothing else may use the store during Restore
// (it is a setup-time operation); audit appends are held off regardless.
//
// Once loading has begun Restore announces store.ChangeReset, even when it
// fails part way: some of the backup may be in.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store/badger: restore: %w", err)
	}
	var loadErr error
	err := s.announcing(func() ([]store.Change, error) {
		s.auditMu.Lock()
		defer s.auditMu.Unlock()
		s.closeMu.RLock()
		defer s.closeMu.RUnlock()
		if err := s.checkEmpty(); err != nil {
			return nil, err
		}
		loadErr = s.load(r)
		return []store.Change{{Kind: store.ChangeReset, At: s.now()}}, nil
	})
	if err != nil {
		return err
	}
	return loadErr
}

// checkEmpty fails unless the store is open and holds no record.
func (s *Store) checkEmpty() error {
	if s.closed {
		return fmt.Errorf("store/badger: restore: %w", ErrClosed)
	}
	empty := true
	if err := s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	}); err != nil {
		return fmt.Errorf("store/badger: restore: %w", err)
	}
	if !empty {
		return fmt.Errorf("store/badger: restore: %w: store is not empty", store.ErrExists)
	}
	return nil
}

// load streams the backup in and syncs it.
func (s *Store) load(r io.Reader) error {
	if err := s.db.Load(r, maxPendingWrites); err != nil {
		return fmt.Errorf("store/badger: restore: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("store/badger: restore: sync: %w", err)
	}
	return nil
}
