package radius

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"hardbound/eaptls"
	"hardbound/posture"
)

// stateLen is the size of the random State (24) value; RFC 3579 asks for an
// unpredictable value, we use 16 random bytes, fresh each round.
const stateLen = 16

// ErrOverCapacity is returned when the conversation caps are reached.
var ErrOverCapacity = errors.New("radius: too many EAP conversations")

// eapSession is what a conversation needs from an eaptls.Session; an
// interface so unit tests can script outcomes without a TLS handshake.
// Step runs authorize (the Decider) when eap completes the peer's
// certificate flight and returns its verdict with the outcome.
type eapSession interface {
	Step(ctx context.Context, eap []byte, authorize eaptls.Authorizer[posture.Verdict]) (eaptls.Result[posture.Verdict], error)
	Keys() (msk, emsk []byte)
	Identity() string
	// ConnectionState is the TLS state: the peer's certificates once its
	// chain verified (the Accept re-decides on them).
	ConnectionState() tls.ConnectionState
	Close()
}

// conversation is one EAP authentication, from the first Access-Request to
// the Access-Accept/Reject, spanning many State rounds.
type conversation struct {
	step    sync.Mutex // serializes Session.Step (not safe for concurrent use)
	nas     *nas
	sess    eapSession
	started time.Time
	// ended is set when the conversation finished; a worker that waited on
	// step for a concurrent packet of the same conversation checks it.
	ended atomic.Bool
	// station is the Calling-Station-Id of the first packet.
	station string

	// Set under step: when the handshake's decision ran and the standing
	// generation it saw (audited with the outcome).
	decidedAt  time.Time
	decidedGen uint64

	// Guarded by convTable.mu.
	state    [stateLen]byte
	lastSeen time.Time
	busy     int
	done     bool
	cost     int64         // estimated bytes (earlyCost or tlsCost)
	earlyAll *list.Element // in convTable.early while early, else nil
	earlyOwn *list.Element // in convTable.earlyNAS[nas]
}

// close releases the eaptls session, its handshake coroutine and timer.
func (c *conversation) close() {
	c.sess.Close()
}

// Conversation memory, estimated per stage: a conversation that never got
// past Identity/EAP-TLS-Start holds an eaptls.Session without a TLS
// coroutine (about 8 KiB of RSS each in
// TestIntegrationIdentityFloodDoesNotLockOutTheNAS); one that sent a ClientHello holds a handshake
// (35-40 KiB measured) and may buffer a reassembled message of up to 64 KiB.
const (
	earlyCost = 8 << 10
	tlsCost   = 104 << 10
)

// evictScan bounds the early conversations examined to find one to evict
// (busy ones are skipped).
const evictScan = 64

// stationKey names a supplicant behind a NAS.
type stationKey struct{ nas, station string }

// convTable maps State values to conversations, with global, per-NAS and
// memory caps and idle expiry.
//
// A NAS entry is often a whole wireless controller, so its cap must not be
// a lever to lock out its users: a new conversation replaces the live one
// of the same Calling-Station-Id on the same NAS (the supplicant started
// over), and at a cap the oldest conversations that never got past
// Identity/Start are evicted for the new one rather than the new one
// refused; such early conversations also expire sooner (earlyIdle). Only
// conversations that are doing TLS are never evicted, and only they can
// make a cap refuse.
type convTable struct {
	mu        sync.Mutex
	byState   map[[stateLen]byte]*conversation
	perNAS    map[string]int
	byStation map[stationKey]*conversation
	early     *list.List            // every early conversation, oldest first
	earlyNAS  map[string]*list.List // the same, per NAS
	max       int
	maxPerNAS int
	maxBytes  int64
	bytes     int64
	idle      time.Duration
	earlyIdle time.Duration
}

func newConvTable(max, maxPerNAS int, maxBytes int64, idle, earlyIdle time.Duration) *convTable {
	return &convTable{
		byState:   make(map[[stateLen]byte]*conversation),
		perNAS:    make(map[string]int),
		byStation: make(map[stationKey]*conversation),
		early:     list.New(),
		earlyNAS:  make(map[string]*list.List),
		max:       max,
		maxPerNAS: maxPerNAS,
		maxBytes:  maxBytes,
		idle:      idle,
		earlyIdle: min(earlyIdle, idle),
	}
}

func newState() (s [stateLen]byte) {
	// crypto/rand.Read never fails (Go 1.24+): it crashes the program instead.
	_, _ = rand.Read(s[:])
	return s
}

// displaced is what create or advance took out of the table to make room;
// the caller closes them outside the lock and counts them.
type displaced struct {
	replaced []*conversation // same station on the same NAS
	evicted  []*conversation // early conversations evicted at a cap
}

