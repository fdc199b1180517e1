package posture_test

import (
	"fmt"
	"testing"
	"time"

	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/policy"
)

// liveSession records an open accounting session of d's certificate.
func liveSession(t *testing.T, f *fixture, d *devbind.Device, id string) {
	t.Helper()
	now := f.clock.now()
	if err := f.st.PutSession(f.ctx, &store.Session{NAS: "sw1", NASAddr: "127.0.0.1", AcctSessionID: id, DeviceID: d.ID,
		CertSHA256: d.Binding.SHA256, StartedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// TestSetProfilesLive: raising a minimum on the running Service rejects
// the next decision of a device below it (the cached binding is dropped),
// and ReviewSessions publishes one policy event for each certificate with
// a live session that the new profiles no longer admit the same way (a
// refusal, or another VLAN), and none for the others.
func TestSetProfilesLive(t *testing.T) {
	t.Parallel()
	corp := func(minIOS, vlan string) posture.Profile {
		return posture.Profile{Name: "corp", VLAN: vlan, Minimums: minimums(t, map[string]string{"ios": minIOS}, 0)}
	}
	f := newFixture(t, corp("17.0", "10"), posture.Profile{Name: "lab"})
	old := f.bind(t, devbind.Request{DeviceID: "F2LOLD", Format: policy.FormatApple, Profile: "corp"})
	withFacts(t, f, old, map[string]string{"os": "ios", "os_version": "17.2"})
	current := f.bind(t, devbind.Request{DeviceID: "F2LNEW", Format: policy.FormatApple, Profile: "corp"})
	withFacts(t, f, current, map[string]string{"os": "ios", "os_version": "17.5"})
	lab := f.bind(t, devbind.Request{DeviceID: "pc-lab", Format: policy.FormatTPM, Profile: "lab"})
	for _, d := range []*devbind.Device{old, current, lab} {
		if v := f.svc.Decide(f.ctx, d.Leaf); !v.Allow {
			t.Fatalf("%s before: %+v", d.ID, v)
		}
		liveSession(t, f, d, "s-"+d.ID)
	}
	events, cancel := f.svc.Subscribe(16)
	defer cancel()

	// A change that admits everyone as before publishes nothing.
	prev, dropped, err := f.svc.SetProfiles([]posture.Profile{corp("17.0", "10"), {Name: "lab", SessionTimeout: time.Hour}})
	if err != nil || dropped {
		t.Fatalf("SetProfiles (same minimums): dropped %v, %v", dropped, err)
	}
	if n, pub, err := f.svc.ReviewSessions(f.ctx, prev, "admin:ops"); err != nil || n != 3 || pub != 0 {
		t.Fatalf("review of an unchanged admission: %d sessions, %d published, %v", n, pub, err)
	}

	prev, dropped, err = f.svc.SetProfiles([]posture.Profile{corp("17.4", "20"), {Name: "lab"}})
	if err != nil || !dropped {
		t.Fatalf("SetProfiles (raised): dropped %v, %v", dropped, err)
	}
	if v := f.svc.Decide(f.ctx, old.Leaf); v.Allow || v.Reason != posture.ReasonBelowMinimum {
		t.Fatalf("17.2 after the raise: %+v, want attested_below_minimum", v)
	}
	if v, ok := f.svc.DecideCached(old.Leaf); !ok || v.Reason != posture.ReasonBelowMinimum {
		t.Fatalf("17.2 cached after the raise: %+v %v", v, ok)
	}
	if v := f.svc.Decide(f.ctx, current.Leaf); !v.Allow || v.VLAN != "20" {
		t.Fatalf("17.5 after the raise: %+v, want VLAN 20", v)
	}
	since := f.clock.now()
	n, pub, err := f.svc.ReviewSessions(f.ctx, prev, "admin:ops")
	if err != nil || n != 3 || pub != 2 {
		t.Fatalf("review: %d sessions, %d published, %v; want 3 and 2 (below minimum, new VLAN)", n, pub, err)
	}
	got := map[string]posture.Event{}
	for range pub {
		select {
		case ev := <-events:
			got[ev.DeviceID] = ev
		case <-time.After(5 * time.Second):
			t.Fatal("policy event not published")
		}
	}
	for _, d := range []*devbind.Device{old, current} {
		ev, ok := got[d.ID]
		if !ok || ev.Kind != posture.EventPolicy || ev.CertSHA256 != d.Binding.SHA256 || ev.Source != "admin:ops" || ev.Device == nil {
			t.Errorf("event for %s: %+v", d.ID, ev)
		}
		if !f.svc.StandingChangedSince(d.ID, since) {
			t.Errorf("%s not marked changed", d.ID)
		}
	}
	if _, ok := got[lab.ID]; ok {
		t.Errorf("an event for the lab device, whose admission did not change")
	}
	if _, _, err := f.svc.SetProfiles([]posture.Profile{{Name: "corp"}, {Name: "corp"}}); err == nil {
		t.Fatal("duplicate profiles accepted")
	}
	if v := f.svc.Decide(f.ctx, old.Leaf); v.Reason != posture.ReasonBelowMinimum {
		t.Fatalf("a refused SetProfiles changed the policy: %+v", v)
	}
}

// BenchmarkReviewSessions: the cost of judging live sessions again after
// a reload (three store reads and two judgements each), next to a
// Decide that misses the caches (the reads one authentication makes), for
// a ratio within one run.
func BenchmarkReviewSessions(b *testing.B) {
	const n = 500
	low := posture.Profile{Name: "corp", Minimums: func() policy.Minimums {
		m, _ := policy.ParseMinimums(map[string]string{"ios": "17.0"}, 0)
		return m
	}()}
	f := newFixture(b, low)
	devs := make([]*devbind.Device, n)
	for i := range devs {
		d, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), devbind.Request{DeviceID: fmt.Sprintf("F2LB%04d", i), Format: policy.FormatApple, Profile: "corp"})
		if err != nil {
			b.Fatal(err)
		}
		devs[i] = d
		now := f.clock.now()
		if err := f.st.PutSession(f.ctx, &store.Session{NAS: "sw1", NASAddr: "127.0.0.1", AcctSessionID: fmt.Sprintf("s%04d", i), DeviceID: d.ID,
			CertSHA256: d.Binding.SHA256, StartedAt: now, UpdatedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("review_per_session", func(b *testing.B) {
		for b.Loop() {
			old, _, err := f.svc.SetProfiles([]posture.Profile{low})
			if err != nil {
				b.Fatal(err)
			}
			if got, _, err := f.svc.ReviewSessions(f.ctx, old, "bench"); err != nil || got != n {
				b.Fatalf("%d sessions, %v", got, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/session")
	})
	b.Run("decide_uncached", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if i%n == 0 {
				// Other minimums: every cached binding is dropped.
				m, _ := policy.ParseMinimums(map[string]string{"ios": fmt.Sprintf("16.%d", i/n%2)}, 0)
				_, _, _ = f.svc.SetProfiles([]posture.Profile{{Name: "corp", Minimums: m}})
			}
			_ = f.svc.Decide(f.ctx, devs[i%n].Leaf)
			i++
		}
	})
}
