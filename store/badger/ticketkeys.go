package badger

import (
	"context"
	"errors"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// maxSealedTicketKeys bounds the sealed record: a few 32-octet keys and
// the AEAD overhead are far below it.
const maxSealedTicketKeys = 4 << 10

// GetTicketKeys implements store.Store.
func (s *Store) GetTicketKeys(ctx context.Context) (*store.TicketKeys, error) {
	var k store.TicketKeys
	if err := s.view(ctx, "get ticket keys", func(txn *bdb.Txn) error {
		return getJSON(txn, []byte(keyTicketKeysStr), &k)
	}); err != nil {
		return nil, err
	}
	return &k, nil
}

// PutTicketKeys implements store.Store: a compare-and-swap on Version in
// one transaction; Badger's conflict detection makes two concurrent puts
// with the same prev end in one write and one ErrConflict.
func (s *Store) PutTicketKeys(ctx context.Context, k *store.TicketKeys, prev uint64) error {
	switch {
	case k == nil:
		return errors.New("store/badger: put ticket keys: nil record")
	case len(k.Sealed) == 0 || len(k.Sealed) > maxSealedTicketKeys:
		return fmt.Errorf("store/badger: put ticket keys: sealed keys of %d bytes", len(k.Sealed))
	}
	out := *k
	out.V = store.RecordVersion
	out.Version = prev + 1
	out.Sealed = append([]byte(nil), k.Sealed...)
	if err := s.update(ctx, "put ticket keys", func(txn *bdb.Txn) error {
		var cur store.TicketKeys
		switch err := getJSON(txn, []byte(keyTicketKeysStr), &cur); {
		case errors.Is(err, store.ErrNotFound):
			if prev != 0 {
				return fmt.Errorf("%w: no ticket keys stored, expected version %d", store.ErrConflict, prev)
			}
		case err != nil:
			return err
		case cur.Version != prev:
			return fmt.Errorf("%w: ticket keys at version %d, expected %d", store.ErrConflict, cur.Version, prev)
		}
		return setJSON(txn, []byte(keyTicketKeysStr), &out)
	}); err != nil {
		return err
	}
	*k = out
	return nil
}
