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
