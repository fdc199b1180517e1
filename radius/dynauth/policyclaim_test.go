package dynauth

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/policy"
)

// TestEnforcersSharePolicyClaims: two nodes, each a posture Service and an
// enforcer over one store, reload the same profiles (in another order, at
// other times): each node's review publishes a policy event for every
// certificate whose admission changed, and each session still gets
// exactly one Disconnect between them. A second reload to other profiles
// is a change of its own, enforced once more.
func TestEnforcersSharePolicyClaims(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := badger.Open(ctx, "", badger.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := catest.New(t, "")
	corp := func(vlan string) posture.Profile { return posture.Profile{Name: "corp", VLAN: vlan} }
	lab := posture.Profile{Name: "lab"}

	// Node b's clock runs a second behind node a's: the events' times
	// differ, their identity must not.
	var nodes []*policyNode
	for i, skew := range []time.Duration{0, -time.Second} {
		svc, err := posture.New(st, []posture.Profile{corp("10"), lab}, posture.WithClock(func() time.Time { return time.Now().Add(skew) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		nodes = append(nodes, &policyNode{name: string(rune('a' + i)), svc: svc})
	}
	ex := &recExchanger{}
	m := &eventMetrics{events: map[string]int{}}
	for _, n := range nodes {
		n.enf, err = NewEnforcer(EnforcerConfig{
			Events: n.svc, Profiles: n.svc, Sessions: st, Claims: st, Sender: ex, Metrics: m,
			NAS: func(name string) (NAS, bool) { return NAS{Name: name, Secret: []byte("x")}, true },
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	sessions := map[string][]string{"d1": {"S1", "S2"}, "d2": {"S3"}}
	for dev, ids := range sessions {
		d, err := devbind.Bind(ctx, c, st, now, devbind.Request{DeviceID: dev, Format: policy.FormatTPM, Profile: "corp"})
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if err := st.PutSession(ctx, &store.Session{NAS: "ap", NASAddr: "192.0.2." + string(rune('1'+i)), AcctSessionID: id,
				DeviceID: d.ID, CertSHA256: d.Binding.SHA256, StartedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{"disconnect 192.0.2.1 S1 vlan=", "disconnect 192.0.2.1 S3 vlan=", "disconnect 192.0.2.2 S2 vlan="}

	for _, reload := range []struct {
		name string
		a, b []posture.Profile
	}{
		{"same file", []posture.Profile{corp("20"), lab}, []posture.Profile{lab, corp("20")}},
		{"next file", []posture.Profile{corp("30"), lab}, []posture.Profile{corp("30"), lab}},
	} {
		ex.mu.Lock()
		ex.reqs = nil
		ex.mu.Unlock()
		evs := make([][]posture.Event, len(nodes))
		for i, n := range nodes {
			evs[i] = n.reload(t, [][]posture.Profile{reload.a, reload.b}[i])
			if len(evs[i]) != 2 {
				t.Fatalf("%s: node %s published %d policy events, want 2 (one per certificate)", reload.name, n.name, len(evs[i]))
			}
		}
		for i := range evs[0] {
			a, b := evs[0][i], evs[1][i]
			if a.At.Equal(b.At) || a.Policy.IsZero() || a.Policy != b.Policy {
				t.Fatalf("%s: events at %v and %v with policies %s and %s: want other times, one policy", reload.name, a.At, b.At, a.Policy, b.Policy)
			}
		}
		// Both nodes enforce at once, as two processes would.
		var wg sync.WaitGroup
		for i, n := range nodes {
			for _, ev := range evs[i] {
				wg.Go(func() { n.enf.Enforce(ctx, ev) })
			}
		}
		wg.Wait()
		ex.mu.Lock()
		got := slices.Sorted(slices.Values(ex.reqs))
		ex.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: requests %q, want one Disconnect per session %q", reload.name, got, want)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Each node handled each certificate's change once per reload. d2's
	// one session goes to one node, so the other counts it claimed
	// elsewhere; d1's two may be split between the nodes, each then
	// counting a disconnect.
	sent, claimed := m.events[string(posture.EventPolicy)+"/disconnect"], m.events[string(posture.EventPolicy)+"/claimed_elsewhere"]
	if sent+claimed != 8 || claimed < 2 {
		t.Fatalf("policy events: %d sent, %d claimed elsewhere; want 8 in all (two nodes, two certificates, two reloads), at least 2 claimed (%v)", sent, claimed, m.events)
	}
}

// policyNode is one node of TestEnforcersSharePolicyClaims.
type policyNode struct {
	name string
	svc  *posture.Service
	enf  *Enforcer
}

// reload applies profiles as a configuration reload does (node.applyPolicy)
// and returns the policy events the review published, sorted by device.
func (n *policyNode) reload(t *testing.T, profiles []posture.Profile) []posture.Event {
	t.Helper()
	ch, cancel := n.svc.Subscribe(64)
	defer cancel()
	old, _, err := n.svc.SetProfiles(profiles)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := n.svc.ReviewSessions(context.Background(), old, "test:"+n.name)
	if err != nil {
		t.Fatal(err)
	}
	var evs []posture.Event
	for len(evs) < pub {
		select {
		case ev := <-ch:
			if ev.Kind == posture.EventPolicy {
				evs = append(evs, ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("node %s: %d of %d policy events", n.name, len(evs), pub)
		}
	}
	slices.SortFunc(evs, func(a, b posture.Event) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return evs
}