// create reserves a slot and inserts a busy conversation for the
// supplicant station (Calling-Station-Id, may be empty) behind NAS n. The
// caller fills sess before releasing it.
func (t *convTable) create(now time.Time, n *nas, station string) (*conversation, int, displaced, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d displaced
	key := stationKey{n.Name, station}
	if station != "" {
		if old, ok := t.byStation[key]; ok {
			t.removeLocked(old)
			if old.busy == 0 {
				d.replaced = append(d.replaced, old)
			}
			// else its worker finds it ended and closes it (access).
		}
	}
	for t.perNAS[n.Name] >= t.maxPerNAS {
		v := t.victimLocked(t.earlyNAS[n.Name])
		if v == nil {
			return nil, len(t.byState), d, ErrOverCapacity
		}
		t.removeLocked(v)
		d.evicted = append(d.evicted, v)
	}
	for len(t.byState) >= t.max || t.bytes+earlyCost > t.maxBytes {
		v := t.victimLocked(t.early)
		if v == nil {
			return nil, len(t.byState), d, ErrOverCapacity
		}
		t.removeLocked(v)
		d.evicted = append(d.evicted, v)
	}
	c := &conversation{nas: n, started: now, lastSeen: now, busy: 1, station: station, cost: earlyCost}
	for {
		c.state = newState()
		if _, taken := t.byState[c.state]; !taken {
			break
		}
	}
	t.byState[c.state] = c
	t.perNAS[n.Name]++
	t.bytes += c.cost
	if station != "" {
		t.byStation[key] = c
	}
	c.earlyAll = t.early.PushBack(c)
	l := t.earlyNAS[n.Name]
	if l == nil {
		l = list.New()
		t.earlyNAS[n.Name] = l
	}
	c.earlyOwn = l.PushBack(c)
	return c, len(t.byState), d, nil
}

// victimLocked is the oldest idle early conversation of l, nil if none of
// the first evictScan is idle.
func (t *convTable) victimLocked(l *list.List) *conversation {
	if l == nil {
		return nil
	}
	i := 0
	for e := l.Front(); e != nil && i < evictScan; e, i = e.Next(), i+1 {
		if c := e.Value.(*conversation); c.busy == 0 {
			return c
		}
	}
	return nil
}

// advance marks c as doing TLS (the peer sent TLS data): it is no longer
// evictable and costs a handshake's memory, for which early conversations
// are evicted if needed. false: over the memory bound even so; the caller
// ends c.
func (t *convTable) advance(c *conversation) (bool, displaced) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d displaced
	if c.done || c.earlyAll == nil {
		return !c.done, d
	}
	t.unlinkEarlyLocked(c)
	t.bytes += tlsCost - c.cost
	c.cost = tlsCost
	for t.bytes > t.maxBytes {
		v := t.victimLocked(t.early)
		if v == nil {
			return false, d
		}
		t.removeLocked(v)
		d.evicted = append(d.evicted, v)
	}
	return true, d
}

func (t *convTable) unlinkEarlyLocked(c *conversation) {
	if c.earlyAll == nil {
		return
	}
	t.early.Remove(c.earlyAll)
	if l := t.earlyNAS[c.nas.Name]; l != nil {
		l.Remove(c.earlyOwn)
		if l.Len() == 0 {
			delete(t.earlyNAS, c.nas.Name)
		}
	}
	c.earlyAll, c.earlyOwn = nil, nil
}

// acquire finds the conversation for a State sent by NAS n and marks it
// busy so the janitor leaves it alone. nil for unknown, foreign or finished.
func (t *convTable) acquire(now time.Time, n *nas, state []byte) *conversation {
	if len(state) != stateLen {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.byState[[stateLen]byte(state)]
	if !ok || c.nas != n || c.done || now.Sub(c.lastSeen) > t.idleOf(c) {
		return nil
	}
	c.busy++
	c.lastSeen = now
	return c
}

func (t *convTable) idleOf(c *conversation) time.Duration {
	if c.earlyAll != nil {
		return t.earlyIdle
	}
	return t.idle
}

// rotate gives c a fresh State for the next round and returns it; false if
// c finished meanwhile.
func (t *convTable) rotate(c *conversation) ([stateLen]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.done {
		return c.state, false
	}
	delete(t.byState, c.state)
	for {
		c.state = newState()
		if _, taken := t.byState[c.state]; !taken {
			break
		}
	}
	t.byState[c.state] = c
	return c.state, true
}

// release ends a busy period.
func (t *convTable) release(now time.Time, c *conversation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.busy--
	c.lastSeen = now
}

// finish removes c; the caller closes it. Reports the remaining count.
func (t *convTable) finish(c *conversation) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(c)
	return len(t.byState)
}

func (t *convTable) removeLocked(c *conversation) {
	if c.done {
		return
	}
	c.done = true
	c.ended.Store(true)
	delete(t.byState, c.state)
	if t.perNAS[c.nas.Name]--; t.perNAS[c.nas.Name] <= 0 {
		delete(t.perNAS, c.nas.Name)
	}
	if c.station != "" {
		key := stationKey{c.nas.Name, c.station}
		if t.byStation[key] == c {
			delete(t.byStation, key)
		}
	}
	t.unlinkEarlyLocked(c)
	t.bytes -= c.cost
}

// expire removes idle conversations that no worker is using and returns
// them for closing outside the lock.
func (t *convTable) expire(now time.Time) ([]*conversation, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*conversation
	for _, c := range t.byState {
		if c.busy == 0 && now.Sub(c.lastSeen) > t.idleOf(c) {
			out = append(out, c)
		}
	}
	for _, c := range out {
		t.removeLocked(c)
	}
	return out, len(t.byState)
}

// drain removes every conversation (shutdown).
func (t *convTable) drain() []*conversation {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*conversation, 0, len(t.byState))
	for _, c := range t.byState {
		out = append(out, c)
	}
	for _, c := range out {
		t.removeLocked(c)
	}
	return out
}

func (t *convTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byState)
}

// usage is the estimated memory of the live conversations.
func (t *convTable) usage() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bytes
}
