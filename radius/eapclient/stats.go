package eapclient

import (
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Stats aggregates conversation outcomes for a load run. Safe for
// concurrent use; Merge combines per-worker Stats without contention.
type Stats struct {
	mu sync.Mutex
	s  Summary
	// lat holds every conversation's duration (8 bytes each: 1 million
	// authentications cost 8 MB), so percentiles are exact.
	lat []time.Duration
	// rejectReasons counts Access-Rejects by Reply-Message (bounded).
	rejectReasons map[string]int
}

// maxReasons bounds the distinct Reply-Message values kept; the rest
// count as "other" so a server echoing unique text cannot grow memory.
const maxReasons = 32

// Summary is the report of a run. Durations are in the units noted by
// their JSON names.
type Summary struct {
	Auths         int            `json:"auths"`
	Accepts       int            `json:"accepts"`
	Rejects       int            `json:"rejects"`
	Timeouts      int            `json:"timeouts"`
	Errors        int            `json:"errors"`
	KeyMismatches int            `json:"key_mismatches"`
	RoundTrips    int            `json:"round_trips"`
	Retransmits   int            `json:"retransmits"`
	Discarded     int            `json:"discarded_replies"`
	RejectReasons map[string]int `json:"reject_reasons,omitempty"`
	// Resumed counts the accepts whose TLS handshake resumed a session,
	// ResumedRoundTrips their round trips (the rest of RoundTrips are the
	// full handshakes' and the rejects').
	Resumed           int `json:"resumed"`
	ResumedRoundTrips int `json:"resumed_round_trips"`
	// Derived by Summarize.
	Elapsed        time.Duration `json:"elapsed_ns"`
	AuthsPerSecond float64       `json:"auths_per_second"`
	RoundTripsPer  float64       `json:"round_trips_per_auth"`
	// ResumedShare is Resumed / Auths; RoundTripsResumed and
	// RoundTripsFull split RoundTripsPer between resumed authentications
	// and the others.
	ResumedShare      float64       `json:"resumed_share"`
	RoundTripsResumed float64       `json:"round_trips_per_resumed"`
	RoundTripsFull    float64       `json:"round_trips_per_full"`
	P50               time.Duration `json:"p50_ns"`
	P95               time.Duration `json:"p95_ns"`
	P99               time.Duration `json:"p99_ns"`
	Max               time.Duration `json:"max_ns"`
}

// Add records one conversation. A timeout is counted apart from other
// errors; an Accept whose MPPE keys are absent or differ from the peer's
// MSK counts as a key mismatch (and still as an accept).
func (s *Stats) Add(r Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Auths++
	s.s.RoundTrips += r.RoundTrips
	s.s.Retransmits += r.Retransmits
	s.s.Discarded += r.Discarded
	s.lat = append(s.lat, r.Duration)
	switch {
	case errors.Is(err, ErrTimeout):
		s.s.Timeouts++
	case err != nil:
		s.s.Errors++
	case r.Accepted:
		s.s.Accepts++
		if !r.KeysMatch {
			s.s.KeyMismatches++
		}
		if r.Resumed {
			s.s.Resumed++
			s.s.ResumedRoundTrips += r.RoundTrips
		}
	default:
		s.s.Rejects++
		if s.rejectReasons == nil {
			s.rejectReasons = map[string]int{}
		}
		reason := r.ReplyMessage
		if reason == "" {
			reason = "(no Reply-Message)"
		}
		if _, ok := s.rejectReasons[reason]; !ok && len(s.rejectReasons) >= maxReasons {
			reason = "other"
		}
		s.rejectReasons[reason]++
	}
}

// Merge adds o's counts and latencies into s.
func (s *Stats) Merge(o *Stats) {
	o.mu.Lock()
	os, olat := o.s, slices.Clone(o.lat)
	reasons := make(map[string]int, len(o.rejectReasons))
	for k, v := range o.rejectReasons {
		reasons[k] = v
	}
	o.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Auths += os.Auths
	s.s.Accepts += os.Accepts
	s.s.Rejects += os.Rejects
	s.s.Timeouts += os.Timeouts
	s.s.Errors += os.Errors
	s.s.KeyMismatches += os.KeyMismatches
	s.s.RoundTrips += os.RoundTrips
	s.s.Retransmits += os.Retransmits
	s.s.Discarded += os.Discarded
	s.s.Resumed += os.Resumed
	s.s.ResumedRoundTrips += os.ResumedRoundTrips
	s.lat = append(s.lat, olat...)
	for k, v := range reasons {
		if s.rejectReasons == nil {
			s.rejectReasons = map[string]int{}
		}
		if _, ok := s.rejectReasons[k]; !ok && len(s.rejectReasons) >= maxReasons {
			k = "other"
		}
		s.rejectReasons[k] += v
	}
}

// Counts returns the counts so far, cheaply, for a progress line; failures
// are timeouts, errors and key mismatches (the latter also count as
// accepts).
func (s *Stats) Counts() (auths, accepts, rejects, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s.Auths, s.s.Accepts, s.s.Rejects, s.s.Timeouts + s.s.Errors + s.s.KeyMismatches
}

// Summarize computes rates and latency percentiles over elapsed.
func (s *Stats) Summarize(elapsed time.Duration) Summary {
	s.mu.Lock()
	out := s.s
	lat := slices.Clone(s.lat)
	if len(s.rejectReasons) > 0 {
		out.RejectReasons = make(map[string]int, len(s.rejectReasons))
		for k, v := range s.rejectReasons {
			out.RejectReasons[k] = v
		}
	}
	s.mu.Unlock()
	slices.Sort(lat)
	out.Elapsed = elapsed
	if elapsed > 0 {
		out.AuthsPerSecond = float64(out.Auths) / elapsed.Seconds()
	}
	if out.Auths > 0 {
		out.RoundTripsPer = float64(out.RoundTrips) / float64(out.Auths)
		out.ResumedShare = float64(out.Resumed) / float64(out.Auths)
	}
	if out.Resumed > 0 {
		out.RoundTripsResumed = float64(out.ResumedRoundTrips) / float64(out.Resumed)
	}
	if full := out.Auths - out.Resumed; full > 0 {
		out.RoundTripsFull = float64(out.RoundTrips-out.ResumedRoundTrips) / float64(full)
	}
	out.P50 = Percentile(lat, 50)
	out.P95 = Percentile(lat, 95)
	out.P99 = Percentile(lat, 99)
	if len(lat) > 0 {
		out.Max = lat[len(lat)-1]
	}
	return out
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// values are less than or equal to it. Empty input gives 0; p <= 0 gives
// the minimum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	// The epsilon keeps float noise (99.9*1000 = 99900.00000000001) from
	// pushing an exact rank up by one.
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	return sorted[max(rank, 1)-1]
}
