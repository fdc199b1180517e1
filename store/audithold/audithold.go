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
//
// The spill file is append-only until the queue empties, when it is
// truncated. Beside it, SpillPath+".done" records how many of its lines
// are in the chain and, while a batch is being appended, that batch and
// the chain's head before it. A crash between a batch's commit and that
// record leaves the record naming the batch: the next process looks for
// the batch's events in the chain after that head and skips the ones it
// finds, so the crash costs neither an event nor a duplicate.
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

// Appender is the audit chain; store.Store satisfies it. TailAudit and
// ScanAudit tell, after a crash in the middle of a batch, which of its
// events the chain already has.
type Appender interface {
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
	TailAudit(ctx context.Context, n int) ([]*store.AuditEvent, error)
	ScanAudit(ctx context.Context, from uint64, fn func(*store.AuditEvent) error) error
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
	// (JSON lines, 0600), with SpillPath+".done" recording the lines
	// already appended to the chain and the batch being appended.
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
	lines   int // lines in the spill file
	done    int // of them, the ones already in the chain
	// spillBroken: a write to the spill file failed; it is not written
	// again until the queue empties.
	spillBroken bool
	check       *progress // the previous process's batch in flight, if any
	wake        chan struct{}
	closed      bool
}

type held struct {
	ev   *store.AuditEvent
	size int64
	line int // its line in the spill file
}

// progress is the spill file's record (SpillPath+".done"): Done lines are
// in the chain; when Inflight > 0, the next Inflight held events were
// being appended after the chain's event After and may be in it.
type progress struct {
	Done     int    `json:"done"`
	Inflight int    `json:"inflight,omitempty"`
	After    uint64 `json:"after,omitempty"`
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
			if h.spill != nil {
				h.spill.Close()
			}
			return nil, err
		}
	}
	return h, nil
}

// load reads the spill file a previous process left and queues the
// events it had not appended, each with its line, then opens the file for
// appending. The file is not rewritten: a torn last line (a crash in the
// middle of a write, whose append never returned) is ended so that it
// stays one unreadable line of its own.
func (h *Holder) load() error {
	p := h.opt.SpillPath
	var pr progress
	if b, err := os.ReadFile(p + ".done"); err == nil {
		// Before the record was JSON it was the line count alone, with
		// the same meaning as Done.
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pr.Done = n
		} else if err := json.Unmarshal(b, &pr); err != nil {
			return fmt.Errorf("audithold: %s.done: not a progress record: %w", p, err)
		}
		if pr.Done < 0 || pr.Inflight < 0 {
			return fmt.Errorf("audithold: %s.done: negative count", p)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audithold: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audithold: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audithold: %w", err)
	}
	h.spill = f
	if len(b) > 0 && b[len(b)-1] != '\n' {
		if _, err := f.Write([]byte("\n")); err != nil {
			return fmt.Errorf("audithold: end the torn last line of %s: %w", p, err)
		}
		b = append(b, '\n')
	}
	h.lines = bytes.Count(b, []byte("\n"))
	if pr.Done > h.lines {
		// The file was emptied once everything was in the chain and the
		// process stopped before recording that (pop): nothing is held.
		pr = progress{}
		if err := atomicfile.Write(p+".done", pr.encode(), 0o600); err != nil {
			return fmt.Errorf("audithold: %w", err)
		}
	}
	h.done = pr.Done
	for i, line := range bytes.Split(b, []byte("\n")) {
		if i < pr.Done || len(line) == 0 {
			continue
		}
		ev := &store.AuditEvent{}
		if err := json.Unmarshal(line, ev); err != nil {
			h.opt.Log.Warn("audit hold: unreadable line in the spill file, skipped", "file", p, "line", i+1, "err", err)
			continue
		}
		h.queue = append(h.queue, held{ev: ev, size: int64(len(line)), line: i})
		h.bytes += int64(len(line))
	}
	if pr.Inflight > 0 && len(h.queue) > 0 {
		pr.Inflight = min(pr.Inflight, len(h.queue))
		h.check = &pr
	}
	if len(h.queue) > 0 {
		h.opt.Log.Warn("audit hold: events held by the previous process are appended first", "events", len(h.queue), "file", p)
		h.signal()
	}
	h.opt.Metrics.Held(len(h.queue), h.bytes)
	return nil
}

