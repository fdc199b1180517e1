package badger

import (
	"context"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// Export implements store.Exporter from one consistent read view.
func (s *Store) Export(ctx context.Context, fn func(store.Record) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("store/badger: export: %w", ErrClosed)
	}
	err := s.db.View(func(txn *bdb.Txn) error {
		scan := func(prefix string, rec func(k, v []byte) (store.Record, error)) error {
			it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 256})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				item := it.Item()
				var r store.Record
				if err := item.Value(func(b []byte) error {
					var err error
					r, err = rec(item.Key(), b)
					return err
				}); err != nil {
					return err
				}
				if err := fn(r); err != nil {
					return err
				}
			}
			return nil
		}
		into := func(v any) func(k, b []byte) error { return func(k, b []byte) error { return decode(k, b, v) } }
		steps := []struct {
			prefix string
			rec    func(k, b []byte) (store.Record, error)
		}{
			{pfxDevice, func(k, b []byte) (store.Record, error) {
				d := new(store.Device)
				return store.Record{Device: d}, into(d)(k, b)
			}},
			{pfxAttestation, func(k, b []byte) (store.Record, error) {
				a := new(store.Attestation)
				return store.Record{Attestation: a}, into(a)(k, b)
			}},
			{pfxCert, func(k, b []byte) (store.Record, error) {
				c := new(store.Cert)
				if err := into(c)(k, b); err != nil {
					return store.Record{}, err
				}
				item, err := txn.Get(keyCertDER(c.SHA256))
				if err != nil {
					return store.Record{}, fmt.Errorf("der of %s: %w", c.SHA256, err)
				}
				if c.DER, err = item.ValueCopy(nil); err != nil {
					return store.Record{}, err
				}
				return store.Record{Cert: c}, nil
			}},
			{pfxSession, func(k, b []byte) (store.Record, error) {
				v := new(store.Session)
				return store.Record{Session: v}, into(v)(k, b)
			}},
			{pfxACMEAccount, func(k, b []byte) (store.Record, error) {
				v := new(store.ACMEAccount)
				return store.Record{ACMEAccount: v}, into(v)(k, b)
			}},
			{pfxAudit, func(k, b []byte) (store.Record, error) {
				v := new(store.AuditEvent)
				return store.Record{Audit: v}, into(v)(k, b)
			}},
			{pfxAuditCP, func(k, b []byte) (store.Record, error) {
				v := new(store.AuditCheckpoint)
				return store.Record{Checkpoint: v}, into(v)(k, b)
			}},
			{pfxAuditCursor, func(k, b []byte) (store.Record, error) {
				v := new(store.AuditCursor)
				return store.Record{Cursor: v}, into(v)(k, b)
			}},
		}
		for _, st := range steps {
			if err := scan(st.prefix, st.rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store/badger: export: %w", err)
	}
	return nil
}
