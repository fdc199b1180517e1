package acme

import (
	"container/list"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// nonces is the Replay-Nonce table (RFC 8555 §6.5): every nonce is
// single-use and expires after ttl; the table holds at most max nonces and
// drops the oldest when full, so a newNonce flood costs only clients whose
// nonce was dropped a badNonce retry. Nonces are issued in time order with
// one TTL, so the list front is always the next to expire.
type nonces struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	order *list.List // of *nonceEntry, oldest first
	byVal map[string]*list.Element
}

type nonceEntry struct {
	value   string
	expires time.Time
}

func newNonces(ttl time.Duration, max int, now func() time.Time) *nonces {
	return &nonces{ttl: ttl, max: max, now: now, order: list.New(), byVal: make(map[string]*list.Element)}
}

// issue returns a fresh nonce: 128 random bits, base64url without padding.
func (n *nonces) issue() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	v := base64.RawURLEncoding.EncodeToString(b[:])
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sweepLocked(now)
	for n.order.Len() >= n.max {
		n.removeLocked(n.order.Front())
	}
	n.byVal[v] = n.order.PushBack(&nonceEntry{value: v, expires: now.Add(n.ttl)})
	return v
}

// consume reports whether v was issued, is unexpired and unused, and
// removes it: a second consume of the same value is false (replay).
func (n *nonces) consume(v string) bool {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	el, ok := n.byVal[v]
	if !ok {
		return false
	}
	n.removeLocked(el)
	return now.Before(el.Value.(*nonceEntry).expires)
}

func (n *nonces) sweepLocked(now time.Time) {
	for el := n.order.Front(); el != nil && !now.Before(el.Value.(*nonceEntry).expires); el = n.order.Front() {
		n.removeLocked(el)
	}
}

func (n *nonces) removeLocked(el *list.Element) {
	n.order.Remove(el)
	delete(n.byVal, el.Value.(*nonceEntry).value)
}

func (n *nonces) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.order.Len()
}
