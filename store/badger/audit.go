package badger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

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
//
// Concurrent calls are group-committed (see auditQueue): each caller still
// returns only after its own event is on disk, but one transaction and one
// fsync carry every event that queued up while the previous commit ran.
func (s *Store) AppendAudit(ctx context.Context, ev *store.AuditEvent) error {
	if ev == nil {
		return errors.New("store/badger: append audit: nil event")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store/badger: append audit: %w", err)
	}
	r := &auditReq{ctx: ctx, ev: *ev, wake: make(chan struct{}, 1)}
	q := &s.auditQ
	q.mu.Lock()
	q.pending = append(q.pending, r)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !lead && !s.awaitAudit(r) {
		if r.err != nil {
			return r.err
		}
		*ev = r.out
		return nil
	}
	// r is first in the queue (a new leader finds it empty; a handed-over
	// leader is the head), so the batch led here includes it.
	s.leadAudit()
	if r.err != nil {
		return r.err
	}
	*ev = r.out
	return nil
}

// AppendAudits appends evs in order in as few transactions as Badger's
// size limit allows (normally one, so one fsync). It does not go through
// the group-commit queue: the caller already grouped the events, and
// holding auditMu orders the run with every other chain write. Events that
// were written are filled in (Seq != 0); the first failure is returned.
func (s *Store) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	reqs := make([]*auditReq, len(evs))
	for i, ev := range evs {
		if ev == nil {
			return fmt.Errorf("store/badger: append audits: nil event at %d", i)
		}
		reqs[i] = &auditReq{ctx: ctx, ev: *ev}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store/badger: append audits: %w", err)
	}
	s.auditMu.Lock()
	s.writeAuditBatch(reqs)
	s.auditMu.Unlock()
	var first error
	for i, r := range reqs {
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			continue
		}
		*evs[i] = r.out
	}
	return first
}

// maxAuditBatch caps the events one leader commits: it bounds the
// transaction and how long the leader's own caller is held up. Badger's
// transaction limit is handled separately (commitAuditPrefix splits).
const maxAuditBatch = 512

// auditQueue is the group-commit queue for AppendAudit. There is no
// committer goroutine: the first caller to find no leader becomes the
// leader, commits what is queued, then hands leadership to the head of the
// queue (so no caller leads more than one batch) or, if the queue is empty,
// steps down. Nothing sleeps to wait for more events: a batch is whatever
// queued while the previous commit (or another audited write) held auditMu.
//
// Invariant: pending is non-empty only while leading is true.
type auditQueue struct {
	mu      sync.Mutex
	pending []*auditReq
	leading bool
}

// auditReq is one AppendAudit call. out and err are written by the leader
// before wake is signalled; lead and taken are guarded by auditQueue.mu.
type auditReq struct {
	ctx   context.Context
	ev    store.AuditEvent
	out   store.AuditEvent
	err   error
	wake  chan struct{} // buffered: result ready, or leadership handed over
	lead  bool          // the waiter must lead the next batch
	taken bool          // a leader took it into a batch
}

