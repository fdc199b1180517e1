package auditgroup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/store"
)

// appendAll runs n concurrent appends and returns their errors.
func appendAll(ctx context.Context, a *Writer, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = a.Append(ctx, &store.AuditEvent{Action: "radius.auth", Subject: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	return errs
}

func TestWriterSyncWriteEveryDecisionBeforeReturning(t *testing.T) {
	m := &memAudit{}
	a := New(m, Options{Window: 20 * time.Millisecond, Sync: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Make the server look busy so the leaders linger.
	if err := a.Append(ctx, &store.AuditEvent{Action: "radius.auth", Subject: "warm"}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			subject := fmt.Sprint(i)
			if err := a.Append(ctx, &store.AuditEvent{Action: "radius.auth", Subject: subject}); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
			// Durable before return: the event is already in the store.
			found := false
			for _, ev := range m.all() {
				found = found || ev.Subject == subject
			}
			if !found {
				t.Errorf("append %d returned before its event was written", i)
			}
		})
	}
	wg.Wait()
	if got := len(m.all()); got != n+1 {
		t.Fatalf("wrote %d events, want %d", got, n+1)
	}
	m.mu.Lock()
	groups := len(m.groups)
	m.mu.Unlock()
	if groups >= n {
		t.Fatalf("%d events in %d groups: decisions were not grouped", n+1, groups)
	}
	t.Logf("%d events in %d groups", n+1, groups)
}

func TestWriterSyncDoNotLingerWhenQuietOrFull(t *testing.T) {
	// With an hour of linger, only the two exits that skip the wait can
	// let these appends finish within the test's deadline.
	m := &memAudit{}
	a := New(m, Options{Window: time.Hour, Sync: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Append(ctx, &store.AuditEvent{Action: "radius.auth"}); err != nil {
		t.Fatalf("lone decision on a quiet server: %v", err)
	}
	// Now busy: a group is written early only once it is full.
	for i, err := range appendAll(ctx, a, MaxGroup) {
		if err != nil {
			t.Fatalf("append %d of a full group: %v", i, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.groups) != 2 || m.groups[1] != MaxGroup {
		t.Fatalf("groups %v, want [1 %d]", m.groups, MaxGroup)
	}
}

func TestWriterSyncReportTheWriteErrorToEveryMember(t *testing.T) {
	a := New(failingAudit{}, Options{Window: 5 * time.Millisecond, Sync: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i, err := range appendAll(ctx, a, 20) {
		if err == nil {
			t.Fatalf("append %d: no error from a failing audit store", i)
		}
	}
}

func TestWriterSyncWaiterLeavesWhenItsContextEnds(t *testing.T) {
	m := &memAudit{}
	a := New(m, Options{Window: time.Hour, Sync: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Append(ctx, &store.AuditEvent{Action: "warm"}); err != nil {
		t.Fatal(err)
	}
	lead := make(chan error, 1)
	go func() { lead <- a.Append(ctx, &store.AuditEvent{Action: "lead"}) }()
	for { // until the leader's group is open
		a.mu.Lock()
		open := a.open != nil
		a.mu.Unlock()
		if open {
			break
		}
		time.Sleep(time.Millisecond)
	}
	wctx, wcancel := context.WithCancel(ctx)
	wcancel()
	if err := a.Append(wctx, &store.AuditEvent{Action: "late"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with ended context = %v, want context.Canceled", err)
	}
	// Fill the group so the leader stops lingering; the leader and the
	// rest are unaffected by the waiter that left.
	for i, err := range appendAll(ctx, a, MaxGroup-2) {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := <-lead; err != nil {
		t.Fatalf("leader: %v", err)
	}
}

func TestWriterAsyncReturnAtOnceAndFlushWritesEverything(t *testing.T) {
	m := &memAudit{}
	// An hour's window: only flush can end the gathering.
	a := New(m, Options{Window: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const n = 300 // more than one group
	for i, err := range appendAll(ctx, a, n) {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	a.Flush()
	if got := len(m.all()); got != n {
		t.Fatalf("after flush %d events written, want %d", got, n)
	}
	m.mu.Lock()
	groups := len(m.groups)
	m.mu.Unlock()
	if groups != 2 {
		t.Fatalf("%d events in %d groups, want 2 (one full, one flushed)", n, groups)
	}
	// After flush nothing lingers: an append is written before it returns.
	if err := a.Append(ctx, &store.AuditEvent{Action: "late"}); err != nil {
		t.Fatal(err)
	}
	if got := len(m.all()); got != n+1 {
		t.Fatalf("append after flush not written at once: %d events", got)
	}
}

func TestWriterAsyncReportFailedGroups(t *testing.T) {
	var failed failCount
	a := New(failingAudit{}, Options{Window: time.Millisecond, Failed: failed.add})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i, err := range appendAll(ctx, a, 40) {
		if err != nil {
			t.Fatalf("append %d: async append reported %v to the caller", i, err)
		}
	}
	a.Flush()
	if n := failed.get(); n != 40 {
		t.Fatalf("failed reported for %d decisions, want 40", n)
	}
}

// failCount sums what auditGroups reports as failed.
type failCount struct {
	mu sync.Mutex
	n  int
}

func (f *failCount) add(n int, _ error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += n
}

func (f *failCount) get() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func TestWriterAsyncWriteInlineWhenTooManyWritesAreQueued(t *testing.T) {
	b := &blockingAudit{release: make(chan struct{}), entered: make(chan struct{}, MaxWrites+1)}
	a := New(b, Options{Window: -1}) // no gathering beyond the wait for the previous write
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Append(ctx, &store.AuditEvent{Action: "bg"}); err != nil {
		t.Fatal(err)
	}
	<-b.entered // the first group is being written (and blocked)
	// Every later group waits its turn, open until full: MaxWrites-1 full
	// groups take the remaining slots, each append returning at once.
	for i := range (MaxWrites - 1) * MaxGroup {
		if err := a.Append(ctx, &store.AuditEvent{Action: "queued"}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	inline := make(chan error, 1)
	go func() { inline <- a.Append(ctx, &store.AuditEvent{Action: "inline"}) }()
	select {
	case err := <-inline:
		t.Fatalf("append returned (%v) with every slot taken and the store blocked", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(b.release)
	if err := <-inline; err != nil {
		t.Fatal(err)
	}
	a.Flush()
	want := 1 + (MaxWrites-1)*MaxGroup + 1
	if got := len(b.all()); got != want {
		t.Fatalf("%d events written, want %d", got, want)
	}
	if b.most > 1 {
		t.Fatalf("%d groups were written at once, want 1", b.most)
	}
}

func TestWriterWritesOneGroupAtATimeInAppendOrder(t *testing.T) {
	for _, syncMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", syncMode), func(t *testing.T) {
			b := &blockingAudit{release: make(chan struct{}), entered: make(chan struct{}, 1024)}
			close(b.release)
			b.delay = time.Millisecond // long enough for groups to queue
			a := New(b, Options{Window: -1, Sync: syncMode})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			const n = 2000
			var wg sync.WaitGroup
			for g := range 8 { // 8 appenders, each in its own order
				wg.Go(func() {
					for i := range n / 8 {
						ev := &store.AuditEvent{Action: "radius.auth", Subject: fmt.Sprintf("%d/%05d", g, i)}
						if err := a.Append(ctx, ev); err != nil {
							t.Errorf("append: %v", err)
						}
					}
				})
			}
			wg.Wait()
			a.Flush()
			evs := b.all()
			if len(evs) != n {
				t.Fatalf("%d events written, want %d", len(evs), n)
			}
			if b.most != 1 {
				t.Fatalf("%d groups written at once, want 1", b.most)
			}
			last := map[string]string{}
			for _, ev := range evs { // each appender's events in its order
				k, v := ev.Subject[:1], ev.Subject[2:]
				if v <= last[k] && last[k] != "" {
					t.Fatalf("appender %s: %s written after %s", k, v, last[k])
				}
				last[k] = v
			}
			b.mu.Lock()
			t.Logf("%d events in %d groups", n, len(b.groups))
			b.mu.Unlock()
		})
	}
}

// blockingAudit holds every AppendAudits until release is closed (then
// for delay) and records the most writes it saw at once.
type blockingAudit struct {
	memAudit
	release chan struct{}
	entered chan struct{}
	delay   time.Duration

	inFlight atomic.Int32
	most     int32 // read after Flush
}

func (b *blockingAudit) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	b.mu.Lock()
	b.most = max(b.most, n)
	b.mu.Unlock()
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	time.Sleep(b.delay)
	return b.memAudit.AppendAudits(ctx, evs)
}

func TestWriterAsyncReportInlineFailuresOnce(t *testing.T) {
	var failed failCount
	a := New(failingAudit{}, Options{Window: time.Millisecond, Failed: failed.add})
	a.Flush() // from now on every group is written inline by its leader
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i, err := range appendAll(ctx, a, 10) {
		if err != nil {
			t.Fatalf("append %d: async append reported %v to the caller", i, err)
		}
	}
	if n := failed.get(); n != 10 {
		t.Fatalf("failed reported for %d decisions, want 10", n)
	}
}

// memAudit records what was appended and the size of every group.
type memAudit struct {
	mu     sync.Mutex
	events []store.AuditEvent
	groups []int
}

func (m *memAudit) AppendAudits(_ context.Context, evs []*store.AuditEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		m.events = append(m.events, *ev)
	}
	m.groups = append(m.groups, len(evs))
	return nil
}

func (m *memAudit) all() []store.AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.AuditEvent(nil), m.events...)
}

type failingAudit struct{}

func (failingAudit) AppendAudits(context.Context, []*store.AuditEvent) error {
	return errors.New("audit disk full")
}
