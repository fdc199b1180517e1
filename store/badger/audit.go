package badger

import (
	"context"
	"errors"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"hardbound/store"
)

// auditHead is the last link of the chain, kept under one key so an append
// is a point read plus two writes instead of a reverse scan.
type auditHead struct {
	V    int        `json:"v"`
	Seq  uint64     `json:"seq"`
	Hash store.Hash `json:"hash"`
}

// AppendAudit appends ev to the chain, filling V, Seq, PrevHash, Hash and
// (if zero) Time. ev is updated only once the event is durable.
func (s *Store) AppendAudit(ctx context.Context, ev *store.AuditEvent) error {
	if ev == nil {
		return errors.New("store/badger: append audit: nil event")
	}
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	var done store.AuditEvent
	if err := s.update(ctx, "append audit", func(txn *bdb.Txn) error {
		return s.appendAuditTxn(txn, ev, &done)
	}); err != nil {
		return err
	}
	*ev = done
	return nil
}

// appendAuditTxn links a copy of ev after the current head inside txn and
// stores it in *out. The caller must hold auditMu for the whole transaction:
// that is what makes the head read and the head write one step.
func (s *Store) appendAuditTxn(txn *bdb.Txn, ev, out *store.AuditEvent) error {
	var head auditHead
	if err := getJSON(txn, keyAuditHead(), &head); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	e := *ev
	e.V = store.RecordVersion
	e.Seq = head.Seq + 1
	e.PrevHash = head.Hash
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	// UTC and no monotonic reading: the hash must survive a JSON round trip.
	e.Time = e.Time.UTC().Round(0)
	e.Hash = e.ComputeHash()
	if err := setJSON(txn, keyAudit(e.Seq), &e); err != nil {
		return err
	}
	if err := setJSON(txn, keyAuditHead(), auditHead{V: store.RecordVersion, Seq: e.Seq, Hash: e.Hash}); err != nil {
		return err
	}
	*out = e
	return nil
}

// TailAudit returns the last n events (n <= 0: 100, capped at 1000), oldest first.
func (s *Store) TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error) {
	n = limit(store.Page{Limit: n})
	var out []*store.AuditEvent
	err := s.view(ctx, "tail audit", func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = []byte(pfxAudit)
		opts.PrefetchSize = min(n, opts.PrefetchSize)
		it := txn.NewIterator(opts)
		defer it.Close()
		// Reverse iteration seeks to the greatest key <= the seek key.
		for it.Seek(keyAudit(^uint64(0))); it.ValidForPrefix(opts.Prefix) && len(out) < n; it.Next() {
			e, err := decodeAudit(it.Item())
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// ScanAudit calls fn for every event with Seq >= from, in order, inside one
// read snapshot. An error from fn stops the scan and is returned wrapped.
func (s *Store) ScanAudit(ctx context.Context, from uint64, fn func(*store.AuditEvent) error) error {
	return s.view(ctx, "scan audit", func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix = []byte(pfxAudit)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(keyAudit(from)); it.ValidForPrefix(opts.Prefix); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := decodeAudit(it.Item())
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

func decodeAudit(item *bdb.Item) (*store.AuditEvent, error) {
	e := new(store.AuditEvent)
	if err := item.Value(func(b []byte) error { return decode(item.Key(), b, e) }); err != nil {
		return nil, err
	}
	return e, nil
}

// VerifyAudit recomputes every hash and link from seq 1 and reports the
// first event that does not match: a wrong hash (the event was edited), a
// wrong PrevHash (an event before it was edited or removed), a gap in the
// sequence, or a head that does not point at the last event (truncation).
func (s *Store) VerifyAudit(ctx context.Context) (store.VerifyResult, error) {
	var res store.VerifyResult
	err := s.view(ctx, "verify audit", func(txn *bdb.Txn) error {
		res = store.VerifyResult{OK: true}
		broken := func(seq uint64, problem string) {
			if res.OK {
				res.OK, res.BrokenSeq, res.Problem = false, seq, problem
			}
		}
		opts := bdb.DefaultIteratorOptions
		opts.Prefix = []byte(pfxAudit)
		it := txn.NewIterator(opts)
		defer it.Close()
		var prev store.Hash
		for it.Rewind(); it.ValidForPrefix(opts.Prefix); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			want := res.Events + 1
			res.Events++
			seq, ok := seqFromAuditKey(item.Key())
			if !ok {
				broken(want, fmt.Sprintf("malformed key %q", item.Key()))
				continue
			}
			if seq != want {
				broken(want, fmt.Sprintf("sequence gap: found %d", seq))
				res.Events = seq
			}
			e, err := decodeAudit(item)
			if err != nil {
				broken(seq, "undecodable event")
				prev = store.Hash{}
				continue
			}
			switch {
			case e.Seq != seq:
				broken(seq, fmt.Sprintf("event claims seq %d", e.Seq))
			case e.PrevHash != prev:
				broken(seq, "prev_hash does not match the previous event")
			case e.ComputeHash() != e.Hash:
				broken(seq, "hash does not match the event")
			}
			prev = e.Hash
		}
		var head auditHead
		switch err := getJSON(txn, keyAuditHead(), &head); {
		case errors.Is(err, store.ErrNotFound):
			if res.Events > 0 {
				broken(res.Events, "audit head missing")
			}
		case err != nil:
			return err
		case head.Seq == res.Events && head.Hash != prev:
			broken(head.Seq, "head hash does not match the last event")
		case head.Seq != res.Events:
			broken(min(head.Seq, res.Events)+1, fmt.Sprintf("head points at seq %d, chain ends at %d", head.Seq, res.Events))
		}
		return nil
	})
	if err != nil {
		return store.VerifyResult{}, err
	}
	return res, nil
}
