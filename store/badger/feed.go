package badger

import (
	"maps"
	"slices"
	"sync"

	"hardbound/store"
)

// feed delivers committed changes to watchers (store.Watcher).
//
// Badger commits concurrent transactions in any order, so a write that
// announces changes holds mu from before its transaction until its changes
// are delivered: delivery then follows commit order, Seq with it, and a
// write's changes reach every watcher before the write returns. Audit
// appends and the other writes do not take mu.
//
// Lock order: mu, then auditMu, then closeMu.
type feed struct {
	mu       sync.Mutex
	seq      uint64
	watchers []*watcher
}

type watcher struct{ fn func(store.Change) }

// Watch implements store.Watcher.
func (s *Store) Watch(fn func(store.Change)) (stop func()) {
	w := &watcher{fn: fn}
	f := &s.feed
	f.mu.Lock()
	f.watchers = append(f.watchers, w)
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			// Taking mu waits for a delivery in progress, so fn is not
			// running, and will not run, once stop returns.
			f.mu.Lock()
			f.watchers = slices.DeleteFunc(f.watchers, func(x *watcher) bool { return x == w })
			f.mu.Unlock()
		})
	}
}

// announcing runs write, a write whose committed changes it returns, and
// delivers those changes. Nothing is delivered when write fails: a failed
// transaction changed nothing.
func (s *Store) announcing(write func() ([]store.Change, error)) error {
	f := &s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	changes, err := write()
	if err != nil {
		return err
	}
	for i := range changes {
		f.seq++
		changes[i].Seq = f.seq
		for _, w := range f.watchers {
			w.fn(changes[i])
		}
	}
	return nil
}

// actorOf is the actor a Change reports for a write carrying ev.
func actorOf(ev *store.AuditEvent) string {
	if ev == nil {
		return ""
	}
	return ev.Actor
}

// The records of a Change are copies: the caller of the write owns what
// the write returned, and may change it once the write returns.

func deviceCopy(d *store.Device) *store.Device {
	c := cloneDevice(d)
	return &c
}

// bindingCopy is c without its DER.
func bindingCopy(c *store.Cert) *store.Cert {
	b := *c
	b.DER = nil
	if c.Revoked != nil {
		r := *c.Revoked
		b.Revoked = &r
	}
	return &b
}

func attestationCopy(a *store.Attestation) *store.Attestation {
	c := *a
	c.Facts = maps.Clone(a.Facts)
	return &c
}
