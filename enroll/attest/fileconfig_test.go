package attest_test

import (
	"errors"
	"testing"
	"time"

	"hardbound/enroll/attest"
	"hardbound/store/config"
)

func TestAndroidFileConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		c      attest.AndroidFileConfig
		field  string
		source string
	}{
		{"ok/default-is-google", attest.AndroidFileConfig{}, "", attest.GoogleStatusURL},
		{"ok/off", attest.AndroidFileConfig{StatusList: "off"}, "", ""},
		{"ok/file", attest.AndroidFileConfig{StatusList: "/etc/hardbound/status.json", StatusUnavailable: "accept"}, "", "/etc/hardbound/status.json"},
		{"ok/url", attest.AndroidFileConfig{StatusList: "https://mirror.example.com/status", StatusRefresh: config.Duration(time.Hour), StatusMaxAge: config.Duration(24 * time.Hour)}, "", "https://mirror.example.com/status"},
		{"fail/http", attest.AndroidFileConfig{StatusList: "http://mirror.example.com/status"}, "enroll.android.status_list", ""},
		{"fail/unavailable", attest.AndroidFileConfig{StatusUnavailable: "maybe"}, "enroll.android.status_unavailable", ""},
		{"fail/refresh", attest.AndroidFileConfig{StatusRefresh: config.Duration(time.Second)}, "enroll.android.status_refresh", ""},
		{"fail/max-age", attest.AndroidFileConfig{StatusRefresh: config.Duration(time.Hour), StatusMaxAge: config.Duration(time.Minute)}, "enroll.android.status_max_age", ""},
		{"fail/patch", attest.AndroidFileConfig{MinOSPatchLevel: 2025}, "enroll.android.min_os_patch_level", ""},
	}
	for _, tc := range tests {
		err := tc.c.Validate("enroll.android")
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if got := tc.c.StatusSource(); got != tc.source {
				t.Errorf("%s: StatusSource = %q, want %q", tc.name, got, tc.source)
			}
			continue
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a field error on %s", tc.name, err, tc.field)
		}
	}
}
