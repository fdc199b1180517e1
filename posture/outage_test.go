package posture_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
	"hardbound/store/storetest"
)

// availability is a settable posture.Availability.
type availability struct {
	mu    sync.Mutex
	since time.Time
	down  bool
}

func (a *availability) Unavailable() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.since, a.down
}

func (a *availability) set(down bool, since time.Time) {
	a.mu.Lock()
	a.down, a.since = down, since
	a.mu.Unlock()
}

// outageMetrics counts the answers given while the store was away.
type outageMetrics struct {
	countingMetrics
	answers map[posture.OutageResult]int
}

func (m *outageMetrics) UnavailableAnswer(r posture.OutageResult) {
	m.mu.Lock()
	m.answers[r]++
	m.mu.Unlock()
}

func (m *outageMetrics) count(r posture.OutageResult) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.answers[r]
}

// logLines records the messages logged at or above WARN and INFO.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// TestDecideWhileStoreUnavailable: with the store away, a device whose
// standing is cached is answered from the caches for the grace, counted;
// one that is not cached is refused store_unavailable; past the grace the
// policy decides, for Decide and DecideCached alike (radius re-decides at
// Accept time from the caches: the same rule must hold there). Each
// transition is logged once, not per decision. Once the store answers,
// decisions read it again and a revocation made then is enforced.
func TestDecideWhileStoreUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy     posture.OutagePolicy
		afterAllow bool
		afterWant  posture.Reason
		afterCount posture.OutageResult
	}{
		{posture.OutageReject, false, posture.ReasonStoreUnavailable, posture.OutageRejected},
		{posture.OutageAcceptCached, true, posture.ReasonOK, posture.OutageCachedAfterGrace},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
			c := catest.New(t, t.TempDir(), ca.WithClock(clk.now))
			faulty := &storetest.Faulty{Store: badgertest.Memory(t, badger.WithClock(clk.now))}
			avail := &availability{}
			m := &outageMetrics{countingMetrics: countingMetrics{decisions: map[posture.Reason]int{}}, answers: map[posture.OutageResult]int{}}
			logs := &logLines{}
			const grace = 5 * time.Second
			svc, err := posture.New(faulty, nil, posture.WithClock(clk.now), posture.WithMetrics(m),
				posture.WithLogger(slog.New(logs)), posture.WithOutage(avail, grace, tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			bind := func(id string) *devbind.Device {
				d, err := devbind.Bind(ctx, c, faulty, clk.now(), devbind.Request{DeviceID: id, Format: "tpm"})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			warm, cold := bind("warm"), bind("cold")
			if v := svc.Decide(ctx, warm.Leaf); !v.Allow || v.StoreUnavailable {
				t.Fatalf("warm device before the outage: %+v", v)
			}

			// The database goes away.
			faulty.Fail = func(method string) error {
				return fmt.Errorf("storetest: %s: %w", method, store.ErrUnavailable)
			}
			avail.set(true, clk.now())
			for range 3 {
				if v := svc.Decide(ctx, warm.Leaf); !v.Allow || v.Reason != posture.ReasonOK || !v.StoreUnavailable {
					t.Fatalf("warm device within the grace: %+v", v)
				}
			}
			if v, ok := svc.DecideCached(warm.Leaf); !ok || !v.Allow {
				t.Fatalf("warm device within the grace, cached: %+v %v", v, ok)
			}
			if v := svc.Decide(ctx, cold.Leaf); v.Allow || v.Reason != posture.ReasonStoreUnavailable || !v.StoreUnavailable {
				t.Fatalf("device not cached: %+v", v)
			}
			if _, ok := svc.DecideCached(cold.Leaf); ok {
				t.Fatal("DecideCached answered a device it does not hold")
			}
			if m.count(posture.OutageCached) != 4 || m.count(posture.OutageMiss) != 1 {
				t.Fatalf("answers within the grace: %v", m.answers)
			}

			clk.add(grace)
			for range 3 {
				if v := svc.Decide(ctx, warm.Leaf); v.Allow != tc.afterAllow || v.Reason != tc.afterWant || !v.StoreUnavailable {
					t.Fatalf("warm device past the grace: %+v", v)
				}
			}
			if v, ok := svc.DecideCached(warm.Leaf); !ok || v.Allow != tc.afterAllow || v.Reason != tc.afterWant {
				t.Fatalf("warm device past the grace, cached: %+v %v", v, ok)
			}
			if got := m.count(tc.afterCount); got != 4 {
				t.Fatalf("answers past the grace: %v", m.answers)
			}
			if n := logs.count("WARN store unavailable: "); n != 1 {
				t.Errorf("%d WARN lines for the outage's start, want 1: %q", n, logs.msgs)
			}
			if n := logs.count("WARN store unavailable past the grace"); n != 1 {
				t.Errorf("%d WARN lines for the grace's end, want 1: %q", n, logs.msgs)
			}

			// Back: decisions read the store again, a revocation is enforced.
			faulty.Fail = nil
			avail.set(false, time.Time{})
			if v := svc.Decide(ctx, cold.Leaf); !v.Allow || v.StoreUnavailable {
				t.Fatalf("cold device after the outage: %+v", v)
			}
			if _, _, err := faulty.RevokeDevice(ctx, warm.ID, store.Revocation{At: clk.now(), Actor: "test"}, nil); err != nil {
				t.Fatal(err)
			}
			if v := svc.Decide(ctx, warm.Leaf); v.Allow || v.Reason != posture.ReasonDeviceRevoked || v.StoreUnavailable {
				t.Fatalf("revoked after the outage: %+v", v)
			}
			svc.Decide(ctx, cold.Leaf)
			if n := logs.count("INFO store available again"); n != 1 {
				t.Errorf("%d INFO lines for the outage's end, want 1: %q", n, logs.msgs)
			}
			total := 0
			for _, r := range posture.OutageResults {
				total += m.count(r)
			}
			if total != 9 {
				t.Errorf("%d answers counted while unavailable, want 9: %v", total, m.answers)
			}
		})
	}
}

