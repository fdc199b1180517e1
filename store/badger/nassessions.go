package badger

import (
	"context"
	"errors"
	"fmt"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

const (
	// closeBatch bounds the sessions closed per transaction. Badger also
	// caps a transaction's size (ErrTxnTooBig), which ends a batch early.
	closeBatch = 256
	// closeScan bounds the keys one transaction examines, so a NAS with a
	// long history of closed sessions does not turn one batch into a scan
	// of all of them (every key read is tracked for conflict detection).
	closeScan = 4096
)

// openSession is a session to close and the key it is stored under.
type openSession struct {
	key  []byte
	sess *store.Session
}

// CloseNASSessions marks the live sessions of nas that started at or before
// at as stopped, a batch per transaction, walking the NAS's session keys
// (they share the prefix sess/<nas>NUL) in order. A session's device does
// not change, so the device -> session index needs no write.
func (s *Store) CloseNASSessions(ctx context.Context, scope store.NASScope, at time.Time, cause uint32) (int, error) {
	nas := scope.NAS
	if err := store.CheckID("nas", nas); err != nil {
		return 0, fmt.Errorf("store/badger: close nas sessions: %w", err)
	}
	if at.IsZero() {
		return 0, errors.New("store/badger: close nas sessions: zero stop time")
	}
	at = at.UTC()
	prefix := []byte(pfxSession + nas + sep)
	total := 0
	var after []byte // last key handled; the next batch starts past it
	for {
		var (
			n    int
			next []byte
			done bool
		)
		err := s.update(ctx, "close nas sessions", func(txn *bdb.Txn) error {
			// This runs again on a conflict: start from the batch's inputs.
			n, next, done = 0, nil, false
			open, scanned, end, err := scanOpenSessions(txn, prefix, after, scope, at)
			if err != nil {
				return err
			}
			next, done = scanned, end
			for i, o := range open {
				o.sess.V = store.RecordVersion
				o.sess.StoppedAt = at
				o.sess.UpdatedAt = at
				o.sess.TerminateCause = cause
				o.sess.ClosedByOnOff = true
				err := setJSON(txn, o.key, o.sess)
				if errors.Is(err, bdb.ErrTxnTooBig) && i > 0 {
					// Commit what fits; the next batch resumes here.
					next, done = open[i-1].key, false
					return nil
				}
				if err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if done {
			return total, nil
		}
		after = next
	}
}

// scanOpenSessions collects up to closeBatch sessions under prefix, past
// after, that are in scope, live and started at or before at. It returns the last key
// it examined and whether it reached the end of the prefix.
func scanOpenSessions(txn *bdb.Txn, prefix, after []byte, scope store.NASScope, at time.Time) ([]openSession, []byte, bool, error) {
	opts := bdb.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var (
		out  []openSession
		last []byte
	)
	start := prefix
	if after != nil {
		start = after
	}
	scanned := 0
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		if after != nil && string(item.Key()) == string(after) {
			continue
		}
		if len(out) == closeBatch || scanned == closeScan {
			return out, last, false, nil
		}
		scanned++
		last = item.KeyCopy(nil)
		sess := new(store.Session)
		if err := item.Value(func(b []byte) error { return decode(item.Key(), b, sess) }); err != nil {
			return nil, nil, false, err
		}
		if sess.Live() && !sess.StartedAt.After(at) && scope.Matches(sess) {
			out = append(out, openSession{key: last, sess: sess})
		}
	}
	return out, last, true, nil
}
