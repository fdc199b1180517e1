// Package audithold keeps the audit events that could not be appended
// because the store's database was away (store.ErrUnavailable) and appends
// them, in order and before any later event given to it, once the
// database answers again.
//
// An authentication answered from posture's caches while the database is
// away (docs/ha.md, "When the database is away") is still a decision the
// chain must record: the RADIUS server, the Disconnect/CoA enforcer and
// the other writers of events that are not part of a store transaction
// append through a Holder instead of the store. While nothing is held a
// Holder is a pass-through; once an append fails for unavailability, that
// event and every later one queue behind it until Run has drained the
// queue.
//
// The queue is bounded in events and bytes. When it is full the newest
// events are refused (counted, logged once per outage) rather than the
// oldest dropped: what the chain misses then is a suffix of the outage,
// named by a count, not a hole in its middle. With a spill file the queue
// is also written there (0600, fsynced once per append call) and read
// back by New, so that a restart during the outage loses nothing.
package audithold

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"hardbound/store"
	"hardbound/store/atomicfile"
)

// Defaults of Options.
const (
	DefaultMaxEvents = 200_000
	DefaultMaxBytes  = 128 << 20
	// batch is how many held events one append carries.
	batch = 256
	// maxRetry caps the wait between two attempts to drain.
	maxRetry = time.Second
)

// ErrFull is returned (wrapping store.ErrUnavailable) for an event the
// queue had no room for: it is not in the chain and will not be.
var ErrFull = errors.New("audithold: queue full, event dropped")

// Appender is the audit chain; store.Store satisfies it.
type Appender interface {
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}

// Metrics receives the queue's depth and its drops.
type Metrics interface {
	Held(events int, bytes int64)
	Dropped(n int)
}

type nopMetrics struct{}

func (nopMetrics) Held(int, int64) {}
func (nopMetrics) Dropped(int)     {}

// Options configure a Holder.
type Options struct {
	MaxEvents int   // default DefaultMaxEvents
	MaxBytes  int64 // the events' JSON size; default DefaultMaxBytes
	// SpillPath, when set, is the file the queue is kept in as well
	// (JSON lines, 0600), with SpillPath+".done" counting the lines
	// already appended to the chain.
	SpillPath string
	Log       *slog.Logger
	Metrics   Metrics
	// Timeout bounds one append of held events (default 5s).
	Timeout time.Duration
}

// Holder appends to the chain, holding what the database could not take.
type Holder struct {
	a   Appender
	opt Options

	mu      sync.Mutex
	queue   []held
	bytes   int64
	dropped int // events refused since the queue last emptied
	spill   *os.File
	done    int // lines of the spill file already in the chain
	wake    chan struct{}
	closed  bool
}

type held struct {
	ev   *store.AuditEvent
	size int64
}

