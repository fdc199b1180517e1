package posture_test

import (
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store/policy"
)

// withFacts rewrites the binding's attestation facts, as an issuance of
// real evidence would have recorded them.
func withFacts(t *testing.T, f *fixture, d *devbind.Device, facts map[string]string) {
	t.Helper()
	a, err := f.st.GetAttestation(f.ctx, d.Binding.AttestationID)
	if err != nil {
		t.Fatal(err)
	}
	a.Facts = facts
	if err := f.st.PutAttestation(f.ctx, a); err != nil {
		t.Fatal(err)
	}
}

func minimums(t *testing.T, os map[string]string, patch int64) policy.Minimums {
	t.Helper()
	m, err := policy.ParseMinimums(os, patch)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMinimumsAtEveryAuthentication: a device that enrolled on an OS the
// profile then accepted is rejected with attested_below_minimum once the
// minimum is raised (a new Service: profiles are read at start), and
// admitted again once it re-enrolled on a newer OS.
func TestMinimumsAtEveryAuthentication(t *testing.T) {
	t.Parallel()
	low := posture.Profile{Name: "corp", Minimums: minimums(t, map[string]string{"ios": "17.0", "android": "13"}, 202401)}
	f := newFixture(t, low)
	iphone := f.bind(t, devbind.Request{DeviceID: "F2LOLDOS", Format: policy.FormatApple, Profile: "corp"})
	withFacts(t, f, iphone, map[string]string{"os": "ios", "os_version": "17.2"})
	pixel := f.bind(t, devbind.Request{DeviceID: "R58OLD", Format: policy.FormatAndroidKey, Profile: "corp"})
	withFacts(t, f, pixel, map[string]string{"os_version": "140000", "os_patch_level": "202508"})
	tpm := f.bind(t, devbind.Request{DeviceID: "pc-1", Format: policy.FormatTPM, Profile: "corp"})

	for _, d := range []*devbind.Device{iphone, pixel, tpm} {
		if v := f.svc.Decide(f.ctx, d.Leaf); !v.Allow || v.Reason != posture.ReasonOK {
			t.Fatalf("%s under the low minimum: %+v", d.ID, v)
		}
	}

	raised := posture.Profile{Name: "corp", Minimums: minimums(t, map[string]string{"ios": "17.4", "android": "14"}, 202509)}
	svc, err := posture.New(f.st, []posture.Profile{raised}, posture.WithClock(f.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for _, tc := range []struct {
		d    *devbind.Device
		want posture.Reason
	}{
		{iphone, posture.ReasonBelowMinimum},
		{pixel, posture.ReasonBelowMinimum}, // patch level 202508 < 202509
		{tpm, posture.ReasonOK},             // TPM evidence states no OS: no minimum applies
	} {
		v := svc.Decide(f.ctx, tc.d.Leaf)
		if v.Reason != tc.want || v.Allow != (tc.want == posture.ReasonOK) {
			t.Errorf("%s after raising: %+v, want %s", tc.d.ID, v, tc.want)
		}
		// The cached answer is the same.
		if v2, ok := svc.DecideCached(tc.d.Leaf); !ok || v2.Reason != tc.want {
			t.Errorf("%s cached: %+v %v", tc.d.ID, v2, ok)
		}
	}

	// Re-enrolled on 17.4: a new binding, admitted.
	again := f.bind(t, devbind.Request{DeviceID: "F2LOLDOS", Format: policy.FormatApple, Profile: "corp"})
	withFacts(t, f, again, map[string]string{"os": "ios", "os_version": "17.4"})
	if v := svc.Decide(f.ctx, again.Leaf); !v.Allow {
		t.Errorf("re-enrolled device: %+v", v)
	}
	if v := svc.Decide(f.ctx, iphone.Leaf); v.Reason != posture.ReasonBelowMinimum {
		t.Errorf("old binding after re-enrollment: %+v", v)
	}
}

// BenchmarkDecideCachedMinimums compares the cached decision of a profile
// without minimums and one with them: the minimums are checked when the
// binding is cached, so the two should cost the same.
func BenchmarkDecideCachedMinimums(b *testing.B) {
	for _, tc := range []struct {
		name string
		m    policy.Minimums
	}{
		{"none", policy.Minimums{}},
		{"min_os+patch", func() policy.Minimums {
			m, _ := policy.ParseMinimums(map[string]string{"ios": "17.4", "macos": "14.3", "android": "14"}, 202509)
			return m
		}()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, posture.Profile{Name: "corp", Minimums: tc.m})
			d, err := devbind.Bind(f.ctx, f.ca, f.st, f.clock.now(), devbind.Request{DeviceID: "R58BENCH", Format: policy.FormatAndroidKey, Profile: "corp"})
			if err != nil {
				b.Fatal(err)
			}
			a, _ := f.st.GetAttestation(f.ctx, d.Binding.AttestationID)
			a.Facts = map[string]string{"os_version": "150000", "os_patch_level": "202511"}
			if err := f.st.PutAttestation(f.ctx, a); err != nil {
				b.Fatal(err)
			}
			if v := f.svc.Decide(f.ctx, d.Leaf); !v.Allow {
				b.Fatalf("%+v", v)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := f.svc.DecideCached(d.Leaf); !ok {
					b.Fatal("not cached")
				}
			}
		})
	}
}
