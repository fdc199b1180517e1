package badger

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/store"
)

func auditEvent(subject string) *store.AuditEvent {
	return &store.AuditEvent{Actor: "nas:sw1", Action: "radius.auth", Subject: subject, Result: "ok", Source: "10.0.0.1"}
}

// waitQueued waits until at least n AppendAudit calls wait in the queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.auditQ.mu.Lock()
		got := len(s.auditQ.pending)
		s.auditQ.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d appends queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// gatedCommits makes the first audit batch wait for release, so a test can
// queue appends behind it, and records every batch's size. fail, if set,
// decides the outcome of each later commit (0-based, counting the first).
type gatedCommits struct {
	entered chan struct{} // closed when the first commit waits
	release chan struct{}
	mu      sync.Mutex
	sizes   []int
	fail    func(call int) error
}

func gate(s *Store) *gatedCommits {
	g := &gatedCommits{entered: make(chan struct{}), release: make(chan struct{})}
	s.beforeAuditCommit = func(n int) error {
		g.mu.Lock()
		call := len(g.sizes)
		g.sizes = append(g.sizes, n)
		fail := g.fail
		g.mu.Unlock()
		if call == 0 {
			close(g.entered)
			<-g.release
		}
		if fail != nil {
			return fail(call)
		}
		return nil
	}
	return g
}

func (g *gatedCommits) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

// verifyChain checks VerifyAudit and the event count.
func verifyChain(t *testing.T, s *Store, want uint64) {
	t.Helper()
	res, err := s.VerifyAudit(t.Context())
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if !res.OK || res.Events != want {
		t.Fatalf("VerifyAudit = %+v, want OK with %d events", res, want)
	}
}

