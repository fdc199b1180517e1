package ocsp

import (
	"crypto"
	"sync"
	"time"
)

// entry is a decided answer and, for requests without a nonce, its signed
// DER (hash is the CertID hash algorithm the DER answers).
type entry struct {
	answer  Answer
	der     []byte
	hash    crypto.Hash
	expires time.Time
	device  string
}

// answerCache holds decided, signed answers by serial, indexed by device
// so a change of standing drops every answer of that device. Any
// invalidation bumps gen, and a fill decided before it is dropped: the
// decision may have read the record the change replaced.
type answerCache struct {
	mu       sync.Mutex
	max      int
	gen      uint64
	bySerial map[string]entry
	byDevice map[string]map[string]struct{}
}

func (c *answerCache) init(max int) {
	c.max = max
	c.bySerial = map[string]entry{}
	c.byDevice = map[string]map[string]struct{}{}
}

func (c *answerCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *answerCache) get(serial string, now time.Time) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.bySerial[serial]
	if !ok || !now.Before(e.expires) {
		return entry{}, false
	}
	return e, true
}

func (c *answerCache) put(serial, device string, e entry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.bySerial[serial]; !ok && len(c.bySerial) >= c.max {
		// Full: drop an arbitrary entry (map order), bounded work.
		for s := range c.bySerial {
			c.delSerialLocked(s)
			break
		}
	}
	if old, ok := c.bySerial[serial]; ok && old.device != device {
		c.delSerialLocked(serial)
	}
	e.device = device
	c.bySerial[serial] = e
	if device != "" {
		set := c.byDevice[device]
		if set == nil {
			set = map[string]struct{}{}
			c.byDevice[device] = set
		}
		set[serial] = struct{}{}
	}
}

func (c *answerCache) delSerial(serial string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.delSerialLocked(serial)
}

func (c *answerCache) delSerialLocked(serial string) {
	e, ok := c.bySerial[serial]
	if !ok {
		return
	}
	delete(c.bySerial, serial)
	if set := c.byDevice[e.device]; set != nil {
		delete(set, serial)
		if len(set) == 0 {
			delete(c.byDevice, e.device)
		}
	}
}

func (c *answerCache) delDevice(device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for s := range c.byDevice[device] {
		delete(c.bySerial, s)
	}
	delete(c.byDevice, device)
}

func (c *answerCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.bySerial)
	clear(c.byDevice)
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bySerial)
}
