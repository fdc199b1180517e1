package audithold_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/audithold"
	"hardbound/store/badger/badgertest"
	"hardbound/store/storetest"
)

// outage is a real store whose AppendAudits fails with ErrUnavailable
// while down is set.
type outage struct {
	*storetest.Faulty
	down atomic.Bool
}

func newOutage(t *testing.T) *outage {
	o := &outage{Faulty: &storetest.Faulty{Store: badgertest.Memory(t)}}
	o.Fail = func(m string) error {
		if m == "AppendAudits" && o.down.Load() {
			return fmt.Errorf("test: %w", store.ErrUnavailable)
		}
		return nil
	}
	return o
}

type metrics struct {
	mu      sync.Mutex
	held    int
	bytes   int64
	dropped int
}

func (m *metrics) Held(n int, b int64) { m.mu.Lock(); m.held, m.bytes = n, b; m.mu.Unlock() }
func (m *metrics) Dropped(n int)       { m.mu.Lock(); m.dropped += n; m.mu.Unlock() }
func (m *metrics) get() (int, int64, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held, m.bytes, m.dropped
}

func ev(subject string) *store.AuditEvent {
	return &store.AuditEvent{Actor: "nas:test", Action: "radius.auth", Subject: subject, Result: "ok"}
}

// subjects lists the chain's events' subjects in order, after checking
// that it verifies.
func subjects(t *testing.T, st store.Store) []string {
	t.Helper()
	res, err := st.VerifyAudit(t.Context())
	if err != nil || !res.OK {
		t.Fatalf("VerifyAudit = %+v, %v", res, err)
	}
	var out []string
	if err := st.ScanAudit(t.Context(), 1, func(e *store.AuditEvent) error {
		out = append(out, e.Subject)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// While the database is away events are held; later events queue behind
// them even once it is back; Run appends them all in order, the chain
// verifies, and each held event keeps the time it was given.
func TestHoldsInOrderAndDrains(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	m := &metrics{}
	h, err := audithold.New(st, audithold.Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AppendAudit(ctx, ev("before")); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	var want []string
	heldEvs := []*store.AuditEvent{}
	for i := range 600 { // more than one batch
		e := ev("away-" + strconv.Itoa(i))
		want = append(want, e.Subject)
		heldEvs = append(heldEvs, e)
		if err := h.AppendAudits(ctx, []*store.AuditEvent{e}); err != nil {
			t.Fatal(err)
		}
	}
	given := heldEvs[0].Time
	if given.IsZero() {
		t.Fatal("a held event has no time")
	}
	st.down.Store(false)
	// Back, but not drained yet: a new event queues behind.
	if err := h.AppendAudit(ctx, ev("after")); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := m.get(); n != 601 || h.Held() != 601 {
		t.Fatalf("held %d (metric %d), want 601", h.Held(), n)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for h.Held() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still held", h.Held())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	got := subjects(t, st)
	want = append(append([]string{"before"}, want...), "after")
	if !equal(got, want) {
		t.Fatalf("chain %v..., want %v...", got[:min(5, len(got))], want[:5])
	}
	if heldEvs[0].Seq != 2 || !heldEvs[0].Time.Equal(given) {
		t.Errorf("first held event: seq %d time %v, want 2 and %v", heldEvs[0].Seq, heldEvs[0].Time, given)
	}
	if n, b, _ := m.get(); n != 0 || b != 0 {
		t.Errorf("held metric %d events %d bytes after the drain", n, b)
	}
	// Drained: a pass-through again.
	if err := h.AppendAudit(ctx, ev("later")); err != nil || h.Held() != 0 {
		t.Fatalf("append after the drain: %v, held %d", err, h.Held())
	}
}

// The bound refuses the newest events, counted, with an error that says
// so; what was held is still appended.
func TestFullQueueRefusesNewest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	m := &metrics{}
	h, err := audithold.New(st, audithold.Options{MaxEvents: 3, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	for i := range 3 {
		if err := h.AppendAudit(ctx, ev(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	err = h.AppendAudits(ctx, []*store.AuditEvent{ev("3"), ev("4")})
	if !errors.Is(err, audithold.ErrFull) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append to a full hold = %v, want ErrFull and ErrUnavailable", err)
	}
	if _, _, d := m.get(); d != 2 {
		t.Fatalf("dropped %d, want 2", d)
	}
	st.down.Store(false)
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, st); !equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("chain %v", got)
	}
}

// A store refusing one held event for a reason other than unavailability
// drops that event alone.
func TestRefusedEventDroppedAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	m := &metrics{}
	h, err := audithold.New(&refuser{Store: st, bad: "bad"}, audithold.Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	for _, s := range []string{"a", "bad", "c"} {
		if err := h.AppendAudit(ctx, ev(s)); err != nil {
			t.Fatal(err)
		}
	}
	st.down.Store(false)
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, st); !equal(got, []string{"a", "c"}) {
		t.Fatalf("chain %v, want a c", got)
	}
	if _, _, d := m.get(); d != 1 {
		t.Fatalf("dropped %d, want 1", d)
	}
}

// refuser refuses any group holding the event with subject bad.
type refuser struct {
	store.Store
	bad string
}

func (r *refuser) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	if r.Store.(*outage).down.Load() {
		return r.Store.AppendAudits(ctx, evs)
	}
	for _, e := range evs {
		if e.Subject == r.bad {
			return errors.New("test: refused")
		}
	}
	return r.Store.AppendAudits(ctx, evs)
}

// holdDuringOutage appends n events ("held-0"...) through h while st is
// down, so that h holds them all, and brings st back; it returns their
// subjects.
func holdDuringOutage(t *testing.T, st *outage, h *audithold.Holder, n int) []string {
	t.Helper()
	st.down.Store(true)
	defer st.down.Store(false)
	var subjects []string
	for i := range n {
		s := "held-" + strconv.Itoa(i)
		subjects = append(subjects, s)
		if err := h.AppendAudit(t.Context(), ev(s)); err != nil {
			t.Fatal(err)
		}
	}
	return subjects
}

// drainFirstBatchOnly drains h with st failing its second append, so
// that exactly the first batch reaches the chain.
func drainFirstBatchOnly(t *testing.T, st *outage, h *audithold.Holder) {
	t.Helper()
	st.Fail = storetest.FailOn("AppendAudits", 2, fmt.Errorf("x: %w", store.ErrUnavailable))
	if err := h.Drain(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("drain = %v, want the second batch to fail", err)
	}
}

// With a spill file, a restart during the outage loses nothing: the next
// process appends what the previous one held, first, and the file is
// emptied once they are in the chain. It is 0600.
func TestSpillSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	path := filepath.Join(t.TempDir(), "held.jsonl")
	h, err := audithold.New(st, audithold.Options{SpillPath: path})
	if err != nil {
		t.Fatal(err)
	}
	want := holdDuringOutage(t, st, h, 300)
	// Part of it drains before the process stops.
	drainFirstBatchOnly(t, st, h)
	if h.Held() != 300-256 {
		t.Fatalf("held %d after one batch", h.Held())
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("spill file mode %v, want 0600", fi.Mode().Perm())
	}

	st.Fail = nil
	h2, err := audithold.New(st, audithold.Options{SpillPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if h2.Held() != 300-256 {
		t.Fatalf("the next process holds %d, want %d", h2.Held(), 300-256)
	}
	if err := h2.AppendAudit(ctx, ev("new")); err != nil {
		t.Fatal(err)
	}
	if err := h2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, st); !equal(got, append(want, "new")) {
		t.Fatalf("chain has %d events, want %d in order", len(got), len(want)+1)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("spill file after the drain: %v, %v", fi, err)
	}
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
}

// crashAt snapshots the spill files around the drain's first append of
// held events, as a process killed there would leave them: just before
// the append (which then commits nothing) or just after its commit,
// before pop records it.
type crashAt struct {
	store.Store
	spill, into string
	afterCommit bool
	armed       bool // set once the events are held
	taken       bool
}

func (c *crashAt) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	if !c.armed || c.taken {
		return c.Store.AppendAudits(ctx, evs)
	}
	c.taken = true
	if !c.afterCommit {
		c.snapshot()
		return fmt.Errorf("test: killed before the commit: %w", store.ErrUnavailable)
	}
	err := c.Store.AppendAudits(ctx, evs)
	c.snapshot()
	return err
}

func (c *crashAt) snapshot() {
	for _, suffix := range []string{"", ".done"} {
		if b, err := os.ReadFile(c.spill + suffix); err == nil {
			if err := os.WriteFile(c.into+suffix, b, 0o600); err != nil {
				panic(err)
			}
		}
	}
}

// A process killed between a batch's commit and the record of it leaves
// the batch named in the record: the next one finds it in the chain and
// appends only what is not there, so every event is in the chain once,
// in order. Killed before the commit, the next one appends it all.
func TestSpillCrashMidBatchNeitherLosesNorDuplicates(t *testing.T) {
	t.Parallel()
	for _, afterCommit := range []bool{true, false} {
		t.Run(fmt.Sprintf("after_commit=%v", afterCommit), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st := newOutage(t)
			if err := st.AppendAudit(ctx, ev("before")); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "held.jsonl")
			crash := &crashAt{Store: st, spill: path, into: filepath.Join(dir, "crashed.jsonl"), afterCommit: afterCommit}
			h, err := audithold.New(crash, audithold.Options{SpillPath: path})
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string{"before"}, holdDuringOutage(t, st, h, 300)...)
			crash.armed = true
			// The first batch (256) is appended; the process "dies" around it.
			drainFirstBatchOnly(t, st, h)
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			st.Fail = nil

			h2, err := audithold.New(st, audithold.Options{SpillPath: crash.into})
			if err != nil {
				t.Fatal(err)
			}
			if h2.Held() != 300 {
				t.Fatalf("the next process holds %d, want all 300 (the record names the batch)", h2.Held())
			}
			if err := h2.AppendAudit(ctx, ev("new")); err != nil {
				t.Fatal(err)
			}
			if err := h2.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if got := subjects(t, st); !equal(got, append(want, "new")) {
				t.Fatalf("chain has %d events, want %d, each once, in order", len(got), len(want)+1)
			}
			if err := h2.Close(); err != nil {
				t.Fatal(err)
			}
			// Drained: a third start holds nothing.
			h3, err := audithold.New(st, audithold.Options{SpillPath: crash.into})
			if err != nil {
				t.Fatal(err)
			}
			defer h3.Close()
			if h3.Held() != 0 {
				t.Fatalf("after the drain the next start holds %d", h3.Held())
			}
		})
	}
}

