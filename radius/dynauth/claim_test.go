package dynauth

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
)

// failingClaims fails every claim with an error other than ErrExists.
type failingClaims struct{}

func (failingClaims) ClaimNonce(context.Context, string, store.Hash, time.Time) error {
	return errors.New("database away")
}

// TestEnforcersShareClaims runs three enforcers, as three nodes would, over
// one store's claims: every standing change reaches all three, and each
// session gets exactly one request among them. A session that starts after
// the change (SessionStarted) is a claim of its own.
func TestEnforcersShareClaims(t *testing.T) {
	t.Parallel()
	st, err := badger.Open(t.Context(), "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sess := &memSessions{byID: map[string][]*store.Session{"d1": {
		{NAS: "ap1", NASAddr: "192.0.2.1", AcctSessionID: "S1"},
		{NAS: "ap2", NASAddr: "192.0.2.2", AcctSessionID: "S2"},
	}}}
	ex := &recExchanger{}
	m := &eventMetrics{events: map[string]int{}}
	var nodes []*Enforcer
	for range 3 {
		e, err := NewEnforcer(EnforcerConfig{
			Events: &chanEvents{}, Sessions: sess, Sender: ex, Claims: st, Metrics: m,
			NAS: func(name string) (NAS, bool) { return NAS{Name: name, Secret: []byte("x")}, true },
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, e)
	}
	at := time.Now()
	revoked := posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1", At: at}
	var wg sync.WaitGroup
	for _, e := range nodes {
		wg.Go(func() { e.Enforce(t.Context(), revoked) })
	}
	wg.Wait()
	slices.Sort(ex.reqs)
	want := []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.2 S2 vlan="}
	if !slices.Equal(ex.reqs, want) {
		t.Fatalf("requests = %q, want %q", ex.reqs, want)
	}

	// The same change enforced again (a node replaying the feed) sends nothing.
	ex.reqs = nil
	nodes[0].Enforce(t.Context(), revoked)
	if len(ex.reqs) != 0 {
		t.Fatalf("replayed change sent %q", ex.reqs)
	}
	// A new session of the device, and a different change of it, are claims of their own.
	sess.mu.Lock()
	sess.byID["d1"] = append(sess.byID["d1"], &store.Session{NAS: "ap1", NASAddr: "192.0.2.1", AcctSessionID: "S3"})
	sess.mu.Unlock()
	nodes[1].Enforce(t.Context(), revoked)
	if want := []string{"disconnect 192.0.2.1 S3 vlan="}; !slices.Equal(ex.reqs, want) {
		t.Fatalf("late session: requests = %q, want %q", ex.reqs, want)
	}
	ex.reqs = nil
	nodes[2].Enforce(t.Context(), posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1", At: at.Add(time.Nanosecond)})
	if len(ex.reqs) != 3 {
		t.Fatalf("a later change sent %q, want all three sessions", ex.reqs)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if got := m.events[string(posture.EventDeviceRevoked)+"/claimed_elsewhere"]; got < 1 {
		t.Fatalf("claimed_elsewhere counted %d times, want >= 1 (%v)", got, m.events)
	}
}

// TestEnforcerClaimFailureSends: a claim the store cannot record must not
// leave a revoked device on the network; nor is a change without a time claimed.
func TestEnforcerClaimFailureSends(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		claims Claimer
		at     time.Time
	}{
		{"store_error", failingClaims{}, time.Now()},
		{"no_time", failingClaims{}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ex := &recExchanger{}
			e, err := NewEnforcer(EnforcerConfig{
				Events: &chanEvents{}, Claims: tc.claims, Sender: ex,
				Sessions: &memSessions{byID: map[string][]*store.Session{"d1": {{NAS: "ap1", NASAddr: "192.0.2.1", AcctSessionID: "S1"}}}},
				NAS:      func(name string) (NAS, bool) { return NAS{Name: name, Secret: []byte("x")}, true },
			})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				e.Enforce(t.Context(), posture.Event{Kind: posture.EventDeviceRevoked, DeviceID: "d1", At: tc.at})
			}
			if len(ex.reqs) != 2 {
				t.Fatalf("requests = %q, want two", ex.reqs)
			}
		})
	}
}

// eventMetrics counts Event calls by kind/action.
type eventMetrics struct {
	NopMetrics
	mu     sync.Mutex
	events map[string]int
}

func (m *eventMetrics) Event(kind, action string) {
	m.mu.Lock()
	m.events[kind+"/"+action]++
	m.mu.Unlock()
}