// A store error other than unavailability stays unknown_cert, and an
// unreachable attestation is store_unavailable, not unattested.
func TestDecideStoreErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method string
		err    error
		want   posture.Reason
	}{
		{"GetCertBinding", errors.New("disk on fire"), posture.ReasonUnknownCert},
		{"GetCertBinding", fmt.Errorf("x: %w", store.ErrUnavailable), posture.ReasonStoreUnavailable},
		{"GetDevice", fmt.Errorf("x: %w", store.ErrUnavailable), posture.ReasonStoreUnavailable},
		{"GetAttestation", fmt.Errorf("x: %w", store.ErrUnavailable), posture.ReasonStoreUnavailable},
		{"GetAttestation", errors.New("disk on fire"), posture.ReasonUnattested},
	} {
		t.Run(tc.method+"/"+string(tc.want), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c := catest.New(t, t.TempDir())
			faulty := &storetest.Faulty{Store: badgertest.Memory(t)}
			svc, err := posture.New(faulty, nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := devbind.Bind(ctx, c, faulty, time.Now(), devbind.Request{DeviceID: "d", Format: "tpm"})
			if err != nil {
				t.Fatal(err)
			}
			faulty.Fail = storetest.FailOn(tc.method, 0, tc.err)
			if v := svc.Decide(ctx, d.Leaf); v.Allow || v.Reason != tc.want {
				t.Fatalf("Decide = %+v, want %s", v, tc.want)
			}
			faulty.Fail = nil
			if v := svc.Decide(ctx, d.Leaf); !v.Allow {
				t.Fatalf("Decide once the store answers = %+v", v)
			}
		})
	}
}

func TestParseOutagePolicy(t *testing.T) {
	for in, want := range map[string]posture.OutagePolicy{"": posture.OutageReject, "reject": posture.OutageReject, "accept_cached": posture.OutageAcceptCached} {
		if got, err := posture.ParseOutagePolicy(in); err != nil || got != want {
			t.Errorf("ParseOutagePolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := posture.ParseOutagePolicy("open"); !errors.Is(err, posture.ErrUnknownOutagePolicy) {
		t.Errorf("ParseOutagePolicy(open) = %v", err)
	}
}

// BenchmarkDecideCachedOutage compares the cached decision of a Service
// without an Availability (Badger), with one whose store answers, and
// with one whose store is away within the grace: the outage check is an
// atomic load and a comparison, so the three should cost about the same.
func BenchmarkDecideCachedOutage(b *testing.B) {
	for _, tc := range []struct {
		name string
		opt  func(*availability) []posture.Option
		down bool
	}{
		{"no_availability", func(*availability) []posture.Option { return nil }, false},
		{"store_up", func(a *availability) []posture.Option {
			return []posture.Option{posture.WithOutage(a, time.Hour, posture.OutageReject)}
		}, false},
		{"store_away_in_grace", func(a *availability) []posture.Option {
			return []posture.Option{posture.WithOutage(a, time.Hour, posture.OutageReject)}
		}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			c := catest.New(b, b.TempDir())
			st := badgertest.Memory(b)
			a := &availability{}
			svc, err := posture.New(st, nil, tc.opt(a)...)
			if err != nil {
				b.Fatal(err)
			}
			d, err := devbind.Bind(ctx, c, st, time.Now(), devbind.Request{DeviceID: "BENCH", Format: "tpm"})
			if err != nil {
				b.Fatal(err)
			}
			if v := svc.Decide(ctx, d.Leaf); !v.Allow {
				b.Fatalf("%+v", v)
			}
			a.set(tc.down, time.Now())
			b.ReportAllocs()
			for b.Loop() {
				if v, ok := svc.DecideCached(d.Leaf); !ok || !v.Allow {
					b.Fatal("not cached or refused")
				}
			}
		})
	}
}
