package badger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// update runs fn in a read-write transaction and commits it, retrying the
// whole transaction when Badger reports a conflict with a concurrent one.
// fn may therefore run more than once and must not leak state between runs.
func (s *Store) update(ctx context.Context, op string, fn func(txn *bdb.Txn) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("store/badger: %s: %w", op, ErrClosed)
	}
	var err error
	for range maxTxnAttempts {
		if err = ctx.Err(); err != nil {
			return fmt.Errorf("store/badger: %s: %w", op, err)
		}
		err = s.db.Update(fn)
		if !errors.Is(err, bdb.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store/badger: %s: %w", op, err)
	}
	return nil
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, op string, fn func(txn *bdb.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store/badger: %s: %w", op, err)
	}
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("store/badger: %s: %w", op, err)
	}
	return nil
}

// getJSON decodes the value at k into v; absent keys yield store.ErrNotFound.
// It decodes straight from Badger's buffer (json copies what it keeps), which
// saves a value copy on the GetCert/GetDevice hot path.
func getJSON(txn *bdb.Txn, k []byte, v any) error {
	item, err := txn.Get(k)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return decode(k, b, v) })
}

func decode(k, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %q: %w", k, err)
	}
	return nil
}

// exists reports whether k is present (and not expired).
func exists(txn *bdb.Txn, k []byte) (bool, error) {
	_, err := txn.Get(k)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func setJSON(txn *bdb.Txn, k []byte, v any) error {
	b, err := jsonMarshal(k, v)
	if err != nil {
		return err
	}
	return txn.Set(k, b)
}

func jsonMarshal(k []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %q: %w", k, err)
	}
	return b, nil
}

// ref is the value of every secondary index entry that points at another
// record (serial -> cert hash, key hash -> attestation id, alias -> device).
type ref struct {
	V   int    `json:"v"`
	Ref string `json:"ref"`
}

func setRef(txn *bdb.Txn, k []byte, to string) error {
	return setJSON(txn, k, ref{V: store.RecordVersion, Ref: to})
}

func getRef(txn *bdb.Txn, k []byte) (string, error) {
	var r ref
	if err := getJSON(txn, k, &r); err != nil {
		return "", err
	}
	return r.Ref, nil
}

// limit clamps a page size into [1, maxLimit], 0 meaning the default.
func limit(p store.Page) int {
	switch {
	case p.Limit <= 0:
		return defaultLimit
	case p.Limit > maxLimit:
		return maxLimit
	}
	return p.Limit
}

// scanPage walks keys under prefix in order, starting after prefix+after,
// and collects up to n records that load accepts (filters reject). The
// returned cursor is the last collected key without prefix, and is set only
// if another accepted record follows, so the final page returns "".
func scanPage[T any](txn *bdb.Txn, prefix []byte, after string, n int, load func(item *bdb.Item) (T, bool, error)) ([]T, string, error) {
	opts := bdb.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchSize = min(n+1, opts.PrefetchSize)
	it := txn.NewIterator(opts)
	defer it.Close()

	start := append(append([]byte{}, prefix...), after...)
	var (
		out  []T
		last string
	)
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		suffix := string(item.Key()[len(prefix):])
		if after != "" && suffix == after {
			continue
		}
		v, ok, err := load(item)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			continue
		}
		if len(out) == n {
			return out, last, nil // one more exists: there is a next page
		}
		out = append(out, v)
		last = suffix
	}
	return out, "", nil
}
