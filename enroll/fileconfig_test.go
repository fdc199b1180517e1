package enroll_test

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/enroll"
	"hardbound/enroll/ca"
	"hardbound/enroll/limit"
	"hardbound/store/config"
)

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		body      string
		wantField string // empty: valid
	}{
		{"ok/defaults", "", ""},
		{"ok/roots", "apple_roots: " + roots + "\ntpm_roots: " + roots + "\nandroid_roots: " + roots + "\n", ""},
		{"ok/listeners-off", "https_addr: \"\"\nhttp_addr: \"\"\n", ""},
		{"ok/rate", "rate_limits:\n  per_ip: {every: 2s, burst: 10}\n", ""},
		{"fail/https-addr", "https_addr: nonsense\n", "enroll.https_addr"},
		{"fail/http-addr", "http_addr: \"8080\"\n", "enroll.http_addr"},
		{"fail/unreadable-roots", "apple_roots: /nonexistent.pem\n", "enroll.apple_roots"},
		{"fail/unreadable-tpm-roots", "tpm_roots: /nonexistent.pem\n", "enroll.tpm_roots"},
		{"fail/unreadable-android-roots", "android_roots: /nonexistent.pem\n", "enroll.android_roots"},
		{"ok/tpm-chain", "tpm_roots: " + roots + "\ntpm_intermediates: " + roots + "\ntpm_ak_roots: " + roots + "\ncertify_tpm_aks: false\n", ""},
		{"fail/unreadable-tpm-intermediates", "tpm_intermediates: /nonexistent.pem\n", "enroll.tpm_intermediates"},
		{"fail/unreadable-tpm-ak-roots", "tpm_ak_roots: /nonexistent.pem\n", "enroll.tpm_ak_roots"},
		{"fail/zero-rate", "rate_limits:\n  per_ip: {every: 1s, burst: 0}\n", "enroll.rate_limits.per_ip"},
		{"fail/zero-every", "rate_limits:\n  per_device: {every: 0s, burst: 1}\n", "enroll.rate_limits.per_device"},
		{"fail/zero-profile", "rate_limits:\n  per_profile: {burst: 0}\n", "enroll.rate_limits.per_profile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := enroll.DefaultFileConfig()
			dec := yaml.NewDecoder(strings.NewReader(tc.body))
			dec.KnownFields(true)
			if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			err := c.Validate("enroll")
			if err := config.MatchField(err, tc.wantField); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestFileConfigUnreadableRootsWrapTheCause(t *testing.T) {
	t.Parallel()
	c := enroll.DefaultFileConfig()
	c.TPMRoots = "/nonexistent.pem"
	if err := c.Validate("enroll"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Validate = %v, want fs.ErrNotExist", err)
	}
}

func TestFileConfigLimits(t *testing.T) {
	t.Parallel()
	if got, want := enroll.DefaultFileConfig().Limits(), limit.DefaultConfig(); got != want {
		t.Errorf("default file limits %+v, limit.DefaultConfig %+v", got, want)
	}
	// The documented defaults (README, Configuration reference).
	want := limit.Config{
		PerDevice:  limit.Rate{Every: time.Minute, Burst: 5},
		PerIP:      limit.Rate{Every: time.Second, Burst: 50},
		PerProfile: limit.Rate{Every: time.Millisecond, Burst: 1000},
	}
	if got := limit.DefaultConfig(); got != want {
		t.Errorf("limit.DefaultConfig() = %+v, README says %+v", got, want)
	}
	c := enroll.FileConfig{RateLimits: enroll.RateLimits{PerIP: enroll.RateConfig{Every: config.Duration(2 * time.Second), Burst: 7}}}
	if got := c.Limits(); got.PerIP != (limit.Rate{Every: 2 * time.Second, Burst: 7}) || got.PerDevice != (limit.Rate{}) {
		t.Errorf("Limits() = %+v", got)
	}
}

// TestFileConfigNames: attested_names (and the older
// est.permanent_identifier) become the CA's per-profile Names; a profile
// that is not configured names the field.
func TestFileConfigNames(t *testing.T) {
	t.Parallel()
	profiles := []string{"default", "tpm", "apple"}
	tests := []struct {
		name, body string
		want       map[string]ca.Names
		wantField  string
	}{
		{name: "none", body: "", want: map[string]ca.Names{}},
		{name: "both", body: "attested_names:\n  permanent_identifier: [tpm]\n  hardware_module_name: [tpm, apple]\n",
			want: map[string]ca.Names{"tpm": {PermanentIdentifier: true, HardwareModuleName: true}, "apple": {HardwareModuleName: true}}},
		{name: "est spelling", body: "est:\n  permanent_identifier: [apple]\n", want: map[string]ca.Names{"apple": {PermanentIdentifier: true}}},
		{name: "unknown profile", body: "attested_names:\n  hardware_module_name: [nope]\n", wantField: "enroll.attested_names.hardware_module_name"},
		{name: "unknown profile (est)", body: "est:\n  permanent_identifier: [nope]\n", wantField: "enroll.est.permanent_identifier"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := enroll.DefaultFileConfig()
			dec := yaml.NewDecoder(strings.NewReader(tc.body))
			dec.KnownFields(true)
			if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			got, err := c.Names("enroll", profiles)
			if err := config.MatchField(err, tc.wantField); err != nil {
				t.Fatalf("Names: %v", err)
			}
			if tc.wantField == "" && !maps.Equal(got, tc.want) {
				t.Errorf("Names = %v, want %v", got, tc.want)
			}
		})
	}
}
