package posture

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Availability is whether the store reaches its database: since when it
// has not (down), or that it does. store/postgres's Store implements it;
// an embedded store (Badger) never goes away and needs none.
type Availability interface {
	Unavailable() (since time.Time, down bool)
}

// OutagePolicy is what Decide does once the store has been unavailable for
// longer than the grace period.
type OutagePolicy string

const (
	// OutageReject refuses every authentication with
	// ReasonStoreUnavailable: fail closed, the default.
	OutageReject OutagePolicy = "reject"
	// OutageAcceptCached keeps answering from the caches as during the
	// grace: fail open for the devices whose standing is cached.
	OutageAcceptCached OutagePolicy = "accept_cached"
)

// DefaultOutageGrace is how long Decide answers from its caches while the
// store is unavailable, by default: long enough to ride out a PostgreSQL
// failover managed by Patroni (a leader key TTL of 30 s plus a loop of
// 10 s, then the clients' reconnect), short enough that a database lost
// for good is noticed by the devices within a minute (docs/ha.md).
const DefaultOutageGrace = 60 * time.Second

// ErrUnknownOutagePolicy is wrapped by ParseOutagePolicy's errors.
var ErrUnknownOutagePolicy = errors.New("posture: unknown store.unavailable policy")

// ParseOutagePolicy returns the policy s names; empty is OutageReject.
func ParseOutagePolicy(s string) (OutagePolicy, error) {
	switch p := OutagePolicy(s); p {
	case "":
		return OutageReject, nil
	case OutageReject, OutageAcceptCached:
		return p, nil
	}
	return "", fmt.Errorf("%w %q: must be %s or %s", ErrUnknownOutagePolicy, s, OutageReject, OutageAcceptCached)
}

// OutageResult labels an answer given while the store was unavailable
// (the metric hardbound_store_unavailable_answers_total).
type OutageResult string

const (
	// OutageCached: within the grace, answered from the caches (an
	// accept or a reject, whatever the cached standing says).
	OutageCached OutageResult = "cached"
	// OutageCachedAfterGrace: past the grace under accept_cached.
	OutageCachedAfterGrace OutageResult = "cached_after_grace"
	// OutageRejected: past the grace under reject (store_unavailable).
	OutageRejected OutageResult = "rejected"
	// OutageMiss: what the decision needed was not cached and the store
	// could not be read (store_unavailable).
	OutageMiss OutageResult = "miss"
)

// OutageResults lists every OutageResult, for pre-registering labels.
var OutageResults = []OutageResult{OutageCached, OutageCachedAfterGrace, OutageRejected, OutageMiss}

// WithOutage makes Decide follow a's view of the store: while the store is
// unavailable, decisions come from the caches for grace (counted, and
// marked Verdict.StoreUnavailable), then policy applies. Without it (or
// with a nil a), the caches answer whatever the store's state and a
// failed read is a reject like any other store error.
func WithOutage(a Availability, grace time.Duration, policy OutagePolicy) Option {
	return func(s *Service) {
		s.avail, s.grace, s.outagePolicy = a, grace, policy
	}
}

// outageState is what the store's availability means for one decision.
type outageState uint8

const (
	outageNone    outageState = iota // the store answers
	outageGrace                      // away, within the grace: caches
	outageCached                     // away, past the grace, accept_cached: caches
	outageRejects                    // away, past the grace, reject
)

// outageLog remembers which outage the posture log lines were written for,
// so that each is written once per outage, not per decision.
type outageLog struct {
	entered  atomic.Int64 // since (unix ns) of the outage whose start was logged; 0: none open
	graceEnd atomic.Int64 // since of the outage whose grace end was logged
	answers  atomic.Int64 // answers given during the open outage
}

// outage reports the state at now, and writes the outage's log lines.
func (s *Service) outage(now time.Time) outageState {
	if s.avail == nil {
		return outageNone
	}
	since, down := s.avail.Unavailable()
	if !down {
		if s.olog.entered.Load() != 0 && s.olog.entered.Swap(0) != 0 {
			s.log.Info("store available again: decisions read the store", "answered_while_unavailable", s.olog.answers.Swap(0))
		}
		return outageNone
	}
	sn := since.UnixNano()
	if old := s.olog.entered.Load(); old != sn && s.olog.entered.CompareAndSwap(old, sn) {
		s.log.Warn("store unavailable: answering authentications from the caches", "since", since.UTC(),
			"grace", s.grace, "then", s.outagePolicy)
	}
	if now.Sub(since) < s.grace {
		return outageGrace
	}
	if old := s.olog.graceEnd.Load(); old != sn && s.olog.graceEnd.CompareAndSwap(old, sn) {
		if s.outagePolicy == OutageAcceptCached {
			s.log.Warn("store unavailable past the grace: still answering from the caches (store.unavailable.policy accept_cached)",
				"since", since.UTC(), "grace", s.grace)
		} else {
			s.log.Warn("store unavailable past the grace: rejecting every authentication with store_unavailable (store.unavailable.policy reject)",
				"since", since.UTC(), "grace", s.grace)
		}
	}
	if s.outagePolicy == OutageAcceptCached {
		return outageCached
	}
	return outageRejects
}

// CachesAnswer reports whether, at now, something read from the store
// before may stand in for a read that fails because the store is away:
// within the grace, or past it under accept_cached. Components that keep
// their own copies of what they read (RadSec's NAS identities) follow
// Decide's rule through it.
func (s *Service) CachesAnswer(now time.Time) bool {
	switch s.outage(now) {
	case outageGrace, outageCached:
		return true
	}
	return false
}

// outageAnswer marks and counts a final answer given in state st.
func (s *Service) outageAnswer(v *Verdict, st outageState) {
	var r OutageResult
	switch {
	case v.Reason == ReasonStoreUnavailable && st == outageRejects:
		r = OutageRejected
	case v.Reason == ReasonStoreUnavailable:
		r = OutageMiss
	case st == outageGrace:
		r = OutageCached
	case st == outageCached:
		r = OutageCachedAfterGrace
	default:
		return
	}
	v.StoreUnavailable = true
	s.olog.answers.Add(1)
	s.metrics.UnavailableAnswer(r)
}
