package badger

import (
	"context"
	"errors"
	"fmt"
	"slices"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// PutACMEAccount creates or replaces an account by ID and points its
// thumbprint at it. A thumbprint held by another account fails with
// store.ErrExists: two concurrent creations for one key both see it free,
// Badger's conflict detection aborts one, and its retry sees the owner.
func (s *Store) PutACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	if a == nil {
		return errors.New("store/badger: put acme account: nil account")
	}
	if err := store.CheckACMEAccount(a); err != nil {
		return fmt.Errorf("store/badger: put acme account: %w", err)
	}
	var out store.ACMEAccount
	if err := s.update(ctx, "put acme account", func(txn *bdb.Txn) error {
		out = cloneACMEAccount(a)
		out.V = store.RecordVersion
		now := s.now()
		out.UpdatedAt = now
		var old store.ACMEAccount
		switch err := getJSON(txn, keyACMEAccount(a.ID), &old); {
		case err == nil:
			if !old.CreatedAt.IsZero() {
				out.CreatedAt = old.CreatedAt
			}
			if old.Thumbprint != out.Thumbprint {
				if err := txn.Delete(keyACMEThumbprint(old.Thumbprint)); err != nil {
					return err
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if out.CreatedAt.IsZero() {
			out.CreatedAt = now
		}
		owner, err := getRef(txn, keyACMEThumbprint(out.Thumbprint))
		switch {
		case err == nil && owner != out.ID:
			return fmt.Errorf("%w: thumbprint belongs to acme account %q", store.ErrExists, owner)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := setRef(txn, keyACMEThumbprint(out.Thumbprint), out.ID); err != nil {
			return err
		}
		return setJSON(txn, keyACMEAccount(out.ID), &out)
	}); err != nil {
		return err
	}
	*a = out
	return nil
}

func cloneACMEAccount(a *store.ACMEAccount) store.ACMEAccount {
	c := *a
	c.JWK = slices.Clone(a.JWK)
	c.Contact = slices.Clone(a.Contact)
	return c
}

// GetACMEAccount returns the account or an error wrapping store.ErrNotFound.
// An id no account could have (empty, NUL, oversize: it comes from a
// request URL) is not found without a lookup.
func (s *Store) GetACMEAccount(ctx context.Context, id string) (*store.ACMEAccount, error) {
	if err := store.CheckID("acme account id", id); err != nil {
		return nil, fmt.Errorf("store/badger: get acme account: %w: %w", store.ErrNotFound, err)
	}
	a := new(store.ACMEAccount)
	if err := s.view(ctx, "get acme account", func(txn *bdb.Txn) error {
		return getJSON(txn, keyACMEAccount(id), a)
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// FindACMEAccountByThumbprint returns the account holding the key with this
// RFC 7638 thumbprint.
func (s *Store) FindACMEAccountByThumbprint(ctx context.Context, tp string) (*store.ACMEAccount, error) {
	if err := store.CheckID("acme thumbprint", tp); err != nil {
		return nil, fmt.Errorf("store/badger: find acme account: %w: %w", store.ErrNotFound, err)
	}
	a := new(store.ACMEAccount)
	if err := s.view(ctx, "find acme account by thumbprint", func(txn *bdb.Txn) error {
		id, err := getRef(txn, keyACMEThumbprint(tp))
		if err != nil {
			return err
		}
		if err := getJSON(txn, keyACMEAccount(id), a); err != nil {
			return fmt.Errorf("thumbprint index -> acme account: %w", err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return a, nil
}
