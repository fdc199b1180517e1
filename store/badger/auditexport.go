package badger

import (
	"context"
	"errors"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// PutAuditCheckpoint stores cp under its seq, replacing one already there.
func (s *Store) PutAuditCheckpoint(ctx context.Context, cp *store.AuditCheckpoint) error {
	if cp == nil || cp.Seq == 0 {
		return errors.New("store/badger: put audit checkpoint: nil checkpoint or seq 0")
	}
	c := *cp
	c.V = store.RecordVersion
	c.Time = c.Time.UTC().Round(0)
	return s.update(ctx, "put audit checkpoint", func(txn *bdb.Txn) error {
		return setJSON(txn, keyAuditCheckpoint(c.Seq), &c)
	})
}

// ScanAuditCheckpoints calls fn for every checkpoint with Seq >= from, in
// order, inside one read snapshot.
func (s *Store) ScanAuditCheckpoints(ctx context.Context, from uint64, fn func(*store.AuditCheckpoint) error) error {
	return s.view(ctx, "scan audit checkpoints", func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix = []byte(pfxAuditCP)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(keyAuditCheckpoint(from)); it.ValidForPrefix(opts.Prefix); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			cp, err := decodeCheckpoint(it.Item())
			if err != nil {
				return err
			}
			if err := fn(cp); err != nil {
				return err
			}
		}
		return nil
	})
}

// LastAuditCheckpoint returns the checkpoint with the highest seq.
func (s *Store) LastAuditCheckpoint(ctx context.Context) (*store.AuditCheckpoint, error) {
	var out *store.AuditCheckpoint
	err := s.view(ctx, "last audit checkpoint", func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = []byte(pfxAuditCP)
		opts.PrefetchSize = 1
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(keyAuditCheckpoint(^uint64(0)))
		if !it.ValidForPrefix(opts.Prefix) {
			return fmt.Errorf("audit checkpoint: %w", store.ErrNotFound)
		}
		cp, err := decodeCheckpoint(it.Item())
		out = cp
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeCheckpoint(item *bdb.Item) (*store.AuditCheckpoint, error) {
	cp := new(store.AuditCheckpoint)
	if err := item.Value(func(b []byte) error { return decode(item.Key(), b, cp) }); err != nil {
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
	if err := s.view(ctx, "get audit cursor", func(txn *bdb.Txn) error {
		return getJSON(txn, keyAuditCursor(sink), c)
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// PutAuditCursor replaces the cursor of c.Sink; UpdatedAt is set if zero.
func (s *Store) PutAuditCursor(ctx context.Context, c *store.AuditCursor) error {
	if c == nil {
		return errors.New("store/badger: put audit cursor: nil cursor")
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
	return s.update(ctx, "put audit cursor", func(txn *bdb.Txn) error {
		return setJSON(txn, keyAuditCursor(v.Sink), &v)
	})
}

// pruneBatch bounds the events one PruneAudit transaction deletes.
const pruneBatch = 2000

// PruneAudit deletes the events up to through in transactions of
// pruneBatch. Each transaction also moves the prune mark
// (meta/audit-pruned: the seq and hash of the last deleted event), which
// is where VerifyAudit starts linking, so the mark and the deleted prefix
// always agree.
func (s *Store) PruneAudit(ctx context.Context, through uint64) (int, error) {
	var head auditHead
	if err := s.view(ctx, "prune audit", func(txn *bdb.Txn) error {
		return getJSON(txn, keyAuditHead(), &head)
	}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	if through >= head.Seq {
		return 0, fmt.Errorf("store/badger: prune audit through %d: the head is %d and always stays", through, head.Seq)
	}
	total := 0
	for {
		var n int
		err := s.update(ctx, "prune audit", func(txn *bdb.Txn) error {
			n = 0
			opts := bdb.DefaultIteratorOptions
			opts.Prefix = []byte(pfxAudit)
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			var keys [][]byte
			var last []byte
			for it.Seek(keyAudit(0)); it.ValidForPrefix(opts.Prefix) && len(keys) < pruneBatch; it.Next() {
				seq, ok := seqFromAuditKey(it.Item().Key())
				if !ok || seq > through {
					break
				}
				keys = append(keys, it.Item().KeyCopy(nil))
				last = keys[len(keys)-1]
			}
			var mark auditHead
			if last != nil {
				item, err := txn.Get(last)
				if err == nil {
					var e *store.AuditEvent
					if e, err = decodeAudit(item); err == nil {
						mark = auditHead{V: store.RecordVersion, Seq: e.Seq, Hash: e.Hash}
					}
				}
				if err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			if n == 0 {
				return nil
			}
			return setJSON(txn, keyAuditPruned(), mark)
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
