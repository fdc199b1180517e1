package policy_test

import (
	"errors"
	"testing"

	"hardbound/store/policy"
)

func TestNormalizePlatform(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"iOS": "ios", "iPadOS": "ios", "macOS": "macos", "Mac": "macos", "Android": "android",
		"Windows": "windows", "Windows 11": "windows", "linux": "linux", "apple": "apple", "AndroidForWork": "android",
	} {
		got, err := policy.NormalizePlatform(in)
		if err != nil || got != want {
			t.Errorf("NormalizePlatform(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "beos", "chromeos"} {
		if _, err := policy.NormalizePlatform(in); !errors.Is(err, policy.ErrPlatform) {
			t.Errorf("NormalizePlatform(%q) = %v, want ErrPlatform", in, err)
		}
	}
}

func TestCheckPlatformFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		platform, format string
		ok               bool
	}{
		{"", "android-key", true},
		{"macos", "apple", true},
		{"ios", "apple", true},
		{"apple", "apple", true},
		{"android", "android-key", true},
		{"windows", "tpm", true},
		{"linux", "tpm", true},
		{"macos", "android-key", false},
		{"ios", "tpm", false},
		{"android", "apple", false},
		{"windows", "apple", false},
		{"plan9", "tpm", false},
	}
	for _, tc := range tests {
		err := policy.CheckPlatformFormat(tc.platform, tc.format)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, policy.ErrPlatform)) {
			t.Errorf("CheckPlatformFormat(%q, %q) = %v, want ok=%v", tc.platform, tc.format, err, tc.ok)
		}
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
		bad  bool
	}{
		{"17", "17.0.0", false},
		{"17.4", "17.4.0", false},
		{"17.4.1", "17.4.1", false},
		{" 14.3 ", "14.3.0", false},
		{"", "", true},
		{"0", "", true},
		{"17.x", "", true},
		{"1.2.3.4", "", true},
		{"70000", "", true},
		{"-1", "", true},
	}
	for _, tc := range tests {
		v, err := policy.ParseVersion(tc.in)
		if tc.bad {
			if !errors.Is(err, policy.ErrVersion) {
				t.Errorf("ParseVersion(%q) = %v, %v; want ErrVersion", tc.in, v, err)
			}
			continue
		}
		if err != nil || v.String() != tc.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %s", tc.in, v, err, tc.want)
		}
	}
	a, _ := policy.ParseVersion("17.4")
	b, _ := policy.ParseVersion("17.10")
	c, _ := policy.ParseVersion("18")
	if !(a < b && b < c) {
		t.Errorf("order: 17.4=%d 17.10=%d 18=%d", a, b, c)
	}
}

func TestMinimumsCheck(t *testing.T) {
	t.Parallel()
	m, err := policy.ParseMinimums(map[string]string{"ios": "17.4", "macos": "14.3", "android": "14"}, 202509)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		format string
		facts  map[string]string
		ok     bool
	}{
		{"ios/newer", "apple", map[string]string{"os": "ios", "os_version": "17.5"}, true},
		{"ios/equal", "apple", map[string]string{"os": "ios", "os_version": "17.4"}, true},
		{"ios/older", "apple", map[string]string{"os": "ios", "os_version": "17.3.1"}, false},
		{"macos/14.3", "apple", map[string]string{"os": "macos", "os_version": "14.3"}, true},
		{"macos/14.2", "apple", map[string]string{"os": "macos", "os_version": "14.2"}, false},
		{"apple/unknown-family-uses-the-higher", "apple", map[string]string{"os_version": "15.0"}, false},
		{"apple/unknown-family-high", "apple", map[string]string{"os_version": "17.4"}, true},
		{"apple/no-version", "apple", map[string]string{"os": "ios"}, false},
		{"android/ok", "android-key", map[string]string{"os_version": "140000", "os_patch_level": "202510"}, true},
		{"android/old-os", "android-key", map[string]string{"os_version": "130000", "os_patch_level": "202510"}, false},
		{"android/old-patch", "android-key", map[string]string{"os_version": "150000", "os_patch_level": "202508"}, false},
		{"android/patch-as-day", "android-key", map[string]string{"os_version": "150000", "os_patch_level": "20250905"}, true},
		{"android/no-patch", "android-key", map[string]string{"os_version": "150000"}, false},
		{"tpm/no-os-minimum", "tpm", map[string]string{"tpm_manufacturer": "id:53574D20"}, true},
	}
	for _, tc := range tests {
		err := m.Check(tc.format, tc.facts)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, policy.ErrBelowMinimum)) {
			t.Errorf("%s: Check = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if err := (policy.Minimums{}).Check("apple", nil); err != nil {
		t.Errorf("zero Minimums refused: %v", err)
	}
	for _, bad := range []struct {
		os    map[string]string
		patch int64
	}{{map[string]string{"windows": "10"}, 0}, {map[string]string{"ios": "x"}, 0}, {nil, 2025}, {nil, 202513}} {
		if _, err := policy.ParseMinimums(bad.os, bad.patch); err == nil {
			t.Errorf("ParseMinimums(%v, %d) accepted", bad.os, bad.patch)
		}
	}
}