// The spill file's crash leftovers: a torn last line stays a line of its
// own (later events are not glued to it), and a record past the file's
// end (emptied, then stopped before recording it) holds nothing and
// does not swallow the lines held after it.
func TestSpillLoadAfterTornLineAndEmptiedFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "held.jsonl")
	good, err := json.Marshal(ev("kept"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(append(good, '\n'), `{"actor":"nas:te`...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".done", []byte(`{"done":7}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// done 7 is past the file's 2 lines: the emptied-file case.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := audithold.New(st, audithold.Options{SpillPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if h.Held() != 0 {
		t.Fatalf("emptied file with a stale record: held %d, want 0", h.Held())
	}
	st.down.Store(true)
	if err := h.AppendAudit(ctx, ev("after-empty")); err != nil {
		t.Fatal(err)
	}
	h.Close()
	// Now a torn line at the end, as a write cut short leaves it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(`{"actor":"nas:te`)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h2, err := audithold.New(st, audithold.Options{SpillPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.AppendAudit(ctx, ev("after-torn")); err != nil {
		t.Fatal(err)
	}
	h2.Close()
	st.down.Store(false)
	h3, err := audithold.New(st, audithold.Options{SpillPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer h3.Close()
	if err := h3.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, st); !equal(got, []string{"after-empty", "after-torn"}) {
		t.Fatalf("chain %v, want [after-empty after-torn]", got)
	}
}

// A spill file left by the version whose record was a bare line count
// (written before the record became JSON) is read with it.
func TestSpillReadsTheOlderLineCount(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newOutage(t)
	path := filepath.Join(t.TempDir(), "held.jsonl")
	var lines []byte
	for _, s := range []string{"appended-0", "appended-1", "held-2"} {
		b, err := json.Marshal(ev(s))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(append(lines, b...), '\n')
	}
	if err := os.WriteFile(path, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".done", []byte("2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := audithold.New(st, audithold.Options{SpillPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, st); !equal(got, []string{"held-2"}) {
		t.Fatalf("chain %v, want [held-2]", got)
	}
}
