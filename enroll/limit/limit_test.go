package limit

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type countMetrics struct {
	mu      sync.Mutex
	refused map[Kind]int
	evicted map[Kind]int
}

func newCountMetrics() *countMetrics {
	return &countMetrics{refused: map[Kind]int{}, evicted: map[Kind]int{}}
}
func (m *countMetrics) Refused(k Kind) { m.mu.Lock(); m.refused[k]++; m.mu.Unlock() }
func (m *countMetrics) Evicted(k Kind) { m.mu.Lock(); m.evicted[k]++; m.mu.Unlock() }

func TestAllow(t *testing.T) {
	t.Parallel()
	one := Rate{Every: time.Minute, Burst: 1}
	tests := []struct {
		name     string
		cfg      Config
		calls    [][3]string // device, ip, profile
		wantKind Kind        // of the last call; "" = allowed
	}{
		{"allow/first_request", Config{PerDevice: one, PerIP: one, PerProfile: one}, [][3]string{{"d", "1.1.1.1", "p"}}, ""},
		{"refuse/device_burst_exhausted", Config{PerDevice: one}, [][3]string{{"d", "1.1.1.1", "p"}, {"d", "2.2.2.2", "p"}}, KindDevice},
		{"refuse/ip_burst_exhausted", Config{PerIP: one}, [][3]string{{"a", "1.1.1.1", "p"}, {"b", "1.1.1.1", "q"}}, KindIP},
		{"refuse/profile_burst_exhausted", Config{PerProfile: one}, [][3]string{{"a", "1.1.1.1", "p"}, {"b", "2.2.2.2", "p"}}, KindProfile},
		{"allow/other_device", Config{PerDevice: one}, [][3]string{{"a", "ip", "p"}, {"b", "ip", "p"}}, ""},
		{"allow/empty_key_skips_limit", Config{PerDevice: one}, [][3]string{{"", "ip", "p"}, {"", "ip", "p"}}, ""},
		{"allow/zero_config_is_unlimited", Config{}, [][3]string{{"a", "ip", "p"}, {"a", "ip", "p"}, {"a", "ip", "p"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{t: time.Unix(1000, 0)}
			m := newCountMetrics()
			l := New(tc.cfg, WithClock(clk.now), WithMetrics(m))
			var err error
			for _, c := range tc.calls {
				err = l.Allow(c[0], c[1], c[2])
			}
			if tc.wantKind == "" {
				if err != nil {
					t.Fatalf("Allow = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrRateLimited) {
				t.Fatalf("Allow = %v, want ErrRateLimited", err)
			}
			var le *Error
			if !errors.As(err, &le) || le.Kind != tc.wantKind {
				t.Fatalf("Allow = %v, want kind %s", err, tc.wantKind)
			}
			if le.RetryAfter <= 0 {
				t.Errorf("RetryAfter = %v, want > 0", le.RetryAfter)
			}
			if m.refused[tc.wantKind] != 1 {
				t.Errorf("refused[%s] = %d, want 1", tc.wantKind, m.refused[tc.wantKind])
			}
		})
	}
}

func TestAllowRefusalDoesNotChargeOtherBuckets(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(Config{
		PerDevice: Rate{Every: time.Hour, Burst: 2},
		PerIP:     Rate{Every: time.Hour, Burst: 1},
	}, WithClock(clk.now))
	if err := l.Allow("d", "ip1", ""); err != nil {
		t.Fatal(err)
	}
	// Refused by the IP limit: the device bucket must keep its second token.
	if err := l.Allow("d", "ip1", ""); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second call = %v, want refusal", err)
	}
	if err := l.Allow("d", "ip2", ""); err != nil {
		t.Fatalf("device token was drained by an IP refusal: %v", err)
	}
}

func TestAllowRefillsOverTime(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(Config{PerDevice: Rate{Every: time.Minute, Burst: 1}}, WithClock(clk.now))
	if err := l.Allow("d", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Allow("d", "", ""); err == nil {
		t.Fatal("want refusal before refill")
	}
	clk.add(time.Minute)
	if err := l.Allow("d", "", ""); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestFloodIsBounded(t *testing.T) {
	t.Parallel()
	m := newCountMetrics()
	l := New(Config{PerIP: Rate{Every: time.Second, Burst: 1}}, WithMaxEntries(100), WithMetrics(m))
	for i := range 10000 {
		_ = l.Allow("", fmt.Sprintf("10.0.%d.%d", i/256, i%256), "")
	}
	if _, ip, _ := l.Len(); ip != 100 {
		t.Fatalf("ip table holds %d entries, want 100", ip)
	}
	if m.evicted[KindIP] != 9900 {
		t.Fatalf("evicted = %d, want 9900", m.evicted[KindIP])
	}
}

func TestConcurrentAllow(t *testing.T) {
	t.Parallel()
	l := New(Config{PerDevice: Rate{Every: time.Hour, Burst: 50}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 200 {
		wg.Go(func() {
			if l.Allow("d", "", "") == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 50 {
		t.Fatalf("%d allowed, want exactly the burst of 50", ok)
	}
}

func TestNilLimiterAllows(t *testing.T) {
	t.Parallel()
	var l *Limiter
	if err := l.Allow("d", "ip", "p"); err != nil {
		t.Fatalf("nil limiter refused: %v", err)
	}
}
