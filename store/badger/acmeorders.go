package badger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// accountOrders is the per-account index of ACME orders: one record per
// account listing its orders and their expiry. CreateACMEOrder reads and
// writes it in the transaction that stores the order, so Badger's
// conflict detection serialises two creations for one account, and the
// per-account bound holds exactly. It is small (at most maxPerAccount
// entries) and expires with the account's last order.
type accountOrders struct {
	V      int          `json:"v"`
	Orders []orderEntry `json:"orders"`
}

type orderEntry struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateACMEOrder implements store.Store. Orders and the account index
// carry a Badger TTL at their expiry, so abandoned orders are dropped by
// Badger itself.
func (s *Store) CreateACMEOrder(ctx context.Context, o *store.ACMEOrder, maxPerAccount int) error {
	if err := store.CheckACMEOrder(o); err != nil {
		return fmt.Errorf("store/badger: create acme order: %w", err)
	}
	if maxPerAccount <= 0 {
		return errors.New("store/badger: create acme order: maxPerAccount must be positive")
	}
	var out *store.ACMEOrder
	err := s.update(ctx, "create acme order", func(txn *bdb.Txn) error {
		out = store.CloneACMEOrder(o)
		out.V, out.Version, out.UpdatedAt = store.RecordVersion, 1, s.now()
		store.NormACMEOrderTimes(out)
		if ok, err := exists(txn, keyACMEOrder(out.ID)); err != nil || ok {
			return errors.Join(err, fmt.Errorf("%w: acme order %s", store.ErrExists, out.ID))
		}
		var idx accountOrders
		if err := getJSON(txn, keyACMEAccountOrders(out.Account), &idx); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		live := slices.DeleteFunc(idx.Orders, func(e orderEntry) bool { return !e.ExpiresAt.After(out.CreatedAt) })
		if len(live) >= maxPerAccount {
			return fmt.Errorf("%w: account %s holds %d unexpired acme orders", store.ErrLimit, out.Account, len(live))
		}
		live = append(live, orderEntry{ID: out.ID, ExpiresAt: out.ExpiresAt})
		last := out.ExpiresAt
		for _, e := range live {
			if e.ExpiresAt.After(last) {
				last = e.ExpiresAt
			}
		}
		if err := setJSONExpiring(txn, keyACMEAccountOrders(out.Account), &accountOrders{V: store.RecordVersion, Orders: live}, s.wallExpiry(last)); err != nil {
			return err
		}
		return setJSONExpiring(txn, keyACMEOrder(out.ID), out, s.wallExpiry(out.ExpiresAt))
	})
	if err != nil {
		return err
	}
	*o = *out
	return nil
}

// GetACMEOrder implements store.Store. An id no order could have (it comes
// from a request URL) is not found without a lookup.
func (s *Store) GetACMEOrder(ctx context.Context, id string) (*store.ACMEOrder, error) {
	if err := store.CheckID("acme order id", id); err != nil {
		return nil, fmt.Errorf("store/badger: get acme order: %w: %w", store.ErrNotFound, err)
	}
	o := new(store.ACMEOrder)
	if err := s.view(ctx, "get acme order", func(txn *bdb.Txn) error {
		return getJSON(txn, keyACMEOrder(id), o)
	}); err != nil {
		return nil, err
	}
	return o, nil
}

// UpdateACMEOrder implements store.Store: a compare-and-swap on Version in
// one transaction; Badger's conflict detection makes two concurrent
// updates from one version end in one write and one ErrConflict.
func (s *Store) UpdateACMEOrder(ctx context.Context, o *store.ACMEOrder, prev uint64) error {
	if err := store.CheckACMEOrder(o); err != nil {
		return fmt.Errorf("store/badger: update acme order: %w", err)
	}
	var out *store.ACMEOrder
	if err := s.update(ctx, "update acme order", func(txn *bdb.Txn) error {
		var err error
		out, err = s.updateOrderTxn(txn, o, prev)
		return err
	}); err != nil {
		return err
	}
	*o = *out
	return nil
}

// updateOrderTxn is UpdateACMEOrder inside txn (RecordIssuance uses it too).
func (s *Store) updateOrderTxn(txn *bdb.Txn, o *store.ACMEOrder, prev uint64) (*store.ACMEOrder, error) {
	var cur store.ACMEOrder
	if err := getJSON(txn, keyACMEOrder(o.ID), &cur); err != nil {
		return nil, fmt.Errorf("acme order %s: %w", o.ID, err)
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
	if err := setJSONExpiring(txn, keyACMEOrder(out.ID), out, s.wallExpiry(out.ExpiresAt)); err != nil {
		return nil, err
	}
	return out, nil
}

// ListACMEOrders implements store.Store.
func (s *Store) ListACMEOrders(ctx context.Context, account string) ([]*store.ACMEOrder, error) {
	if store.CheckID("acme order account", account) != nil {
		return nil, nil // no order can have it
	}
	var out []*store.ACMEOrder
	err := s.view(ctx, "list acme orders", func(txn *bdb.Txn) error {
		out = nil
		var idx accountOrders
		switch err := getJSON(txn, keyACMEAccountOrders(account), &idx); {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		now := s.now()
		for _, e := range idx.Orders {
			if !e.ExpiresAt.After(now) {
				continue
			}
			o := new(store.ACMEOrder)
			switch err := getJSON(txn, keyACMEOrder(e.ID), o); {
			case errors.Is(err, store.ErrNotFound):
				continue // expired between the index's read and its own
			case err != nil:
				return err
			}
			out = append(out, o)
		}
		return nil
	})
	return out, err
}
