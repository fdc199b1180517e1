package devbind_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/store"
	"hardbound/store/policy"
)

// recorder keeps the last issuance.
type recorder struct{ last store.Issuance }

func (r *recorder) RecordIssuance(_ context.Context, is store.Issuance) error {
	r.last = is
	return nil
}

func TestBindFormats(t *testing.T) {
	t.Parallel()
	c := catest.New(t, t.TempDir())
	now := time.Now()
	tests := []struct {
		name         string
		format       string
		wantErr      error
		wantAttested bool
		wantFormat   string
		wantPlatform string
	}{
		{name: "ok/default-is-tpm", format: "", wantAttested: true, wantFormat: policy.FormatTPM, wantPlatform: "windows"},
		{name: "ok/apple", format: policy.FormatApple, wantAttested: true, wantFormat: policy.FormatApple, wantPlatform: "apple"},
		{name: "ok/android", format: policy.FormatAndroidKey, wantAttested: true, wantFormat: policy.FormatAndroidKey, wantPlatform: "android"},
		{name: "ok/none-is-unattested", format: policy.FormatNone, wantAttested: false, wantPlatform: ""},
		{name: "fail/unknown", format: "sgx", wantErr: devbind.ErrInvalid},
		{name: "fail/case", format: "TPM", wantErr: devbind.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rec recorder
			d, err := devbind.Bind(t.Context(), c, &rec, now, devbind.Request{DeviceID: "dev-" + tc.name, Format: tc.format})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Bind: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Binding.Attested != tc.wantAttested || d.Binding.Profile != policy.DefaultProfile {
				t.Errorf("binding attested=%v profile=%q, want %v %q", d.Binding.Attested, d.Binding.Profile, tc.wantAttested, policy.DefaultProfile)
			}
			if got := rec.last.Device.Platform; got != tc.wantPlatform {
				t.Errorf("platform = %q, want %q", got, tc.wantPlatform)
			}
			switch a := rec.last.Attestation; {
			case tc.wantAttested && (a == nil || a.Format != tc.wantFormat):
				t.Errorf("attestation = %+v, want format %q", a, tc.wantFormat)
			case !tc.wantAttested && a != nil:
				t.Errorf("attestation = %+v, want none", a)
			}
		})
	}
}