// awaitAudit waits for r's result and reports whether leadership was handed
// to r instead. A caller whose context ends while r is still queued leaves
// the queue with the context's error (its event is not written); once a
// leader took r, the outcome is the batch's, so the caller waits for it:
// returning early would report a failure for an event that may be durable.
func (s *Store) awaitAudit(r *auditReq) bool {
	q := &s.auditQ
	select {
	case <-r.wake:
	case <-r.ctx.Done():
		q.mu.Lock()
		if !r.taken && !r.lead {
			q.pending = slices.DeleteFunc(q.pending, func(p *auditReq) bool { return p == r })
			q.mu.Unlock()
			r.err = fmt.Errorf("store/badger: append audit: %w", r.ctx.Err())
			return false
		}
		q.mu.Unlock()
		<-r.wake
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return r.lead
}

// leadAudit commits one batch from the head of the queue and passes on
// leadership. auditMu is taken before the batch is cut so that events
// queueing behind an audited UpdateDevice/RevokeCert/... join this batch.
func (s *Store) leadAudit() {
	q := &s.auditQ
	s.auditMu.Lock()
	q.mu.Lock()
	n := min(len(q.pending), maxAuditBatch)
	batch := slices.Clone(q.pending[:n])
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	for _, r := range batch {
		r.taken = true
	}
	q.mu.Unlock()

	s.writeAuditBatch(batch)
	s.auditMu.Unlock()

	q.mu.Lock()
	if len(q.pending) > 0 {
		next := q.pending[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		q.leading = false
	}
	q.mu.Unlock()
	for _, r := range batch {
		r.wake <- struct{}{} // buffered, at most one result per request
	}
}

// writeAuditBatch appends the batch in order, filling every request's out or
// err. The caller holds auditMu. Events are committed in as few transactions
// as Badger's size limit allows (normally one); a failed transaction fails
// its events and every later one, and leaves the chain as it was.
func (s *Store) writeAuditBatch(batch []*auditReq) {
	live := make([]*auditReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("store/badger: append audit: %w", err)
			continue
		}
		live = append(live, r)
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		for _, r := range live {
			r.err = fmt.Errorf("store/badger: append audit: %w", ErrClosed)
		}
		return
	}
	for len(live) > 0 {
		n, err := s.commitAuditPrefix(live)
		var bad firstEventError
		switch {
		case err == nil:
			live = live[n:]
		case errors.As(err, &bad):
			// One event cannot be stored at all (alone over Badger's
			// transaction or value limits): it fails, the rest are linked
			// after the unchanged head.
			live[0].err = fmt.Errorf("store/badger: append audit: %w", bad.err)
			live = live[1:]
		default:
			for _, r := range live {
				r.err = fmt.Errorf("store/badger: append audit: %w", err)
			}
			return
		}
	}
}

// firstEventError reports that the first event of a run cannot be written
// even on its own; nothing was committed.
type firstEventError struct{ err error }

func (e firstEventError) Error() string { return e.err.Error() }
func (e firstEventError) Unwrap() error { return e.err }

// commitAuditPrefix links reqs after the current head and commits the
// longest prefix of them that fits one Badger transaction, returning its
// length (at least 1) and filling those requests' out. On error nothing was
// committed; a firstEventError blames reqs[0] alone.
func (s *Store) commitAuditPrefix(reqs []*auditReq) (int, error) {
	var err error
	for range maxTxnAttempts {
		var n int
		n, err = s.tryAuditTxn(reqs)
		if !errors.Is(err, bdb.ErrConflict) {
			return n, err
		}
	}
	return 0, err
}

func (s *Store) tryAuditTxn(reqs []*auditReq) (int, error) {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	var head auditHead
	if err := getJSON(txn, keyAuditHead(), &head); err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	events := make([]store.AuditEvent, len(reqs))
	vals := make([][]byte, len(reqs))
	seq, prev := head.Seq, head.Hash
	for i, r := range reqs {
		events[i] = s.linkAudit(&r.ev, seq, prev)
		seq, prev = events[i].Seq, events[i].Hash
		b, err := jsonMarshal(keyAudit(seq), &events[i])
		if err != nil {
			return 0, err
		}
		vals[i] = b
	}
	// Shrink until the events and the head fit: Badger refuses an entry
	// past its transaction size (ErrTxnTooBig) or an oversized value, and
	// a refused Set leaves the transaction as it was, but the head must
	// still follow the last event, so the transaction is rebuilt.
	k := len(reqs)
	for {
		set, err := setAuditRun(txn, events[:k], vals[:k])
		switch {
		case err == nil:
		case set < k: // event set was refused: commit those before it
			k = set
		case errors.Is(err, bdb.ErrTxnTooBig): // the head did not fit
			k--
		default:
			return 0, err
		}
		if err == nil {
			break
		}
		if k == 0 {
			return 0, firstEventError{err}
		}
		txn.Discard()
		txn = s.db.NewTransaction(true)
		// Re-read the head so the new transaction still conflicts with
		// any writer that moved it (none can while auditMu is held).
		if err := getJSON(txn, keyAuditHead(), &head); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	if s.beforeAuditCommit != nil {
		if err := s.beforeAuditCommit(k); err != nil {
			return 0, err
		}
	}
	if err := txn.Commit(); err != nil {
		return 0, err
	}
	for i := range k {
		reqs[i].out = events[i]
	}
	return k, nil
}

// setAuditRun writes events (already linked, encoded as vals) and the head
// pointing at the last of them, returning how many events were set before
// an error.
func setAuditRun(txn *bdb.Txn, events []store.AuditEvent, vals [][]byte) (int, error) {
	for i := range events {
		if err := txn.Set(keyAudit(events[i].Seq), vals[i]); err != nil {
			return i, err
		}
	}
	last := events[len(events)-1]
	return len(events), setJSON(txn, keyAuditHead(), auditHead{V: store.RecordVersion, Seq: last.Seq, Hash: last.Hash})
}

// linkAudit returns a copy of ev linked after (seq, prev): version, next
// sequence number, time (if unset) and hash filled in.
func (s *Store) linkAudit(ev *store.AuditEvent, seq uint64, prev store.Hash) store.AuditEvent {
	e := *ev
	e.V = store.RecordVersion
	e.Seq = seq + 1
	e.PrevHash = prev
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	// UTC and no monotonic reading: the hash must survive a JSON round trip.
	e.Time = e.Time.UTC().Round(0)
	e.Hash = e.ComputeHash()
	return e
}

// updateAudited runs fn in one write transaction and, if ev is set,
// appends ev to the chain in that same transaction, filling *ev once it is
// committed. auditMu is held for the whole transaction when ev is set (see
// appendAuditTxn).
func (s *Store) updateAudited(ctx context.Context, op string, ev *store.AuditEvent, fn func(txn *bdb.Txn) error) error {
	if ev == nil {
		return s.update(ctx, op, fn)
	}
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	var done store.AuditEvent
	err := s.update(ctx, op, func(txn *bdb.Txn) error {
		if err := fn(txn); err != nil {
			return err
		}
		return s.appendAuditTxn(txn, ev, &done)
	})
	if err != nil {
		return err
	}
	*ev = done
	return nil
}

// appendAuditTxn links a copy of ev after the current head inside txn and
// stores it in *out. The caller must hold auditMu for the whole transaction:
// that is what makes the head read and the head write one step, and what
// orders it with AppendAudit's batches.
func (s *Store) appendAuditTxn(txn *bdb.Txn, ev, out *store.AuditEvent) error {
	var head auditHead
	if err := getJSON(txn, keyAuditHead(), &head); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	e := s.linkAudit(ev, head.Seq, head.Hash)
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

// VerifyAudit recomputes every hash and link from seq 1 (after PruneAudit:
// from the first event kept) and reports the
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
		// After PruneAudit the chain starts after the prune mark, linked
		// to the last deleted event's hash.
		var prev store.Hash
		var mark auditHead
		switch err := getJSON(txn, keyAuditPruned(), &mark); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			res.Events, prev = mark.Seq, mark.Hash
		}
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
