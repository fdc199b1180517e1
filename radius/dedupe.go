package radius

import (
	"net/netip"
	"sync"
	"time"
)

// dupKey is the RFC 5080 §2.2.2 duplicate key minus the authenticator:
// receiving socket, source address and port, Identifier. The authenticator
// is kept in the entry so that a reused Identifier with a new authenticator
// replaces the entry instead of hitting it.
type dupKey struct {
	port byte // portAuth or portAcct
	from netip.AddrPort
	id   byte
}

type dupEntry struct {
	key     dupKey
	auth    [16]byte
	resp    []byte // nil while the request is being processed
	expires time.Time
}

// dupCache caches encoded responses so a retransmission gets the
// byte-identical answer without reprocessing (re-feeding an EAP-Response
// would advance the TLS state twice). Bounded: entries expire after ttl and
// the oldest go first when full. Entries are in insertion order, and all
// share one ttl, so the queue is also expiry order; the queue (which also
// holds replaced entries) is what is bounded, so the map is too.
type dupCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	m     map[dupKey]*dupEntry
	queue []*dupEntry // insertion order; head at qHead
	qHead int
}

func newDupCache(ttl time.Duration, max int) *dupCache {
	return &dupCache{ttl: ttl, max: max, m: make(map[dupKey]*dupEntry)}
}

type dupResult int

const (
	dupNew        dupResult = iota // process it; call finish or abort afterwards
	dupInProgress                  // the original is still being processed: drop
	dupCached                      // resend the returned bytes
)

// begin registers a request. For dupCached it returns the cached response.
func (c *dupCache) begin(now time.Time, k dupKey, auth []byte) (dupResult, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked(now)
	if e, ok := c.m[k]; ok && string(e.auth[:]) == string(auth) {
		if e.resp == nil {
			return dupInProgress, nil
		}
		return dupCached, e.resp
	}
	// New request, or same key with a new authenticator (purges the old).
	e := &dupEntry{key: k, expires: now.Add(c.ttl)}
	copy(e.auth[:], auth)
	c.m[k] = e
	c.queue = append(c.queue, e)
	return dupNew, nil
}

// finish stores the response for a request registered with begin.
func (c *dupCache) finish(k dupKey, auth []byte, resp []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && string(e.auth[:]) == string(auth) {
		e.resp = resp
	}
}

// abort forgets a request that produced no response (dropped, or a store
// write failed), so the NAS's retransmission is processed afresh.
func (c *dupCache) abort(k dupKey, auth []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && string(e.auth[:]) == string(auth) && e.resp == nil {
		delete(c.m, k)
	}
}

func (c *dupCache) evictLocked(now time.Time) {
	for c.qHead < len(c.queue) {
		e := c.queue[c.qHead]
		if len(c.queue)-c.qHead < c.max && now.Before(e.expires) {
			break
		}
		c.queue[c.qHead] = nil
		c.qHead++
		if cur, ok := c.m[e.key]; ok && cur == e {
			delete(c.m, e.key)
		}
	}
	// Compact once the dead head dominates, keeping memory bounded.
	if c.qHead > 1024 && c.qHead*2 > len(c.queue) {
		n := copy(c.queue, c.queue[c.qHead:])
		clear(c.queue[n:])
		c.queue = c.queue[:n]
		c.qHead = 0
	}
}

// expire drops the entries past their ttl.
func (c *dupCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked(now)
}

func (c *dupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