// New returns a Holder appending to a. With a spill file, the events a
// previous process held and did not append are queued first.
func New(a Appender, o Options) (*Holder, error) {
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	h := &Holder{a: a, opt: o, wake: make(chan struct{}, 1)}
	if o.SpillPath != "" {
		if err := h.load(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// load reads the spill file a previous process left, rewrites it to hold
// exactly the events still to append (so its lines and the queue agree
// line for line) and opens it for appending.
func (h *Holder) load() error {
	p := h.opt.SpillPath
	done := 0
	if b, err := os.ReadFile(p + ".done"); err == nil {
		if done, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || done < 0 {
			return fmt.Errorf("audithold: %s.done: not a line count", p)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audithold: %w", err)
	}
	var kept bytes.Buffer
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audithold: %w", err)
	}
	for i, line := range bytes.Split(b, []byte("\n")) {
		if i < done || len(line) == 0 {
			continue
		}
		ev := &store.AuditEvent{}
		if err := json.Unmarshal(line, ev); err != nil {
			// A torn last line (a crash in the middle of a write): the
			// append it belonged to never returned.
			h.opt.Log.Warn("audit hold: unreadable line in the spill file, skipped", "file", p, "line", i+1, "err", err)
			continue
		}
		h.queue = append(h.queue, held{ev: ev, size: int64(len(line))})
		h.bytes += int64(len(line))
		kept.Write(line)
		kept.WriteByte('\n')
	}
	if err := atomicfile.Write(p, kept.Bytes(), 0o600); err != nil {
		return fmt.Errorf("audithold: %w", err)
	}
	if err := os.Remove(p + ".done"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audithold: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audithold: %w", err)
	}
	h.spill = f
	if len(h.queue) > 0 {
		h.opt.Log.Warn("audit hold: events held by the previous process are appended first", "events", len(h.queue), "file", p)
		h.signal()
	}
	h.opt.Metrics.Held(len(h.queue), h.bytes)
	return nil
}

// AppendAudit appends ev (see AppendAudits).
func (h *Holder) AppendAudit(ctx context.Context, ev *store.AuditEvent) error {
	if ev == nil {
		return errors.New("audithold: nil event")
	}
	return h.AppendAudits(ctx, []*store.AuditEvent{ev})
}

// AppendAudits appends evs to the chain, or holds them when the chain's
// database is away or events are already held: nil then means queued (on
// disk with a spill file), and their Seq and Hash are filled in when Run
// appends them. Any other error of the store is returned as is.
func (h *Holder) AppendAudits(ctx context.Context, evs []*store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	h.mu.Lock()
	direct := len(h.queue) == 0
	h.mu.Unlock()
	if direct {
		err := h.a.AppendAudits(ctx, evs)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		// A backend may have written a prefix (store.Store.AppendAudits):
		// hold only what has no Seq.
		rest := evs[:0:0]
		for _, ev := range evs {
			if ev.Seq == 0 {
				rest = append(rest, ev)
			}
		}
		evs = rest
	}
	return h.hold(evs)
}

// hold queues evs in order, as many as fit.
func (h *Holder) hold(evs []*store.AuditEvent) error {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	var (
		lines bytes.Buffer
		n     int
	)
	for _, ev := range evs {
		if ev.Time.IsZero() {
			// The time of the decision, not of the append after the
			// outage.
			ev.Time = now
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("audithold: encode event: %w", err)
		}
		size := int64(len(b))
		if len(h.queue) >= h.opt.MaxEvents || h.bytes+size > h.opt.MaxBytes {
			break
		}
		h.queue = append(h.queue, held{ev: ev, size: size})
		h.bytes += size
		lines.Write(b)
		lines.WriteByte('\n')
		n++
	}
	var err error
	if h.spill != nil && lines.Len() > 0 {
		if _, werr := h.spill.Write(lines.Bytes()); werr != nil {
			err = werr
		} else {
			err = h.spill.Sync()
		}
		if err != nil {
			// Still held in memory; only a restart would lose them.
			h.opt.Log.Error("audit hold: write spill file", "file", h.opt.SpillPath, "err", err)
		}
	}
	h.opt.Metrics.Held(len(h.queue), h.bytes)
	h.signal()
	if lost := len(evs) - n; lost > 0 {
		if h.dropped == 0 {
			h.opt.Log.Error("audit hold full: audit events are dropped until the database answers again",
				"held", len(h.queue), "held_bytes", h.bytes, "max_events", h.opt.MaxEvents, "max_bytes", h.opt.MaxBytes)
		}
		h.dropped += lost
		h.opt.Metrics.Dropped(lost)
		return fmt.Errorf("%w: %w (%d events)", store.ErrUnavailable, ErrFull, lost)
	}
	return nil
}

func (h *Holder) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Held reports how many events wait for the database.
func (h *Holder) Held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue)
}

// Run appends held events, oldest first, whenever there are any, until
// ctx ends. It waits between failed attempts (100 ms doubling to 1 s).
func (h *Holder) Run(ctx context.Context) {
	retry := time.Duration(0)
	for {
		if h.Held() == 0 {
			retry = 0
			select {
			case <-ctx.Done():
				return
			case <-h.wake:
			}
			continue
		}
		err := h.drainOnce(ctx)
		if err == nil {
			retry = 0
			continue
		}
		if !errors.Is(err, store.ErrUnavailable) {
			h.opt.Log.Error("audit hold: append held events", "err", err)
		}
		retry = min(max(retry*2, 100*time.Millisecond), maxRetry)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Drain appends every held event or returns the first error, for
// shutdown (bounded by ctx) and tests.
func (h *Holder) Drain(ctx context.Context) error {
	for h.Held() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.drainOnce(ctx); err != nil {
			return err
		}
	}
	return nil
}

// drainOnce appends the oldest batch of held events. Only Run and Drain
// call it, one at a time; appenders meanwhile only add to the tail.
func (h *Holder) drainOnce(ctx context.Context) error {
	h.mu.Lock()
	n := min(len(h.queue), batch)
	evs := make([]*store.AuditEvent, n)
	for i := range n {
		evs[i] = h.queue[i].ev
	}
	h.mu.Unlock()
	if n == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	err := h.a.AppendAudits(actx, evs)
	cancel()
	written := 0
	for written < n && evs[written].Seq != 0 {
		written++
	}
	if err != nil && !errors.Is(err, store.ErrUnavailable) && written == 0 {
		// The store refused the batch for another reason: find the event
		// it refuses and drop that one alone, so that one bad event does
		// not hold the chain back forever.
		if written, err = h.isolate(ctx, evs); err != nil {
			return err
		}
	}
	if written > 0 {
		h.pop(written)
	}
	return err
}

// isolate appends evs one at a time up to the first one the store
// refuses, which is dropped (logged, counted); it returns how many it
// consumed.
func (h *Holder) isolate(ctx context.Context, evs []*store.AuditEvent) (int, error) {
	for i, ev := range evs {
		actx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
		err := h.a.AppendAudits(actx, []*store.AuditEvent{ev})
		cancel()
		switch {
		case err == nil:
			continue
		case errors.Is(err, store.ErrUnavailable):
			return i, err
		}
		h.opt.Log.Error("audit hold: the store refuses a held event, dropped", "action", ev.Action, "subject", ev.Subject, "time", ev.Time, "err", err)
		h.opt.Metrics.Dropped(1)
		return i + 1, nil
	}
	return len(evs), nil
}

// pop removes the n oldest events, now in the chain, and records that in
// the spill file.
func (h *Holder) pop(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.queue[:n] {
		h.bytes -= e.size
	}
	h.queue = append(h.queue[:0:0], h.queue[n:]...)
	h.done += n
	empty := len(h.queue) == 0
	if empty {
		if h.dropped > 0 {
			h.opt.Log.Warn("audit hold drained; events were dropped while it was full", "dropped", h.dropped)
		} else {
			h.opt.Log.Info("audit hold drained: every held event is in the chain")
		}
		h.dropped = 0
	}
	h.opt.Metrics.Held(len(h.queue), h.bytes)
	if h.spill == nil {
		return
	}
	var err error
	if empty {
		// Everything is in the chain: start the file over.
		if err = h.spill.Truncate(0); err == nil {
			h.done = 0
			err = os.Remove(h.opt.SpillPath + ".done")
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
	} else {
		err = atomicfile.Write(h.opt.SpillPath+".done", []byte(strconv.Itoa(h.done)+"\n"), 0o600)
	}
	if err != nil {
		// A restart would append these again: duplicates, never a loss.
		h.opt.Log.Error("audit hold: record progress in the spill file", "file", h.opt.SpillPath, "err", err)
	}
}

// Close closes the spill file. Held events stay in it for the next
// process; without one they are lost, and said so.
func (h *Holder) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if n := len(h.queue); n > 0 {
		if h.spill != nil {
			h.opt.Log.Warn("audit hold: events still held at shutdown stay in the spill file for the next start", "events", n, "file", h.opt.SpillPath)
		} else {
			h.opt.Log.Error("audit hold: events still held at shutdown are lost (no spill file)", "events", n)
		}
	}
	if h.spill != nil {
		return h.spill.Close()
	}
	return nil
}
