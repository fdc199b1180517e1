package auditexport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"hardbound/store"
)

// VerifyOptions choose what the chain is checked against.
type VerifyOptions struct {
	// Keys verify the checkpoints' signatures.
	Keys KeySet
	// External are checkpoints kept elsewhere (what a sink received);
	// nil: the store's own.
	External []store.AuditCheckpoint
	// Full checks every event from seq 1 (and every stored checkpoint);
	// otherwise events are checked from the newest checkpoint on (with
	// External: from the oldest external one).
	Full bool
}

// Problem kinds of a Report.
const (
	ProblemTruncated     = "truncated"      // a checkpoint signed a seq past the chain's end
	ProblemRewritten     = "rewritten"      // an event differs from the checkpoint that signed it
	ProblemBroken        = "broken"         // an event's hash, link or seq is wrong
	ProblemBadCheckpoint = "bad_checkpoint" // a checkpoint whose signature does not verify
)

// Problem is one finding, by seq.
type Problem struct {
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// maxProblems bounds a report: the first findings locate the damage.
const maxProblems = 100

// Report is the outcome of Verify. OK, BrokenSeq and Problem (the first
// finding) keep the shape of store.VerifyResult.
type Report struct {
	OK        bool   `json:"ok"`
	Events    uint64 `json:"events"` // events checked
	BrokenSeq uint64 `json:"broken_seq,omitempty"`
	Problem   string `json:"problem,omitempty"`
	// FromSeq is the first event checked; HeadSeq the chain's last event.
	FromSeq uint64 `json:"from_seq"`
	HeadSeq uint64 `json:"head_seq"`
	// Checkpoints is how many signed checkpoints were held against the
	// chain; AnchorSeq the newest of them that matched.
	Checkpoints int    `json:"checkpoints"`
	AnchorSeq   uint64 `json:"anchor_seq,omitempty"`
	// PrunedThrough is the last seq retention removed (0: none).
	PrunedThrough uint64    `json:"pruned_through,omitempty"`
	Problems      []Problem `json:"problems,omitempty"`
}

func (r *Report) add(seq uint64, kind, format string, a ...any) {
	p := Problem{Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, a...)}
	if r.OK {
		r.OK, r.BrokenSeq, r.Problem = false, seq, kind+": "+p.Detail
	}
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

var errStopScan = errors.New("stop")

// Verify recomputes the chain in one streaming pass, in memory bounded by
// the checkpoints held, and holds it against signed checkpoints: a
// checkpoint past the chain's end is a truncation, one whose event hashes
// differently a rewrite. Without checkpoints it checks from seq 1.
func Verify(ctx context.Context, st Store, o VerifyOptions) (*Report, error) {
	rep := &Report{OK: true}
	cps, err := checkpointsFor(ctx, st, o)
	if err != nil {
		return nil, err
	}
	good := cps[:0]
	for i := range cps {
		if err := o.Keys.Verify(&cps[i]); err != nil {
			rep.add(cps[i].Seq, ProblemBadCheckpoint, "%v", err)
			continue
		}
		good = append(good, cps[i])
	}
	cps = good
	rep.Checkpoints = len(cps)

	tail, err := st.TailAudit(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("auditexport: verify: %w", err)
	}
	if len(tail) == 1 {
		rep.HeadSeq = tail[0].Seq
	}
	// A checkpoint past the end: the tail was cut (reported up to the
	// newest such checkpoint, the extent of the cut that is known).
	if n := len(cps); n > 0 && cps[n-1].Seq > rep.HeadSeq {
		cp := cps[n-1]
		rep.add(rep.HeadSeq+1, ProblemTruncated, "the chain ends at seq %d but a checkpoint signed seq %d at %s: events %d-%d are missing",
			rep.HeadSeq, cp.Seq, cp.Time.Format("2006-01-02T15:04:05Z07:00"), rep.HeadSeq+1, cp.Seq)
	}

	from := uint64(1)
	if !o.Full {
		switch {
		case o.External != nil && len(cps) > 0:
			from = cps[0].Seq
		case len(cps) > 0:
			// The newest checkpoint inside the chain anchors the check.
			for i := len(cps) - 1; i >= 0; i-- {
				if cps[i].Seq <= rep.HeadSeq {
					from = cps[i].Seq
					break
				}
			}
		}
	}
	if rep.HeadSeq == 0 {
		return rep, nil
	}
	// A pruned chain starts later than seq 1; that is only legitimate
	// where a signed checkpoint covers its first event (Pruner keeps the
	// event of a checkpoint as the first one).
	first, err := firstEvent(ctx, st)
	if err != nil {
		return nil, err
	}
	if first != nil && first.Seq > 1 {
		rep.PrunedThrough = first.Seq - 1
		if !coveredByCheckpoint(ctx, st, o.Keys, cps, first) {
			rep.add(1, ProblemTruncated, "events 1-%d are missing and no signed checkpoint covers seq %d, the first one kept",
				first.Seq-1, first.Seq)
		}
		from = max(from, first.Seq)
	}
	rep.FromSeq = from

	next := 0 // the next checkpoint to hold against an event
	for next < len(cps) && cps[next].Seq < from {
		next++
	}
	var prev store.Hash
	want := from
	err = st.ScanAudit(ctx, from, func(e *store.AuditEvent) error {
		rep.Events++
		if e.Seq != want {
			rep.add(want, ProblemBroken, "sequence gap: next event is seq %d", e.Seq)
			want = e.Seq
		}
		switch {
		case e.ComputeHash() != e.Hash:
			rep.add(e.Seq, ProblemBroken, "hash does not match the event")
		case e.Seq != from && e.PrevHash != prev:
			rep.add(e.Seq, ProblemBroken, "prev_hash does not match the previous event")
		}
		for next < len(cps) && cps[next].Seq <= e.Seq {
			cp := cps[next]
			next++
			if cp.Seq != e.Seq {
				continue // its event is missing: the gap was reported
			}
			if cp.Hash != e.Hash {
				since := "seq 1"
				if rep.AnchorSeq != 0 {
					since = fmt.Sprintf("the checkpoint of seq %d, which matched", rep.AnchorSeq)
				}
				rep.add(e.Seq, ProblemRewritten, "event %d hashes to %s but the checkpoint of %s signed %s: the chain was rewritten after %s",
					e.Seq, e.Hash, cp.Time.Format("2006-01-02T15:04:05Z07:00"), cp.Hash, since)
				continue
			}
			rep.AnchorSeq = cp.Seq
		}
		prev = e.Hash
		want = e.Seq + 1
		if len(rep.Problems) >= maxProblems {
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, fmt.Errorf("auditexport: verify: %w", err)
	}
	if rep.Events == 0 {
		rep.add(from, ProblemTruncated, "no event from seq %d on", from)
	}
	return rep, nil
}

// checkpointsFor returns the checkpoints to hold the chain against, sorted
// by seq without duplicates.
func checkpointsFor(ctx context.Context, st Store, o VerifyOptions) ([]store.AuditCheckpoint, error) {
	var cps []store.AuditCheckpoint
	switch {
	case o.External != nil:
		cps = slices.Clone(o.External)
	case o.Full:
		err := st.ScanAuditCheckpoints(ctx, 0, func(cp *store.AuditCheckpoint) error {
			cps = append(cps, *cp)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("auditexport: verify: %w", err)
		}
	default:
		cp, err := st.LastAuditCheckpoint(ctx)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("auditexport: verify: %w", err)
		default:
			cps = append(cps, *cp)
		}
	}
	slices.SortStableFunc(cps, func(a, b store.AuditCheckpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	// A sink may have received a checkpoint twice (at-least-once): keep one
	// per seq, unless they differ, which is for the signature check and the
	// chain to judge.
	return slices.CompactFunc(cps, func(a, b store.AuditCheckpoint) bool {
		return a.Seq == b.Seq && a.Hash == b.Hash && string(a.Sig) == string(b.Sig)
	}), nil
}

// firstEvent is the oldest event kept (nil for an empty chain).
func firstEvent(ctx context.Context, st Store) (*store.AuditEvent, error) {
	var first *store.AuditEvent
	err := st.ScanAudit(ctx, 1, func(e *store.AuditEvent) error { first = e; return errStopScan })
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, fmt.Errorf("auditexport: verify: %w", err)
	}
	return first, nil
}

// coveredByCheckpoint reports whether a validly signed checkpoint, among
// cps or in the store, signs ev.
func coveredByCheckpoint(ctx context.Context, st Store, keys KeySet, cps []store.AuditCheckpoint, ev *store.AuditEvent) bool {
	for i := range cps {
		if cps[i].Seq == ev.Seq && cps[i].Hash == ev.Hash {
			return true // signatures of cps were checked already
		}
	}
	var cp *store.AuditCheckpoint
	err := st.ScanAuditCheckpoints(ctx, ev.Seq, func(c *store.AuditCheckpoint) error { cp = c; return errStopScan })
	if err != nil && !errors.Is(err, errStopScan) {
		return false
	}
	return cp != nil && cp.Seq == ev.Seq && cp.Hash == ev.Hash && keys.Verify(cp) == nil
}
