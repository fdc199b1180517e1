package auditexport

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"hardbound/store"
)

// received reads a sink's file: how often each event seq arrived and
// the checkpoints.
type received struct {
	count map[uint64]int
	cps   []store.AuditCheckpoint
	evs   map[uint64]*store.AuditEvent
}

func readReceived(t testing.TB, path string) received {
	t.Helper()
	rc := received{count: map[uint64]int{}, evs: map[uint64]*store.AuditEvent{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return rc
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = ReadRecords(f, func(ev *store.AuditEvent, cp *store.AuditCheckpoint) error {
		if ev != nil {
			rc.count[ev.Seq]++
			rc.evs[ev.Seq] = ev
		} else {
			rc.cps = append(rc.cps, *cp)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rc
}

// gaps lists the seqs in 1..head that never arrived (at most 10) and
// counts the duplicates.
func (rc received) gaps(head uint64) (missing []uint64, dups int) {
	for s := uint64(1); s <= head; s++ {
		switch n := rc.count[s]; {
		case n == 0:
			if len(missing) < 10 {
				missing = append(missing, s)
			}
		case n > 1:
			dups += n - 1
		}
	}
	return missing, dups
}

// lagMetrics records the latest lag and delivery of each sink.
type lagMetrics struct {
	mu        sync.Mutex
	lag       map[string]uint64
	maxLag    map[string]uint64
	delivered map[string]int
	errors    map[string]int
	lastOK    map[string]time.Time
}

func newLagMetrics() *lagMetrics {
	return &lagMetrics{lag: map[string]uint64{}, maxLag: map[string]uint64{}, delivered: map[string]int{},
		errors: map[string]int{}, lastOK: map[string]time.Time{}}
}

func (m *lagMetrics) ExportLag(s string, n uint64) {
	m.mu.Lock()
	m.lag[s] = n
	m.maxLag[s] = max(m.maxLag[s], n)
	m.mu.Unlock()
}
func (m *lagMetrics) ExportDelivered(s string, n int, at time.Time) {
	m.mu.Lock()
	m.delivered[s] += n
	m.lastOK[s] = at
	m.mu.Unlock()
}
func (m *lagMetrics) ExportError(s string) { m.mu.Lock(); m.errors[s]++; m.mu.Unlock() }

func (m *lagMetrics) get(s string) (lag, maxLag uint64, errs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lag[s], m.maxLag[s], m.errors[s]
}

// waitFor polls cond (bounded); on timeout it fails with what().
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", d, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appendEvents appends n radius.auth-like events in groups of 50.
func appendEvents(ctx context.Context, st interface {
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}, n int) error {
	for n > 0 {
		k := min(n, 50)
		evs := make([]*store.AuditEvent, k)
		for i := range evs {
			evs[i] = &store.AuditEvent{Actor: "nas:ap1", Action: "radius.auth", Subject: fmt.Sprintf("device-%d", n-i), Result: "ok", Source: "127.0.0.1"}
		}
		if err := st.AppendAudits(ctx, evs); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
