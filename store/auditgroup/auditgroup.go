// Package auditgroup appends audit events in groups: one store
// transaction and one fsync carry every event that arrives within a short
// window, instead of one each. Callers choose whether an event must be
// durable before Append returns (Sync) or only soon after (the default),
// with Flush writing everything still pending on shutdown.
//
// Groups are written one at a time, in the order they opened: every
// backend serialises chain appends anyway (Badger under a mutex,
// PostgreSQL on the audit_head row lock), so parallel writes only queued
// on that lock while holding pool connections, and other store work on
// the node waited for the pool behind them (BENCHMARKS.md, "Audit groups
// written one at a time"). Instead the group behind the one being
// written stays open and gathers everything that arrives meanwhile.
package auditgroup

import (
	"context"
	"sync"
	"time"

	"hardbound/store"
)

const (
	// MaxGroup caps the events written in one group (one transaction).
	MaxGroup = 256
	// MaxWrites caps the groups queued for a background write (one being
	// written, the rest waiting their turn); beyond it the leader of a new
	// group writes it itself, in turn (backpressure instead of unbounded
	// memory when the audit disk stalls).
	MaxWrites = 16
	// DefaultTimeout bounds one group's write.
	DefaultTimeout = 5 * time.Second
)

// Appender is the audit chain; store.Store satisfies it.
type Appender interface {
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}

// Options configure a Writer.
type Options struct {
	// Window is how long events gather before their group is written;
	// 0 or negative: no gathering beyond what arrives during a write.
	Window time.Duration
	// Sync makes Append return only once its event is durable; a group
	// then lingers only while events keep coming (the previous group
	// opened within two windows), so a lone event is written at once.
	Sync bool
	// Failed reports a group that could not be written, with its size.
	// Without Sync nobody else learns of it.
	Failed func(n int, err error)
	// Timeout bounds one group's write (default DefaultTimeout).
	Timeout time.Duration
}

// Writer groups appends. There is no writer goroutine to start: the first
// event to find no open group leads it, lingers for the window (Sync) or
// hands the group to a background write (default), which Flush waits for.
// A Writer works the same whether or not anyone ever calls Flush, except
// that background writes may still be running.
type Writer struct {
	audit Appender
	opt   Options

	mu        sync.Mutex
	open      *group
	tail      *group        // the newest group: the next one is written after it
	lastStart time.Time     // when the previous group opened
	stop      chan struct{} // closed by Flush: no more lingering
	stopped   bool
	writes    sync.WaitGroup
	slots     chan struct{} // background writes in flight
}

type group struct {
	evs  []*store.AuditEvent
	prev *group        // written before this one; nil once it has been
	full chan struct{} // closed when evs reaches MaxGroup
	done chan struct{} // closed once written; err is then final
	err  error
}

// New returns a Writer appending to a.
func New(a Appender, o Options) *Writer {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Writer{
		audit: a, opt: o,
		stop:  make(chan struct{}),
		slots: make(chan struct{}, MaxWrites),
	}
}

// Append adds ev to the open group (opening one if none). With Sync it
// returns once that group is written; a member whose ctx ends first returns
// ctx's error, and its event may still be written with the group. Without
// Sync it returns nil: at once unless MaxWrites groups are already being
// written, and write errors go to Failed, counted per event. ev is filled
// in (Seq, Hash) once written and must not be touched by the caller after.
func (a *Writer) Append(ctx context.Context, ev *store.AuditEvent) error {
	now := time.Now()
	a.mu.Lock()
	g, lead := a.open, false
	if g == nil {
		g = &group{prev: a.tail, full: make(chan struct{}), done: make(chan struct{})}
		a.open, a.tail, lead = g, g, true
	}
	g.evs = append(g.evs, ev)
	if len(g.evs) >= MaxGroup {
		a.open = nil // the next event opens a new group
		close(g.full)
	}
	// Sync: linger only under load (the previous group opened within two
	// windows), so a lone event on a quiet server is written at once.
	// Otherwise always gather for the window; nobody waits on it.
	linger := a.opt.Window > 0 && (!a.opt.Sync || now.Sub(a.lastStart) < 2*a.opt.Window)
	stopped := a.stopped
	if lead {
		a.lastStart = now
		if !stopped {
			// Under mu, so every Add happens before Flush's Wait.
			a.writes.Add(1)
		}
	}
	a.mu.Unlock()

	if !lead {
		if !a.opt.Sync {
			return nil
		}
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if stopped { // after Flush: write now
		a.write(ctx, g, false)
		return a.result(g)
	}
	defer a.writes.Done()
	if a.opt.Sync {
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
// each return the group's error themselves; other members already
// returned nil, so a failure is reported once for all of them.
func (a *Writer) result(g *group) error {
	if a.opt.Sync || g.err == nil {
		return g.err
	}
	if a.opt.Failed != nil {
		a.opt.Failed(len(g.evs), g.err)
	}
	return nil
}

// write lingers (unless told not to, the group fills, or Flush starts),
// waits for the group before it to be written (still gathering), closes
// the group to newcomers and writes it.
func (a *Writer) write(ctx context.Context, g *group, linger bool) {
	// The window runs from the group's opening while the previous group
	// is being written, so a group is written at the later of the two:
	// under steady load groups stay a window apart (one commit per
	// window, as without the ordering), and behind a slow write the group
	// keeps gathering. That write is bounded by its own Timeout.
	if linger {
		t := time.NewTimer(a.opt.Window)
		select {
		case <-t.C:
		case <-g.full:
		case <-a.stop:
		}
		t.Stop()
	}
	if g.prev != nil {
		<-g.prev.done
		g.prev = nil // do not keep the written chain reachable
	}
	a.mu.Lock()
	if a.open == g {
		a.open = nil
	}
	a.mu.Unlock()
	// Other members (and, without Sync, callers long gone) depend on this
	// write whatever happens to the leader's request: its own deadline.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opt.Timeout)
	g.err = a.audit.AppendAudits(wctx, g.evs)
	cancel()
	close(g.done)
}

// Flush writes the open group now and waits for every group being
// written. Later appends are written at once, without lingering.
func (a *Writer) Flush() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		close(a.stop)
	}
	a.mu.Unlock()
	a.writes.Wait()
}
