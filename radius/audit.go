package radius

import (
	"context"
	"sync"
	"time"

	"hardbound/store"
)

const (
	// maxAuditGroup caps the decisions written in one group (one
	// transaction).
	maxAuditGroup = 256
	// maxAuditWrites caps the groups being written in the background at
	// once; beyond it a decision waits for its own group (backpressure
	// instead of unbounded memory when the audit disk stalls).
	maxAuditWrites = 16
)

// auditGroups writes RADIUS decisions to the audit chain in groups: one
// transaction and one fsync carry every decision made within the flush
// window. Per decision, that fsync, its transaction and the scheduler churn
// around a worker blocked on it cost as much CPU as the handshake's own
// signature checks (BENCHMARKS.md).
//
// By default a decision is queued and its reply leaves at once; the group
// is durable within the window (plus one fsync). With sync set, every reply
// waits until its decision is durable, as enrollment does.
//
// The first decision to find no open group leads it: it lingers for the
// window (sync) or hands the group to a background writer (async), which
// flush waits for.
type auditGroups struct {
	audit  Auditor
	window time.Duration
	sync   bool
	// failed reports a group that could not be written (async: nobody
	// else will).
	failed func(n int, err error)

	mu        sync.Mutex
	open      *auditGroup
	lastStart time.Time     // when the previous group opened
	stop      chan struct{} // closed by flush: no more lingering
	stopped   bool
	writes    sync.WaitGroup
	slots     chan struct{} // background writes in flight (async)
}

type auditGroup struct {
	evs  []*store.AuditEvent
	full chan struct{} // closed when evs reaches maxAuditGroup
	done chan struct{} // closed once written; err is then final
	err  error
}

func newAuditGroups(a Auditor, window time.Duration, sync bool, failed func(int, error)) *auditGroups {
	return &auditGroups{
		audit: a, window: window, sync: sync, failed: failed,
		stop:  make(chan struct{}),
		slots: make(chan struct{}, maxAuditWrites),
	}
}

// append adds ev to the open group (opening one if none). In sync mode it
// returns once that group is written; a member whose ctx ends first returns
// ctx's error, and its event may still be written with the group. In async
// mode it returns nil: at once unless maxAuditWrites groups are already
// being written, and write errors go to failed, counted per decision.
func (a *auditGroups) append(ctx context.Context, ev *store.AuditEvent) error {
	now := time.Now()
	a.mu.Lock()
	g, lead := a.open, false
	if g == nil {
		g = &auditGroup{full: make(chan struct{}), done: make(chan struct{})}
		a.open, lead = g, true
	}
	g.evs = append(g.evs, ev)
	if len(g.evs) >= maxAuditGroup {
		a.open = nil // the next decision opens a new group
		close(g.full)
	}
	// Sync: linger only under load (the previous group opened within two
	// windows), so a lone decision on a quiet server is written at once.
	// Async: always gather for the window; nobody waits on it.
	linger := a.window > 0 && (!a.sync || now.Sub(a.lastStart) < 2*a.window)
	stopped := a.stopped
	if lead {
		a.lastStart = now
		if !stopped {
			// Under mu, so every Add happens before flush's Wait.
			a.writes.Add(1)
		}
	}
	a.mu.Unlock()

	if !lead {
		if !a.sync {
			return nil
		}
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if stopped { // after flush: write now
		a.write(ctx, g, false)
		return a.result(g)
	}
	defer a.writes.Done()
	if a.sync {
		a.write(ctx, g, linger)
		return g.err
	}
	select {
	case a.slots <- struct{}{}:
		a.writes.Add(1) // the writer's; the leader's is done on return
		go func() {
			defer a.writes.Done()
			a.write(ctx, g, linger)
			<-a.slots
			_ = a.result(g)
		}()
		return nil
	default: // too many writes in flight: this caller writes its group
		a.write(ctx, g, linger)
		return a.result(g)
	}
}

// result is what the leader returns for its written group. Sync members
// each return the group's error themselves; async members already
// returned nil, so a failure is reported once for all of them.
func (a *auditGroups) result(g *auditGroup) error {
	if a.sync || g.err == nil {
		return g.err
	}
	if a.failed != nil {
		a.failed(len(g.evs), g.err)
	}
	return nil
}

// write lingers (unless told not to, the group fills, or flush starts),
// closes the group to newcomers and writes it.
func (a *auditGroups) write(ctx context.Context, g *auditGroup, linger bool) {
	if linger {
		t := time.NewTimer(a.window)
		select {
		case <-t.C:
		case <-g.full:
		case <-a.stop:
		}
		t.Stop()
	}
	a.mu.Lock()
	if a.open == g {
		a.open = nil
	}
	a.mu.Unlock()
	// Other members (and, async, the reply already sent) depend on this
	// write whatever happens to the leader's request: its own deadline.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	g.err = a.audit.AppendAudits(wctx, g.evs)
	cancel()
	close(g.done)
}

// flush writes the open group now and waits for every group being
// written. Later appends are written without lingering.
func (a *auditGroups) flush() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		close(a.stop)
	}
	a.mu.Unlock()
	a.writes.Wait()
}