func TestAppendAuditConcurrentCallersShareCommitsAndFormOneChain(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	if err := s.PutDevice(ctx, &store.Device{ID: "d1", Platform: "linux"}); err != nil {
		t.Fatal(err)
	}
	is := mustIssue(t, s, "d2", 1) // seq 1
	g := gate(s)

	const workers, each = 64, 6
	type got struct {
		seq  uint64
		hash store.Hash
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []got
		errs    []error
	)
	keep := func(ev *store.AuditEvent, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		results = append(results, got{ev.Seq, ev.Hash})
	}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev := auditEvent(fmt.Sprintf("w%d-%d", w, i))
				keep(ev, s.AppendAudit(ctx, ev))
				// Audited writes take the same chain between batches.
				switch {
				case i == 2 && w%2 == 0:
					ev := &store.AuditEvent{Actor: "admin:t", Action: "device.update", Subject: "d1", Result: "ok"}
					_, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
						d.Groups = append(d.Groups, fmt.Sprintf("g%d", w))
						return nil
					}, ev)
					keep(ev, err)
				case i == 4 && w%2 == 1:
					ev := &store.AuditEvent{Actor: "admin:t", Action: "cert.revoke", Subject: "d2", Result: "ok"}
					_, err := s.RevokeCert(ctx, is.Cert.SHA256, store.Revocation{Reason: 1}, ev)
					keep(ev, err)
				}
			}
		})
	}
	// Every worker's first append queues behind the gated first commit.
	waitQueued(t, s, workers-1)
	close(g.release)
	wg.Wait()

	for _, err := range errs {
		t.Errorf("write: %v", err)
	}
	total := uint64(1 + workers*each + workers)
	if uint64(len(results)) != total-1 {
		t.Fatalf("%d successful writes, want %d", len(results), total-1)
	}
	bySeq := map[uint64]store.Hash{1: is.Audit.Hash}
	for _, r := range results {
		if _, dup := bySeq[r.seq]; dup {
			t.Fatalf("seq %d handed to two callers", r.seq)
		}
		bySeq[r.seq] = r.hash
	}
	verifyChain(t, s, total)
	if err := s.ScanAudit(ctx, 1, func(e *store.AuditEvent) error {
		if h, ok := bySeq[e.Seq]; !ok || h != e.Hash {
			return fmt.Errorf("stored event %d is not the one its caller got back", e.Seq)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sizes := g.batchSizes(); len(sizes) < 2 || sizes[1] < workers-1 {
		t.Fatalf("batch sizes %v: the %d queued appends were not committed together", sizes, workers-1)
	}
}

func TestAppendAuditFailedBatchFailsEveryEventAndLeavesChainUnchanged(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	ctx := t.Context()
	g := gate(s)
	injected := errors.New("injected commit failure")
	g.fail = func(call int) error {
		if call == 1 {
			return injected
		}
		return nil
	}

	first := auditEvent("first")
	firstDone := make(chan error, 1)
	go func() { firstDone <- s.AppendAudit(ctx, first) }()
	<-g.entered
	// The first call leads and blocks in its commit; these queue behind it
	// and make up the second, failing batch.
	const queued = 10
	errs := make(chan error, queued)
	evs := make([]*store.AuditEvent, queued)
	for i := range queued {
		evs[i] = auditEvent(fmt.Sprintf("q%d", i))
		go func() { errs <- s.AppendAudit(ctx, evs[i]) }()
	}
	waitQueued(t, s, queued)
	close(g.release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first append: %v", err)
	}
	for range queued {
		if err := <-errs; !errors.Is(err, injected) {
			t.Errorf("queued append: err = %v, want the injected failure", err)
		}
	}
	for _, ev := range evs {
		if ev.Seq != 0 || ev.Hash != (store.Hash{}) {
			t.Fatalf("failed append filled in its event: %+v", ev)
		}
	}
	verifyChain(t, s, 1)

	next := auditEvent("next")
	if err := s.AppendAudit(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next.Seq != 2 || next.PrevHash != first.Hash {
		t.Fatalf("append after a failed batch: seq %d prev %s, want 2 after %s", next.Seq, next.PrevHash, first.Hash)
	}
	verifyChain(t, s, 2)
	if sizes := g.batchSizes(); len(sizes) != 3 || sizes[1] != queued {
		t.Fatalf("batch sizes %v, want [1 %d 1]", sizes, queued)
	}
}

func TestAppendAuditSplitsBatchesOverBadgerTxnLimit(t *testing.T) {
	t.Parallel()
	s := openMem(t) // 8 MiB memtable: a transaction holds about 1.2 MB
	ctx := t.Context()
	g := gate(s)

	first := auditEvent("first")
	firstDone := make(chan error, 1)
	go func() { firstDone <- s.AppendAudit(ctx, first) }()
	<-g.entered

	const queued, oversized = 20, 7
	type result struct {
		i   int
		ev  *store.AuditEvent
		err error
	}
	results := make(chan result, queued)
	for i := range queued {
		ev := auditEvent(fmt.Sprintf("q%d", i))
		ev.Reason = strings.Repeat("x", 200<<10) // ~6 per transaction
		if i == oversized {
			ev.Reason = strings.Repeat("x", 2<<20) // over Badger's value limit
		}
		go func() {
			err := s.AppendAudit(ctx, ev)
			results <- result{i, ev, err}
		}()
		waitQueued(t, s, i+1) // queue in order
	}
	close(g.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	bySeq := map[uint64]int{}
	for range queued {
		r := <-results
		if r.i == oversized {
			if r.err == nil || r.ev.Seq != 0 {
				t.Errorf("oversized event: err = %v, seq %d; want an error and no seq", r.err, r.ev.Seq)
			}
			continue
		}
		if r.err != nil {
			t.Errorf("event %d: %v", r.i, r.err)
			continue
		}
		bySeq[r.ev.Seq] = r.i
	}
	// Queue order is chain order, minus the event that did not fit.
	for seq := uint64(2); seq <= queued; seq++ {
		want := int(seq) - 2
		if want >= oversized {
			want++
		}
		if bySeq[seq] != want {
			t.Fatalf("seq %d holds queued event %d, want %d", seq, bySeq[seq], want)
		}
	}
	verifyChain(t, s, queued)
	sizes := g.batchSizes()
	committed := 0
	for _, n := range sizes[1:] {
		if n >= queued-1 {
			t.Fatalf("batch sizes %v: a batch over the transaction limit was not split", sizes)
		}
		committed += n
	}
	if committed != queued-1 {
		t.Fatalf("batch sizes %v commit %d events, want %d", sizes, committed, queued-1)
	}
}

func TestAppendAuditCanceledWhileQueuedWritesNothing(t *testing.T) {
	t.Parallel()
	s := openMem(t)
	g := gate(s)
	firstDone := make(chan error, 1)
	go func() { firstDone <- s.AppendAudit(t.Context(), auditEvent("first")) }()
	<-g.entered

	ctx, cancel := context.WithCancel(t.Context())
	canceled := make(chan error, 1)
	go func() { canceled <- s.AppendAudit(ctx, auditEvent("canceled")) }()
	waitQueued(t, s, 1)
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled append: err = %v, want context.Canceled", err)
	}
	close(g.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	verifyChain(t, s, 1)
	if tail := mustTail(t, s); len(tail) != 1 || tail[0].Subject != "first" {
		t.Fatalf("tail = %+v, want only the first event", tail)
	}
}

func TestCloseWithAppendsInFlightFailsThemWithErrClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutDevice(ctx, &store.Device{ID: "d1", Platform: "linux"}); err != nil {
		t.Fatal(err)
	}
	var (
		ok   atomic.Uint64
		wg   sync.WaitGroup
		errs = make(chan error, 64)
	)
	for w := range 64 {
		wg.Go(func() {
			for i := 0; ; i++ {
				var err error
				if w%8 == 0 {
					_, err = s.UpdateDevice(ctx, "d1", func(*store.Device) error { return nil }, auditEvent("d1"))
				} else {
					err = s.AppendAudit(ctx, auditEvent(fmt.Sprintf("w%d-%d", w, i)))
				}
				if err != nil {
					errs <- err
					return
				}
				ok.Add(1)
			}
		})
	}
	for ok.Load() < 200 {
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("write during Close: err = %v, want ErrClosed", err)
		}
	}
	s2, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	verifyChain(t, s2, ok.Load())
}

// BenchmarkAppendAuditParallel appends from many goroutines to a store on
// disk with SyncWrites, the RADIUS server's shape: one event per
// authentication from each of its workers. ns/op is per event, cpu-ns/op
// the process CPU (all goroutines, Badger's included) per event.
func BenchmarkAppendAuditParallel(b *testing.B) {
	for _, par := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			ctx := context.Background()
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(par)
			cpu0 := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ev := auditEvent(fmt.Sprintf("dev-%d", n.Add(1)))
					if err := s.AppendAudit(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
