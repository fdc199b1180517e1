// Package auditbudget bounds the audit events that unauthenticated traffic
// can cause. Every audit event is a durable, synced write; a storm of
// rejects or refusals must not turn into a storm of fsyncs. Within a
// window, the first event of each kind per source is written and the rest
// are counted; the count reaches the chain with the next event of that
// key after the window, or as a summary when the window closes (Expire).
// Metrics count every event regardless: the budget bounds the disk, not
// what is observed.
package auditbudget

import (
	"sync"
	"time"
)

// Defaults of New.
const (
	DefaultWindow = time.Minute
	DefaultKeys   = 1024
)

// overflowKey collects every key past the table's bound within a window:
// a storm of distinct sources costs one more event, not one each.
const overflowKey = "\x00overflow"

// Budget decides which audit events to write. Safe for concurrent use.
type Budget struct {
	window time.Duration
	max    int

	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	start      time.Time
	suppressed int
	kind       string // the kind of the first event, for summaries
}

// New returns a budget of one written event per key per window (default
// DefaultWindow) with at most keys keys (default DefaultKeys) per window.
func New(window time.Duration, keys int) *Budget {
	if window <= 0 {
		window = DefaultWindow
	}
	if keys <= 0 {
		keys = DefaultKeys
	}
	return &Budget{window: window, max: keys, m: make(map[string]*entry)}
}

// Allow reports whether the event of kind from key should be written now,
// and how many events of that key were held back since the last one
// written (to be stated in it). key names the source (and what is
// refused); kind is what summaries say.
func (b *Budget) Allow(now time.Time, key, kind string) (write bool, suppressed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok && len(b.m) >= b.max {
		key, kind = overflowKey, "overflow"
		e, ok = b.m[key]
	}
	switch {
	case !ok:
		b.m[key] = &entry{start: now, kind: kind}
		return true, 0
	case now.Sub(e.start) >= b.window:
		n := e.suppressed
		e.start, e.suppressed, e.kind = now, 0, kind
		return true, n
	default:
		e.suppressed++
		return false, 0
	}
}

// Summary is the count held back for one key over a window that closed
// without another event of that key.
type Summary struct {
	Key, Kind  string
	Suppressed int
	Since      time.Time
}

// Expire drops the keys whose window closed and returns those that held
// events back, so the caller can write one summary event for each.
func (b *Budget) Expire(now time.Time) []Summary {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Summary
	for k, e := range b.m {
		if now.Sub(e.start) < b.window {
			continue
		}
		if e.suppressed > 0 {
			out = append(out, Summary{Key: k, Kind: e.kind, Suppressed: e.suppressed, Since: e.start})
		}
		delete(b.m, k)
	}
	return out
}

// IsOverflow reports whether a Summary's key is the overflow bucket.
func IsOverflow(key string) bool { return key == overflowKey }
