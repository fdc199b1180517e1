// Package limit rate-limits enrollment requests per device, per source IP and
// per profile with token buckets (golang.org/x/time/rate).
//
// Every table is bounded: each kind keeps at most MaxEntries buckets and
// evicts the least recently used one when a new key arrives, so a flood of
// distinct keys costs a counter (Metrics.Evicted), not memory. An evicted key
// starts again with a full bucket, which is the price of the bound.
package limit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrRateLimited is wrapped by every refusal from Allow.
var ErrRateLimited = errors.New("limit: rate limited")

// Kind names one limit; it is the bounded metric label.
type Kind string

const (
	KindDevice  Kind = "device"
	KindIP      Kind = "ip"
	KindProfile Kind = "profile"
)

// Rate is a token bucket: one token every Every, up to Burst saved.
// The zero Rate (Every == 0 or Burst <= 0) disables the limit.
type Rate struct {
	Every time.Duration `yaml:"every" json:"every"`
	Burst int           `yaml:"burst" json:"burst"`
}

func (r Rate) enabled() bool { return r.Every > 0 && r.Burst > 0 }

// Config sets the three limits. Unset limits are off.
type Config struct {
	PerDevice  Rate `yaml:"per_device" json:"per_device"`
	PerIP      Rate `yaml:"per_ip" json:"per_ip"`
	PerProfile Rate `yaml:"per_profile" json:"per_profile"`
}

// DefaultConfig is a conservative setting for enrollment: a device enrolls a
// few times a day, an IP (possibly a NAT of many devices) more often. It is
// also the default of hardbound.yaml's enroll.rate_limits.
func DefaultConfig() Config {
	return Config{
		PerDevice:  Rate{Every: time.Minute, Burst: 5},
		PerIP:      Rate{Every: time.Second, Burst: 50},
		PerProfile: Rate{Every: time.Millisecond, Burst: 1000},
	}
}

// Metrics counts refusals and evictions by kind. Implementations must be
// safe for concurrent use.
type Metrics interface {
	Refused(kind Kind)
	Evicted(kind Kind)
}

type nopMetrics struct{}

func (nopMetrics) Refused(Kind) {}
func (nopMetrics) Evicted(Kind) {}

// Error is the refusal returned by Allow. It wraps ErrRateLimited.
type Error struct {
	Kind Kind
	// RetryAfter is when the refused bucket will have a token again.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("limit: rate limited per %s (retry after %s)", e.Kind, e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *Error) Unwrap() error { return ErrRateLimited }

// Option configures a Limiter.
type Option func(*Limiter)

// WithMetrics sets the refusal counter.
func WithMetrics(m Metrics) Option {
	return func(l *Limiter) {
		if m != nil {
			l.metrics = m
		}
	}
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) {
		if now != nil {
			l.now = now
		}
	}
}

// WithMaxEntries bounds each kind's table (default 16384).
func WithMaxEntries(n int) Option {
	return func(l *Limiter) {
		if n > 0 {
			l.max = n
		}
	}
}

// Limiter enforces Config. It is safe for concurrent use.
type Limiter struct {
	metrics Metrics
	now     func() time.Time
	max     int

	mu     sync.Mutex
	tables [3]*table // device, ip, profile
}

// New returns a Limiter for cfg.
func New(cfg Config, opts ...Option) *Limiter {
	l := &Limiter{metrics: nopMetrics{}, now: time.Now, max: 16384}
	for _, o := range opts {
		o(l)
	}
	l.tables = [3]*table{
		newTable(KindDevice, cfg.PerDevice, l.max),
		newTable(KindIP, cfg.PerIP, l.max),
		newTable(KindProfile, cfg.PerProfile, l.max),
	}
	return l
}

// Allow takes one token from each applicable bucket: the device's, the
// IP's and the profile's. An empty key skips that limit (the device may not
// be known yet). Either all buckets are charged or none is, so a request
// refused by one limit does not drain the others. The error names the
// first limit that refused and wraps ErrRateLimited.
func (l *Limiter) Allow(device, ip, profile string) error {
	if l == nil {
		return nil
	}
	now := l.now()
	keys := [3]string{device, ip, profile}

	l.mu.Lock()
	defer l.mu.Unlock()
	var taken [3]*rate.Reservation
	for i, t := range l.tables {
		if !t.rate.enabled() || keys[i] == "" {
			continue
		}
		lim := t.get(keys[i], l.metrics)
		r := lim.ReserveN(now, 1)
		if d := r.DelayFrom(now); !r.OK() || d > 0 {
			r.CancelAt(now)
			for j := range i {
				if taken[j] != nil {
					taken[j].CancelAt(now)
				}
			}
			l.metrics.Refused(t.kind)
			if !r.OK() {
				d = t.rate.Every
			}
			return &Error{Kind: t.kind, RetryAfter: d}
		}
		taken[i] = r
	}
	return nil
}

// Len reports how many buckets each kind holds (device, ip, profile).
func (l *Limiter) Len() (device, ip, profile int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tables[0].len(), l.tables[1].len(), l.tables[2].len()
}
