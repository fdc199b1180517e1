package posture

import (
	"sync"
	"time"

	"hardbound/store"
)

// changeClock remembers when each device's standing last changed, for
// callers that must not trust anything granted before (radius, to force a
// full EAP-TLS handshake after a change: docs/radius.md). It is bounded:
// when full it forgets every device and raises its floor to that moment,
// so a question about a time before the floor is answered "changed",
// never wrongly "unchanged".
type changeClock struct {
	mu    sync.Mutex
	max   int
	floor time.Time
	at    map[string]time.Time
}

// maxChangedDevices bounds the change clock (about 100 bytes a device):
// more devices changing between two resets make it forget and raise its
// floor, which forces full handshakes (under full_after_change), never a
// wrong "unchanged".
const maxChangedDevices = 1 << 16

func newChangeClock(max int, start time.Time) *changeClock {
	// Nothing is known before the Service followed the store.
	return &changeClock{max: max, floor: start, at: map[string]time.Time{}}
}

func (c *changeClock) mark(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" {
		// A reset: everything may have changed.
		clear(c.at)
		c.floor = at
		return
	}
	if len(c.at) >= c.max {
		clear(c.at)
		c.floor = at
	}
	c.at[id] = at
}

func (c *changeClock) since(id string, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.floor) {
		return true
	}
	at, ok := c.at[id]
	return ok && !at.Before(t)
}

// StandingChangedSince reports whether the standing of device id may have
// changed at or after t: its status, its compliance state, a revocation of
// it or one of its certificates, or a rewritten attestation, by any writer
// of the store. It errs towards true: for any t before the Service
// started following the store, or before its memory of changes was last
// reset (a store reset, or more than its cache size of changed devices).
// A refreshed posture report with the same state is not a change.
func (s *Service) StandingChangedSince(id string, t time.Time) bool {
	return s.changes.since(id, t)
}

// markChange records c in the change clock when it changes a standing.
func (s *Service) markChange(c store.Change) {
	now := s.now()
	switch c.Kind {
	case store.ChangeReset:
		s.changes.mark("", now)
		return
	case store.ChangeCertRevoked, store.ChangeDeviceRevoked, store.ChangeAttestation:
		s.changes.mark(c.DeviceID, now)
		return
	}
	if c.Prev == nil || c.Device == nil {
		return // created or issued: nothing granted before names it
	}
	if c.Prev.Status != c.Device.Status || c.Prev.Posture.State != c.Device.Posture.State {
		s.changes.mark(c.DeviceID, now)
	}
}