// encode is the record's file content.
func (p progress) encode() []byte {
	b, _ := json.Marshal(p) // only integers: it cannot fail
	return append(b, '\n')
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
		line := -1 // not in the file
		if h.spill != nil && !h.spillBroken {
			line = h.lines + n
		}
		h.queue = append(h.queue, held{ev: ev, size: size, line: line})
		h.bytes += size
		lines.Write(b)
		lines.WriteByte('\n')
		n++
	}
	if h.spill != nil && !h.spillBroken && lines.Len() > 0 {
		if _, err := h.spill.Write(lines.Bytes()); err != nil {
			// Maybe a part of a line was written: the file's lines no
			// longer match the queue, so nothing more goes to it. What is
			// held stays in memory; only a restart would lose it.
			h.spillBroken = true
			for i := len(h.queue) - n; i < len(h.queue); i++ {
				h.queue[i].line = -1
			}
			h.opt.Log.Error("audit hold: write spill file; holding in memory only from now on", "file", h.opt.SpillPath, "err", err)
		} else {
			h.lines += n
			if err := h.spill.Sync(); err != nil {
				h.opt.Log.Error("audit hold: sync spill file", "file", h.opt.SpillPath, "err", err)
			}
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
	if h.check != nil {
		return h.resolve(ctx)
	}
	h.mu.Lock()
	n := min(len(h.queue), batch)
	evs := make([]*store.AuditEvent, n)
	for i := range n {
		evs[i] = h.queue[i].ev
	}
	onDisk := h.spill != nil && n > 0 && h.queue[0].line >= 0
	done := h.done
	h.mu.Unlock()
	if n == 0 {
		return nil
	}
	if onDisk {
		// Name the batch and the head it goes after, for the next process
		// should this one stop between the commit and pop's record.
		after, err := h.head(ctx)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(h.opt.SpillPath+".done", progress{Done: done, Inflight: n, After: after}.encode(), 0o600); err != nil {
			return fmt.Errorf("audithold: record the batch in flight: %w", err)
		}
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

// head returns the Seq of the chain's newest event (0 for none).
func (h *Holder) head(ctx context.Context) (uint64, error) {
	actx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	tail, err := h.a.TailAudit(actx, 1)
	if err != nil {
		return 0, fmt.Errorf("audithold: read the chain's head: %w", err)
	}
	if len(tail) == 0 {
		return 0, nil
	}
	return tail[0].Seq, nil
}

// errMatched ends resolve's scan once the whole batch is found.
var errMatched = errors.New("audithold: batch found")

// resolve settles the batch the previous process had in flight: its
// events that are in the chain after the head it recorded (the same event
// to the nanosecond, in order) are popped without being appended again.
func (h *Holder) resolve(ctx context.Context) error {
	c := h.check
	h.mu.Lock()
	want := make([]*store.AuditEvent, c.Inflight)
	for i := range want {
		want[i] = h.queue[i].ev
	}
	h.mu.Unlock()
	found := 0
	// The scan reads what every node appended since the record: allow it
	// more than one append's time.
	actx, cancel := context.WithTimeout(ctx, 10*h.opt.Timeout)
	err := h.a.ScanAudit(actx, c.After+1, func(e *store.AuditEvent) error {
		if sameEvent(e, want[found]) {
			*want[found] = *e
			if found++; found == len(want) {
				return errMatched
			}
		}
		return nil
	})
	cancel()
	if err != nil && !errors.Is(err, errMatched) {
		return fmt.Errorf("audithold: look for the previous process's batch in the chain: %w", err)
	}
	if found > 0 {
		h.opt.Log.Warn("audit hold: events the previous process appended before it stopped are not appended again", "events", found, "of", len(want))
		h.pop(found)
	}
	h.check = nil
	return nil
}

// sameEvent: what a held event and its appended copy share (the chain
// adds V, Seq and the hashes; Time keeps its instant).
func sameEvent(in, held *store.AuditEvent) bool {
	return in.Time.Equal(held.Time) && in.Actor == held.Actor && in.Action == held.Action &&
		in.Subject == held.Subject && in.Result == held.Result && in.Reason == held.Reason && in.Source == held.Source
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
		if e.line >= 0 {
			h.done = e.line + 1
		}
	}
	h.queue = append(h.queue[:0:0], h.queue[n:]...)
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
		// Everything is in the chain: start the file over. A stop between
		// the two leaves a record past the file's end, which load reads
		// as "nothing held".
		if err = h.spill.Truncate(0); err == nil {
			h.lines, h.done, h.spillBroken = 0, 0, false
			err = atomicfile.Write(h.opt.SpillPath+".done", progress{}.encode(), 0o600)
		}
	} else {
		err = atomicfile.Write(h.opt.SpillPath+".done", progress{Done: h.done}.encode(), 0o600)
	}
	if err != nil {
		// The record still names the batch in flight (or an older one):
		// the next process looks for it in the chain before appending.
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
