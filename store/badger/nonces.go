package badger

import (
	"context"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// nonceRecord is what a claimed nonce stores: only its expiry (Badger's TTL
// drops the key after it).
type nonceRecord struct {
	V         int       `json:"v"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ClaimNonce records nonce under scope until expires, once.
func (s *Store) ClaimNonce(ctx context.Context, scope string, nonce store.Hash, expires time.Time) error {
	if err := store.CheckID("scope", scope); err != nil {
		return fmt.Errorf("store/badger: claim nonce: %w", err)
	}
	if nonce.IsZero() || !expires.After(s.clock()) {
		return errors.New("store/badger: claim nonce: a nonce and a future expiry are required")
	}
	k := keyNonce(scope, nonce)
	return s.update(ctx, "claim nonce", func(txn *bdb.Txn) error {
		item, err := txn.Get(k)
		switch {
		case errors.Is(err, bdb.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			// Badger's TTL has second granularity: honour the stored expiry.
			var rec nonceRecord
			if err := item.Value(func(b []byte) error { return decode(k, b, &rec) }); err != nil {
				return err
			}
			if rec.ExpiresAt.After(s.clock()) {
				return fmt.Errorf("%w: nonce", store.ErrExists)
			}
		}
		return setJSONExpiring(txn, k, &nonceRecord{V: store.RecordVersion, ExpiresAt: expires.UTC()}, s.wallExpiry(expires))
	})
}
