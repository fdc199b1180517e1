package auditexport

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
)

func openDisk(t *testing.T, dir string) *badger.Store {
	t.Helper()
	st, err := badger.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func keysOf(t *testing.T, s *Signer) KeySet {
	t.Helper()
	ks := KeySet{}
	if err := ks.Add(s.Public()); err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestVerifyCatchesTruncation: the last events are deleted from the store
// and the head is fixed to point at the new last one. The chain alone
// still verifies (store.VerifyAudit: OK), which is the attack; Verify holds
// it against the newest checkpoint and reports the missing tail by seq.
func TestVerifyCatchesTruncation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st := openDisk(t, dir)
	signer := testSigner(t)
	cpr := NewCheckpointer(st, signer, CheckpointConfig{}, nil)
	for _, n := range []int{100, 100, 50} { // checkpoints at 100, 200, 250
		if err := appendEvents(t.Context(), st, n); err != nil {
			t.Fatal(err)
		}
		if _, err := cpr.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := Verify(t.Context(), st, VerifyOptions{Keys: keysOf(t, signer)}); err != nil || !rep.OK || rep.FromSeq != 250 || rep.AnchorSeq != 250 {
		t.Fatalf("Verify(intact) = %+v, %v", rep, err)
	}
	st.Close()

	tests := []struct {
		name     string
		keep     uint64
		wantSeq  uint64
		wantText string
	}{
		{"last_5_cut", 245, 246, "events 246-250 are missing"},
		{"past_two_checkpoints", 150, 151, "events 151-250 are missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			badgertest.TruncateAudit(t, dir, tt.keep)
			st := openDisk(t, dir)
			defer st.Close()
			vr, err := st.VerifyAudit(t.Context())
			if err != nil || !vr.OK || vr.Events != tt.keep {
				t.Fatalf("the truncated chain should verify on its own (that is the attack): %+v, %v", vr, err)
			}
			rep, err := Verify(t.Context(), st, VerifyOptions{Keys: keysOf(t, signer)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.BrokenSeq != tt.wantSeq || rep.Problems[0].Kind != ProblemTruncated || !strings.Contains(rep.Problem, tt.wantText) {
				t.Fatalf("Verify(truncated to %d) = %+v", tt.keep, rep)
			}
			t.Logf("reported: %s", rep.Problem)
		})
	}
}

// TestVerifyCatchesRewriteWithRsyslogCheckpoints: the chain streams to
// rsyslog over TLS with its checkpoints; then the whole chain is rewritten
// consistently (a reject turned into an accept, every later hash and the
// head recomputed, the stored checkpoints deleted). The store finds
// nothing wrong; the checkpoints rsyslog received report the rewrite by
// seq.
func TestVerifyCatchesRewriteWithRsyslogCheckpoints(t *testing.T) {
	rs := rsyslogtest.Start(t, rsyslogtest.NewPKI(t, t.TempDir()))
	dir := filepath.Join(t.TempDir(), "db")
	st := openDisk(t, dir)
	signer := testSigner(t)
	m := newLagMetrics()
	exp, err := New(st, FileConfig{Sinks: rsyslogSinks(rs)[:1]}, Options{Metrics: m, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	cpr := NewCheckpointer(st, signer, CheckpointConfig{}, nil)
	if err := appendEvents(ctx, st, 120); err != nil {
		t.Fatal(err)
	}
	if _, err := cpr.Checkpoint(ctx); err != nil { // seq 120
		t.Fatal(err)
	}
	rejected := &store.AuditEvent{Actor: "nas:ap1", Action: "radius.auth", Subject: "stolen-laptop", Result: "reject", Reason: "revoked"}
	if err := st.AppendAudit(ctx, rejected); err != nil { // seq 121
		t.Fatal(err)
	}
	if err := appendEvents(ctx, st, 79); err != nil {
		t.Fatal(err)
	}
	if _, err := cpr.Checkpoint(ctx); err != nil { // seq 200
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		c, err := st.GetAuditCursor(ctx, "siem-tls")
		return err == nil && c.Seq == 200 && c.CheckpointSeq == 200
	}, func() string { return "the export did not reach seq 200" })
	cancel()
	wg.Wait()
	st.Close()
	rs.Stop()

	badgertest.RewriteAudit(t, dir, func(e *store.AuditEvent) {
		if e.Subject == "stolen-laptop" {
			e.Result, e.Reason = "ok", ""
		}
	}, true)
	st = openDisk(t, dir)
	defer st.Close()
	if vr, err := st.VerifyAudit(t.Context()); err != nil || !vr.OK {
		t.Fatalf("the rewritten chain should verify on its own (that is the attack): %+v, %v", vr, err)
	}
	local, err := Verify(t.Context(), st, VerifyOptions{Keys: keysOf(t, signer)})
	if err != nil || !local.OK || local.Checkpoints != 0 {
		t.Fatalf("with its checkpoints deleted the store cannot tell: %+v, %v", local, err)
	}
	received := readReceived(t, rs.TLSFile())
	rep, err := Verify(t.Context(), st, VerifyOptions{Keys: keysOf(t, signer), External: received.cps})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.BrokenSeq != 200 || rep.AnchorSeq != 120 || rep.Problems[0].Kind != ProblemRewritten ||
		!strings.Contains(rep.Problem, "rewritten after the checkpoint of seq 120") {
		t.Fatalf("Verify(--checkpoints rsyslog) = %+v", rep)
	}
	t.Logf("reported: %s", rep.Problem)
	// The events rsyslog received pin the edit down to its seq.
	for seq, ev := range received.evs {
		var got *store.AuditEvent
		st.ScanAudit(t.Context(), seq, func(e *store.AuditEvent) error { got = e; return errStopScan })
		if got.Hash != ev.Hash && seq < 121 {
			t.Errorf("event %d changed, but the edit was at 121", seq)
		}
	}
	if ev := received.evs[121]; ev == nil || ev.Result != "reject" {
		t.Fatalf("rsyslog's copy of event 121: %+v", ev)
	}
}
