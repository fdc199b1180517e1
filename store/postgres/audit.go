package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hardbound/store"
)

// The audit chain is one chain for every node: seq is global and each
// event's PrevHash is the event before it, whichever node wrote that.
// Appenders lock the single audit_head row, which orders them across
// nodes; a change-writing transaction takes it after the feed head, and
// an append takes nothing else, so the two locks never wait on each other
// in a cycle.

// AppendAudit appends ev to the chain, filling V, Seq, PrevHash, Hash and
// (if zero) Time once the event is committed.
func (s *Store) AppendAudit(ctx context.Context, ev *store.AuditEvent) error {
	if ev == nil {
		return errors.New("store/postgres: append audit: nil event")
	}
	return s.AppendAudits(ctx, []*store.AuditEvent{ev})
}

// AppendAudits appends evs in order in one transaction (one commit for all
// of them). All or none are written: on error every Seq stays 0.
func (s *Store) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	for i, ev := range evs {
		if ev == nil {
			return fmt.Errorf("store/postgres: append audits: nil event at %d", i)
		}
	}
	var out []store.AuditEvent
	err := s.tx(ctx, "append audit", func(tx pgx.Tx) error {
		var err error
		out, err = s.appendAuditTx(ctx, tx, evs)
		return err
	})
	if err != nil {
		return err
	}
	for i := range evs {
		*evs[i] = out[i]
	}
	return nil
}

// appendAuditTx links copies of evs after the head inside tx and writes
// them; the caller fills the events in once tx has committed.
func (s *Store) appendAuditTx(ctx context.Context, tx pgx.Tx, evs []*store.AuditEvent) ([]store.AuditEvent, error) {
	var (
		seq     uint64
		hashHex string
	)
	if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head FOR UPDATE").Scan(&seq, &hashHex); err != nil {
		return nil, fmt.Errorf("lock audit head: %w", err)
	}
	var prev store.Hash
	if err := prev.UnmarshalText([]byte(hashHex)); err != nil {
		return nil, fmt.Errorf("audit head hash: %w", err)
	}
	out := make([]store.AuditEvent, len(evs))
	seqs := make([]int64, len(evs))
	recs := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = s.linkAudit(ev, seq, prev)
		seq, prev = out[i].Seq, out[i].Hash
		b, err := json.Marshal(&out[i])
		if err != nil {
			return nil, fmt.Errorf("encode audit event: %w", err)
		}
		seqs[i], recs[i] = int64(seq), string(b)
	}
	if _, err := tx.Exec(ctx, `WITH e AS (INSERT INTO audit (seq, rec) SELECT s, r::json FROM unnest($1::bigint[], $2::text[]) AS u(s, r))
		UPDATE audit_head SET seq = $3, hash = $4`, seqs, recs, int64(seq), prev.String()); err != nil {
		return nil, fmt.Errorf("write audit events: %w", err)
	}
	return out, nil
}

// linkAudit returns a copy of ev linked after (seq, prev).
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

// audited runs fn in one transaction together with appending ev (when
// set), for writes that touch no device, binding or attestation.
func (s *Store) audited(ctx context.Context, op string, ev *store.AuditEvent, fn func(tx pgx.Tx) error) error {
	var done store.AuditEvent
	err := s.tx(ctx, op, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		evs, err := s.appendAuditTx(ctx, tx, []*store.AuditEvent{ev})
		if err != nil {
			return err
		}
		done = evs[0]
		return nil
	})
	if err == nil && ev != nil {
		*ev = done
	}
	return err
}

// TailAudit returns the last n events (n <= 0: 100, capped at 1000), oldest first.
func (s *Store) TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error) {
	n = limit(store.Page{Limit: n})
	var out []*store.AuditEvent
	err := s.read(ctx, "tail audit", func(q querier) error {
		rows, err := q.Query(ctx, "SELECT rec FROM audit ORDER BY seq DESC LIMIT $1", n)
		if err != nil {
			return err
		}
		out, err = collectJSON[store.AuditEvent](rows)
		return err
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
// snapshot. An error from fn stops the scan and is returned wrapped.
func (s *Store) ScanAudit(ctx context.Context, from uint64, fn func(*store.AuditEvent) error) error {
	return s.readTx(ctx, "scan audit", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT rec FROM audit WHERE seq >= $1 ORDER BY seq", int64(min(from, 1<<63-1)))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				return err
			}
			e := new(store.AuditEvent)
			if err := json.Unmarshal(b, e); err != nil {
				return fmt.Errorf("decode audit event: %w", err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// VerifyAudit recomputes every hash and link from seq 1 (after PruneAudit:
// from the first event kept) and reports the
// first event that does not match: a wrong hash (the event was edited), a
// wrong PrevHash (an event before it was edited or removed), a gap in the
// sequence, or a head that does not point at the last event (truncation).
func (s *Store) VerifyAudit(ctx context.Context) (store.VerifyResult, error) {
	var res store.VerifyResult
	err := s.readTx(ctx, "verify audit", func(tx pgx.Tx) error {
		res = store.VerifyResult{OK: true}
		broken := func(seq uint64, problem string) {
			if res.OK {
				res.OK, res.BrokenSeq, res.Problem = false, seq, problem
			}
		}
		// After PruneAudit the chain starts after the prune mark, linked
		// to the last deleted event's hash.
		var prev store.Hash
		var (
			markSeq int64
			markHex string
		)
		switch err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_pruned").Scan(&markSeq, &markHex); {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			if err := prev.UnmarshalText([]byte(markHex)); err != nil {
				broken(uint64(markSeq), "undecodable prune mark")
			}
			res.Events = uint64(markSeq)
		}
		rows, err := tx.Query(ctx, "SELECT seq, rec FROM audit ORDER BY seq")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				seq64 int64
				b     []byte
			)
			if err := rows.Scan(&seq64, &b); err != nil {
				return err
			}
			seq := uint64(seq64)
			want := res.Events + 1
			res.Events++
			if seq != want {
				broken(want, fmt.Sprintf("sequence gap: found %d", seq))
				res.Events = seq
			}
			var e store.AuditEvent
			if err := json.Unmarshal(b, &e); err != nil {
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
		if err := rows.Err(); err != nil {
			return err
		}
		var (
			headSeq int64
			headHex string
			head    store.Hash
		)
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head").Scan(&headSeq, &headHex); err != nil {
			return notFound(err)
		}
		if err := head.UnmarshalText([]byte(headHex)); err != nil {
			broken(uint64(headSeq), "undecodable head hash")
			return nil
		}
		switch hs := uint64(headSeq); {
		case hs == res.Events && head != prev:
			broken(hs, "head hash does not match the last event")
		case hs != res.Events:
			broken(min(hs, res.Events)+1, fmt.Sprintf("head points at seq %d, chain ends at %d", hs, res.Events))
		}
		return nil
	})
	if err != nil {
		return store.VerifyResult{}, err
	}
	return res, nil
}

// collectJSON decodes every row's single JSON column into a new T.
func collectJSON[T any](rows pgx.Rows) ([]*T, error) {
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("decode %T: %w", v, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
