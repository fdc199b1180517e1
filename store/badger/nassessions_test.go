package badger

import (
	"fmt"
	"testing"
	"time"

	"hardbound/store"
)

// TestCloseNASSessionsCrossesScanAndBatchBounds puts more sessions on one
// NAS than one transaction examines (closeScan) and more live ones than one
// transaction closes (closeBatch), mostly already stopped, and checks that
// the batched walk still closes exactly the live ones.
func TestCloseNASSessionsCrossesScanAndBatchBounds(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	const total, every = closeScan + 904, 9 // one in nine live
	wantLive := 0
	for i := range total {
		sess := &store.Session{NAS: "sw1", AcctSessionID: fmt.Sprintf("%05d", i), DeviceID: fmt.Sprintf("d%d", i%11),
			StartedAt: base, StoppedAt: base.Add(time.Minute), TerminateCause: 1}
		if i%every == 0 {
			sess.StoppedAt, sess.TerminateCause = time.Time{}, 0
			wantLive++
		}
		if err := s.PutSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	if wantLive <= closeBatch {
		t.Fatalf("test needs more than %d live sessions, has %d", closeBatch, wantLive)
	}
	at := base.Add(time.Hour)
	n, err := s.CloseNASSessions(ctx, store.NASScope{NAS: "sw1"}, at, 11)
	if err != nil {
		t.Fatal(err)
	}
	if n != wantLive {
		t.Fatalf("closed %d, want %d", n, wantLive)
	}
	closed := 0
	after := ""
	for {
		page, next, err := s.ListSessions(ctx, "", false, store.Page{After: after, Limit: maxLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page {
			switch {
			case x.Live():
				t.Fatalf("session %s still live", x.AcctSessionID)
			case x.StoppedAt.Equal(at) && x.TerminateCause == 11:
				closed++
			case !x.StoppedAt.Equal(base.Add(time.Minute)) || x.TerminateCause != 1:
				t.Fatalf("already stopped session %s was rewritten: %+v", x.AcctSessionID, x)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if closed != wantLive {
		t.Fatalf("%d sessions carry the reboot stop, want %d", closed, wantLive)
	}
}

// BenchmarkCloseNASSessions closes 1000 live sessions of one NAS on disk
// (SyncWrites: every batch is one fsync).
func BenchmarkCloseNASSessions(b *testing.B) {
	s, err := Open(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 1000
	base := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		nas := fmt.Sprintf("sw%d", i)
		for j := range n {
			if err := s.PutSession(b.Context(), &store.Session{NAS: nas, AcctSessionID: fmt.Sprintf("%05d", j), DeviceID: fmt.Sprintf("d%d", j), StartedAt: base}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		got, err := s.CloseNASSessions(b.Context(), store.NASScope{NAS: nas}, base.Add(time.Hour), 11)
		if err != nil || got != n {
			b.Fatalf("closed %d (%v), want %d", got, err, n)
		}
	}
}
