package attest

import (
	"strings"
	"time"

	"hardbound/store/config"
)

// AndroidFileConfig is the enroll.android section of hardbound.yaml: the
// Android policy knobs and where the attestation status list (revocation)
// comes from (docs/attestation.md). The list itself is read by
// enroll/attest/statuslist; this package does no I/O.
type AndroidFileConfig struct {
	// StatusList is a file path or an https:// URL; empty is Google's
	// list (https://android.googleapis.com/attestation/status), "off" turns
	// the revocation check off (WARNING: leaked attestation keys are then
	// accepted).
	StatusList string `yaml:"status_list"`
	// StatusRefresh is how often the list is read (default 1h);
	// StatusMaxAge how old the last good list may be before Android
	// attestations are refused (default 48h).
	StatusRefresh config.Duration `yaml:"status_refresh"`
	StatusMaxAge  config.Duration `yaml:"status_max_age"`
	// StatusUnavailable is what happens while the list cannot be had:
	// reject (default, fail closed) or accept (WARNING: fail open).
	StatusUnavailable string `yaml:"status_unavailable"`
	// WARNING: accepts devices whose bootloader is unlocked.
	AllowUnlockedBootloader bool `yaml:"allow_unlocked_bootloader"`
	// WARNING: accepts verifiedBootState SelfSigned (custom OS images).
	AllowSelfSignedBoot bool `yaml:"allow_self_signed_boot"`
	// MinOSPatchLevel (YYYYMM) applies to every Android attestation;
	// profiles can require more (min_patch_level).
	MinOSPatchLevel int64 `yaml:"min_os_patch_level"`
}

// GoogleStatusURL is where Google publishes the attestation status list.
const GoogleStatusURL = "https://android.googleapis.com/attestation/status"

// StatusListOff is the status_list value that turns revocation off.
const StatusListOff = "off"

// Validate names the field of a bad value; path is the section's place in
// the file ("enroll.android").
func (c AndroidFileConfig) Validate(path string) error {
	if s := c.StatusList; s != "" && s != StatusListOff && strings.Contains(s, "://") && !strings.HasPrefix(s, "https://") {
		return config.Errorf(path+".status_list", "must be a file path, an https:// URL or %q", StatusListOff)
	}
	switch c.StatusUnavailable {
	case "", "reject", "accept":
	default:
		return config.Errorf(path+".status_unavailable", "must be reject or accept, not %q", c.StatusUnavailable)
	}
	if c.StatusRefresh < 0 || (c.StatusRefresh > 0 && c.StatusRefresh.D() < time.Minute) {
		return config.Errorf(path+".status_refresh", "must be at least 1m")
	}
	if c.StatusMaxAge < 0 || (c.StatusMaxAge > 0 && c.StatusMaxAge < c.StatusRefresh) {
		return config.Errorf(path+".status_max_age", "must be at least status_refresh")
	}
	if p := c.MinOSPatchLevel; p != 0 && (p < 200001 || p > 999912 || p%100 == 0 || p%100 > 12) {
		return config.Errorf(path+".min_os_patch_level", "%d is not YYYYMM", p)
	}
	return nil
}

// Policy is the section's AndroidPolicy.
func (c AndroidFileConfig) Policy() AndroidPolicy {
	return AndroidPolicy{AllowUnlockedBootloader: c.AllowUnlockedBootloader, AllowSelfSignedBoot: c.AllowSelfSignedBoot,
		MinOSPatchLevel: c.MinOSPatchLevel}
}

// StatusSource is where the list comes from: Google's URL for an empty
// value, "" when the check is off.
func (c AndroidFileConfig) StatusSource() string {
	switch c.StatusList {
	case "":
		return GoogleStatusURL
	case StatusListOff:
		return ""
	}
	return c.StatusList
}
