package posture_test

import (
	"strings"
	"testing"

	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store/policy"
)

// Device ids too long to be kept inline, and profile names that are not
// configured, are decided, cached and invalidated like any other.
func TestDecideKeepsLongIDsAndUnconfiguredProfiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      string
		profile string
	}{
		{name: "inline-id", id: "dev-" + strings.Repeat("a", 30)},
		{name: "hex-id", id: strings.Repeat("0123456789abcdef", 4)},
		{name: "long-id", id: "dev-" + strings.Repeat("b", 200)},
		{name: "unconfigured-profile", id: "dev-c", profile: "gone"},
		{name: "long-id-unconfigured-profile", id: strings.Repeat("d", 65), profile: "gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, profiles...)
			d := f.bind(t, devbind.Request{DeviceID: tc.id, Profile: tc.profile})
			want := tc.profile
			if want == "" {
				want = policy.DefaultProfile
			}
			for range 2 { // load, then from the cache
				v := f.svc.Decide(f.ctx, d.Leaf)
				if !v.Allow || v.Reason != posture.ReasonOK || v.DeviceID != tc.id || v.Profile != want {
					t.Fatalf("Decide = %+v, want ok for %q in profile %q", v, tc.id, want)
				}
			}
			if _, err := f.svc.Quarantine(f.ctx, tc.id, "admin:test"); err != nil {
				t.Fatal(err)
			}
			if v := f.svc.Decide(f.ctx, d.Leaf); v.Reason != posture.ReasonDeviceQuarantined {
				t.Errorf("after quarantine Decide = %s, want %s", v.Reason, posture.ReasonDeviceQuarantined)
			}
			if _, err := f.svc.Release(f.ctx, tc.id, "admin:test"); err != nil {
				t.Fatal(err)
			}
			if v := f.svc.Decide(f.ctx, d.Leaf); !v.Allow || v.DeviceID != tc.id {
				t.Errorf("after release Decide = %+v, want ok", v)
			}
		})
	}
}
