package auditexport

import (
	"strings"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/badger/badgertest"
	"hardbound/store/config"
)

// TestPruner: only events every sink confirmed, older than max_age and
// covered by a checkpoint go, up to just before a checkpoint's event; the
// pruned chain still verifies (from the checkpoint), while a prefix cut
// that no checkpoint covers is reported.
func TestPruner(t *testing.T) {
	st := badgertest.Memory(t)
	ctx := t.Context()
	signer := testSigner(t)
	cpr := NewCheckpointer(st, signer, CheckpointConfig{}, nil)
	for range 3 { // checkpoints at 100, 200, 300
		if err := appendEvents(ctx, st, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := cpr.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cfg := FileConfig{Sinks: []SinkConfig{{Name: "siem"}, {Name: "collector"}},
		Retention: RetentionConfig{MaxAge: config.Duration(time.Hour)}}
	p := NewPruner(st, cfg, nil)
	later := time.Now().Add(2 * time.Hour)
	tests := []struct {
		name        string
		now         time.Time
		cursors     map[string]uint64
		wantThrough uint64
	}{
		{"a_sink_never_delivered", later, map[string]uint64{"siem": 300}, 0},
		{"too_recent", time.Now(), map[string]uint64{"siem": 300, "collector": 300}, 0},
		{"slowest_sink_holds_it", later, map[string]uint64{"siem": 300, "collector": 250}, 199},
		{"nothing_more_until_it_moves", later, nil, 0},
		{"the_sink_caught_up", later, map[string]uint64{"collector": 299}, 299},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for s, seq := range tt.cursors {
				if err := st.PutAuditCursor(ctx, &store.AuditCursor{Sink: s, Seq: seq}); err != nil {
					t.Fatal(err)
				}
			}
			p.now = func() time.Time { return tt.now }
			through, _, err := p.Prune(ctx)
			if err != nil || through != tt.wantThrough {
				t.Fatalf("Prune = %d, %v; want through %d", through, err, tt.wantThrough)
			}
			for _, full := range []bool{false, true} {
				rep, err := Verify(ctx, st, VerifyOptions{Keys: keysOf(t, signer), Full: full})
				if err != nil || !rep.OK {
					t.Fatalf("Verify(full=%v) after pruning = %+v, %v", full, rep, err)
				}
			}
		})
	}
	rep, _ := Verify(ctx, st, VerifyOptions{Keys: keysOf(t, signer), Full: true})
	if rep.PrunedThrough != 299 || rep.FromSeq != 300 {
		t.Fatalf("Verify(full) = %+v", rep)
	}
	// Someone cuts a prefix no checkpoint covers (the store's own mark
	// moves with it, so the store alone cannot tell).
	if err := appendEvents(ctx, st, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PruneAudit(ctx, 320); err != nil {
		t.Fatal(err)
	}
	if vr, err := st.VerifyAudit(ctx); err != nil || !vr.OK {
		t.Fatalf("store.VerifyAudit = %+v, %v", vr, err)
	}
	rep, err := Verify(ctx, st, VerifyOptions{Keys: keysOf(t, signer), Full: true})
	if err != nil || rep.OK || rep.Problems[0].Kind != ProblemTruncated || !strings.Contains(rep.Problem, "events 1-320 are missing") {
		t.Fatalf("Verify after an uncovered cut = %+v, %v", rep, err)
	}
}

func TestRetentionConfig(t *testing.T) {
	c := DefaultFileConfig()
	c.Retention.MaxAge = config.Duration(time.Minute)
	if err := c.Validate("audit"); err == nil {
		t.Fatal("max_age 1m accepted")
	}
	c.Retention.MaxAge = config.Duration(720 * time.Hour)
	c.Checkpoint.Every, c.Checkpoint.Interval = 0, 0
	if err := c.Validate("audit"); err == nil {
		t.Fatal("retention without checkpoints accepted")
	}
}
