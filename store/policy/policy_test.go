package policy_test

import (
	"errors"
	"testing"

	"hardbound/store/policy"
)

func TestFormatNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format          string
		hardware, known bool
	}{
		{policy.FormatApple, true, true},
		{policy.FormatTPM, true, true},
		{policy.FormatAndroidKey, true, true},
		{policy.FormatNone, false, true},
		{"", false, false},
		{"TPM", false, false},
		{"android", false, false},
		{"sgx", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			if got := policy.IsHardware(tc.format); got != tc.hardware {
				t.Errorf("IsHardware(%q) = %v, want %v", tc.format, got, tc.hardware)
			}
			if got := policy.Known(tc.format); got != tc.known {
				t.Errorf("Known(%q) = %v, want %v", tc.format, got, tc.known)
			}
		})
	}
}

func TestHardwareFormats(t *testing.T) {
	t.Parallel()
	got := policy.HardwareFormats()
	want := []string{"apple", "tpm", "android-key"}
	if len(got) != len(want) {
		t.Fatalf("HardwareFormats() = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] || !policy.IsHardware(got[i]) {
			t.Errorf("HardwareFormats()[%d] = %q, want %q", i, got[i], want[i])
		}
	}
	got[0] = "changed"
	if policy.HardwareFormats()[0] != policy.FormatApple {
		t.Error("HardwareFormats shares its slice with callers")
	}
}

func TestFormatsCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		formats policy.Formats
		wantErr bool
	}{
		{"ok/empty", nil, false},
		{"ok/all", policy.Formats{"apple", "tpm", "android-key", "none"}, false},
		{"ok/none-only", policy.Formats{"none"}, false},
		{"fail/unknown", policy.Formats{"tpm", "sgx"}, true},
		{"fail/empty-name", policy.Formats{""}, true},
		{"fail/case", policy.Formats{"Apple"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.formats.Check()
			if tc.wantErr != errors.Is(err, policy.ErrUnknownFormat) {
				t.Errorf("Check(%q) = %v, want error %v", tc.formats, err, tc.wantErr)
			}
			if !tc.wantErr && err != nil {
				t.Errorf("Check(%q) = %v, want nil", tc.formats, err)
			}
		})
	}
}

func TestFormatsAdmits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		formats    policy.Formats
		format     string
		admits     bool
		unattested bool
	}{
		{"empty/tpm", nil, "tpm", true, false},
		{"empty/android", nil, "android-key", true, false},
		{"empty/none", nil, "none", false, false},
		{"empty/unknown", nil, "sgx", false, false},
		{"apple-only/apple", policy.Formats{"apple"}, "apple", true, false},
		{"apple-only/tpm", policy.Formats{"apple"}, "tpm", false, false},
		{"migration/tpm", policy.Formats{"none", "tpm"}, "tpm", true, true},
		{"migration/apple", policy.Formats{"none", "tpm"}, "apple", false, true},
		{"none-only/tpm", policy.Formats{"none"}, "tpm", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.formats.Admits(tc.format); got != tc.admits {
				t.Errorf("%q.Admits(%q) = %v, want %v", tc.formats, tc.format, got, tc.admits)
			}
			if got := tc.formats.AdmitsUnattested(); got != tc.unattested {
				t.Errorf("%q.AdmitsUnattested() = %v, want %v", tc.formats, got, tc.unattested)
			}
		})
	}
}

func TestFormatsAdmitsDoesNotAllocate(t *testing.T) {
	fs := policy.Formats{"none", "tpm"}
	var empty policy.Formats
	if n := testing.AllocsPerRun(100, func() {
		_ = fs.Admits("tpm") || empty.Admits("apple") || fs.AdmitsUnattested()
	}); n != 0 {
		t.Errorf("Admits allocates %v times per call", n)
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		profile string
		wantErr bool
	}{
		{"ok/default", policy.DefaultProfile, false},
		{"ok/dashes", "corp-laptops_2", false},
		{"ok/dots", "v1.2", false},
		{"fail/empty", "", true},
		{"fail/slash", "a/b", true},
		{"fail/query", "a?b", true},
		{"fail/fragment", "a#b", true},
		{"fail/percent", "a%20b", true},
		{"fail/space", "a b", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := policy.CheckName(tc.profile)
			if tc.wantErr != errors.Is(err, policy.ErrProfileName) {
				t.Errorf("CheckName(%q) = %v, want error %v", tc.profile, err, tc.wantErr)
			}
			if !tc.wantErr && err != nil {
				t.Errorf("CheckName(%q) = %v, want nil", tc.profile, err)
			}
		})
	}
}
