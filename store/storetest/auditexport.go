package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"hardbound/store"
)

// testAuditCheckpoints: checkpoints come back by seq, in order, the last
// one is found directly, and putting one at the same seq replaces it.
func testAuditCheckpoints(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	_, err := s.LastAuditCheckpoint(ctx)
	wantErr(t, "LastAuditCheckpoint(empty)", err, store.ErrNotFound)
	for _, seq := range []uint64{300, 10, 2000} {
		cp := &store.AuditCheckpoint{Seq: seq, Hash: hashOf(fmt.Sprint(seq)), Time: base.Add(time.Duration(seq) * time.Second),
			KeyID: "k1", Alg: "Ed25519", Sig: []byte{1, 2, byte(seq)}}
		noErr(t, "PutAuditCheckpoint", s.PutAuditCheckpoint(ctx, cp))
	}
	last, err := s.LastAuditCheckpoint(ctx)
	noErr(t, "LastAuditCheckpoint", err)
	if last.Seq != 2000 || last.Hash != hashOf("2000") || last.KeyID != "k1" || string(last.Sig) != string([]byte{1, 2, byte(2000 % 256)}) ||
		!last.Time.Equal(base.Add(2000*time.Second)) || last.V != store.RecordVersion {
		t.Fatalf("LastAuditCheckpoint = %+v", last)
	}
	var seqs []uint64
	noErr(t, "ScanAuditCheckpoints", s.ScanAuditCheckpoints(ctx, 11, func(cp *store.AuditCheckpoint) error {
		seqs = append(seqs, cp.Seq)
		return nil
	}))
	sameJSON(t, "ScanAuditCheckpoints(11)", seqs, []uint64{300, 2000})
	stop := errors.New("stop")
	err = s.ScanAuditCheckpoints(ctx, 0, func(*store.AuditCheckpoint) error { return stop })
	wantErr(t, "ScanAuditCheckpoints(fn error)", err, stop)

	noErr(t, "PutAuditCheckpoint(replace)", s.PutAuditCheckpoint(ctx, &store.AuditCheckpoint{Seq: 2000, Hash: hashOf("other"), KeyID: "k2"}))
	last, err = s.LastAuditCheckpoint(ctx)
	noErr(t, "LastAuditCheckpoint", err)
	if last.Hash != hashOf("other") || last.KeyID != "k2" {
		t.Fatalf("replaced checkpoint = %+v", last)
	}
	if err := s.PutAuditCheckpoint(ctx, &store.AuditCheckpoint{}); err == nil {
		t.Fatal("PutAuditCheckpoint(seq 0) succeeded")
	}
}

// testAuditCursors: each sink has its own cursor; an unknown sink is
// ErrNotFound; a put replaces.
func testAuditCursors(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	_, err := s.GetAuditCursor(ctx, "siem")
	wantErr(t, "GetAuditCursor(unknown)", err, store.ErrNotFound)
	noErr(t, "PutAuditCursor", s.PutAuditCursor(ctx, &store.AuditCursor{Sink: "siem", Seq: 41, CheckpointSeq: 40}))
	noErr(t, "PutAuditCursor", s.PutAuditCursor(ctx, &store.AuditCursor{Sink: "backup", Seq: 7, UpdatedAt: base}))
	noErr(t, "PutAuditCursor", s.PutAuditCursor(ctx, &store.AuditCursor{Sink: "siem", Seq: 42, CheckpointSeq: 40}))
	c, err := s.GetAuditCursor(ctx, "siem")
	noErr(t, "GetAuditCursor", err)
	if c.Sink != "siem" || c.Seq != 42 || c.CheckpointSeq != 40 || c.UpdatedAt.IsZero() || c.V != store.RecordVersion {
		t.Fatalf("GetAuditCursor(siem) = %+v", c)
	}
	c, err = s.GetAuditCursor(ctx, "backup")
	noErr(t, "GetAuditCursor", err)
	if c.Seq != 7 || !c.UpdatedAt.Equal(base) {
		t.Fatalf("GetAuditCursor(backup) = %+v", c)
	}
	for _, bad := range []string{"", "a\x00b"} {
		if err := s.PutAuditCursor(ctx, &store.AuditCursor{Sink: bad, Seq: 1}); err == nil {
			t.Errorf("PutAuditCursor(sink %q) succeeded", bad)
		}
	}
}

// testAuditPrune: pruning removes the oldest events in batches, leaves
// the chain verifiable from the first event kept, keeps appends linked,
// and never removes the head.
func testAuditPrune(t *testing.T, open func(t *testing.T) store.Store) {
	s := newStore(t, open)
	ctx := t.Context()
	evs := make([]*store.AuditEvent, 5000)
	for i := range evs {
		evs[i] = auditEv("radius.auth", fmt.Sprintf("d%d", i))
	}
	noErr(t, "AppendAudits", s.AppendAudits(ctx, evs))
	if _, err := s.PruneAudit(ctx, 5000); err == nil {
		t.Fatal("PruneAudit(head) succeeded")
	}
	n, err := s.PruneAudit(ctx, 4321) // more than one batch in Badger
	noErr(t, "PruneAudit", err)
	if n != 4321 {
		t.Fatalf("PruneAudit deleted %d", n)
	}
	var first uint64
	noErr(t, "ScanAudit", s.ScanAudit(ctx, 1, func(e *store.AuditEvent) error {
		if first == 0 {
			first = e.Seq
		}
		return nil
	}))
	if first != 4322 {
		t.Fatalf("first event after pruning: %d", first)
	}
	verifyOK(t, s, 5000)
	n, err = s.PruneAudit(ctx, 100) // already gone
	noErr(t, "PruneAudit(again)", err)
	if n != 0 {
		t.Fatalf("pruning again deleted %d", n)
	}
	ev := auditEv("admin.revoke", "d1")
	noErr(t, "AppendAudit", s.AppendAudit(ctx, ev))
	if ev.Seq != 5001 || ev.PrevHash != evs[4999].Hash {
		t.Fatalf("append after pruning: %+v", ev)
	}
	verifyOK(t, s, 5001)
	tail, err := s.TailAudit(ctx, 1000)
	noErr(t, "TailAudit", err)
	if len(tail) != 680 || tail[0].Seq != 4322 {
		t.Fatalf("TailAudit after pruning: %d events from %d", len(tail), tail[0].Seq)
	}
}
