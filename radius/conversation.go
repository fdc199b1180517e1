package radius

import (
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
}

// close releases the eaptls session, its handshake coroutine and timer.
func (c *conversation) close() {
	c.sess.Close()
}

// convTable maps State values to conversations, with global and per-NAS
// caps and idle expiry.
type convTable struct {
	mu        sync.Mutex
	byState   map[[stateLen]byte]*conversation
	perNAS    map[string]int
	max       int
	maxPerNAS int
	idle      time.Duration
}

func newConvTable(max, maxPerNAS int, idle time.Duration) *convTable {
	return &convTable{
		byState:   make(map[[stateLen]byte]*conversation),
		perNAS:    make(map[string]int),
		max:       max,
		maxPerNAS: maxPerNAS,
		idle:      idle,
	}
}

func newState() (s [stateLen]byte) {
	// crypto/rand.Read never fails (Go 1.24+): it crashes the program instead.
	_, _ = rand.Read(s[:])
	return s
}

// create reserves a slot and inserts a busy conversation. The caller fills
// sess before releasing it.
func (t *convTable) create(now time.Time, n *nas) (*conversation, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byState) >= t.max || t.perNAS[n.Name] >= t.maxPerNAS {
		return nil, len(t.byState), ErrOverCapacity
	}
	c := &conversation{nas: n, started: now, lastSeen: now, busy: 1}
	for {
		c.state = newState()
		if _, taken := t.byState[c.state]; !taken {
			break
		}
	}
	t.byState[c.state] = c
	t.perNAS[n.Name]++
	return c, len(t.byState), nil
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
	if !ok || c.nas != n || c.done || now.Sub(c.lastSeen) > t.idle {
		return nil
	}
	c.busy++
	c.lastSeen = now
	return c
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
}

// expire removes idle conversations that no worker is using and returns
// them for closing outside the lock.
func (t *convTable) expire(now time.Time) ([]*conversation, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*conversation
	for _, c := range t.byState {
		if c.busy == 0 && now.Sub(c.lastSeen) > t.idle {
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
