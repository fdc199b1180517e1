// Package policy is the vocabulary every layer shares about a profile: the
// attestation format names (the values of store.Attestation.Format and of a
// profile's formats), the name of the default profile, and the rules a
// profile name and a format list obey. posture (authorization), enroll/*
// (enrollment) and cmd/hardbound (configuration) each keep their own view
// of a profile; the words and the rules are defined here, once.
//
// It imports nothing of hardbound, so any package may import it.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultProfile is the profile of bindings and requests that name none,
// and the one profile configured when the configuration lists none.
const DefaultProfile = "default"

// NASProfile is the profile of NAS certificates (radius/radsec): a NAS's
// identity for RADIUS/TLS, never a device's credential, so no device
// profile may take the name and posture admits no device by it.
const NASProfile = "nas"

// Attestation formats: the ACME attObj "fmt" values hardbound verifies
// (draft-ietf-acme-device-attest), and FormatNone.
const (
	FormatApple      = "apple"
	FormatTPM        = "tpm"
	FormatAndroidKey = "android-key"
	// FormatNone in a profile's formats admits certificates without
	// hardware attestation (SCEP, migration). WARNING: it reopens the "key
	// in a file" gap; use it only for migration profiles.
	FormatNone = "none"
)

// HardwareFormats returns the hardware attestation formats, in a new slice
// the caller may keep.
func HardwareFormats() []string {
	return []string{FormatApple, FormatTPM, FormatAndroidKey}
}

// IsHardware reports whether format is a hardware attestation format.
func IsHardware(format string) bool {
	switch format {
	case FormatApple, FormatTPM, FormatAndroidKey:
		return true
	}
	return false
}

// Known reports whether format may appear in a profile's formats.
func Known(format string) bool { return IsHardware(format) || format == FormatNone }

// Sentinel errors, matched with errors.Is.
var (
	ErrUnknownFormat = errors.New("policy: unknown attestation format")
	ErrProfileName   = errors.New("policy: bad profile name")
)

// Formats lists the attestation formats a profile admits. Empty admits
// every hardware format; FormatNone in the list also admits unattested
// certificates.
type Formats []string

// Check returns an error wrapping ErrUnknownFormat for the first format
// that is not Known.
func (fs Formats) Check() error {
	for _, f := range fs {
		if !Known(f) {
			return fmt.Errorf("%w %q (%s, %s)", ErrUnknownFormat, f, strings.Join(HardwareFormats(), ", "), FormatNone)
		}
	}
	return nil
}

// Admits reports whether a key attested in format is admitted: format is
// listed, or the list is empty and format is a hardware format. It does not
// allocate: posture.Decide calls it on every authentication.
func (fs Formats) Admits(format string) bool {
	if len(fs) == 0 {
		return IsHardware(format)
	}
	return slices.Contains(fs, format)
}

// AdmitsUnattested reports whether FormatNone is listed.
func (fs Formats) AdmitsUnattested() bool { return slices.Contains(fs, FormatNone) }

// CheckName returns an error wrapping ErrProfileName unless name can be a
// profile's name: non-empty and usable as one URL path segment as is
// (/acme/profile/<name>/directory, /scep/<name>), so none of "/?#%" or a
// space.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrProfileName)
	}
	if name == NASProfile {
		return fmt.Errorf("%w %q: reserved for NAS certificates", ErrProfileName, name)
	}
	if strings.ContainsAny(name, "/?#% ") {
		return fmt.Errorf("%w %q: must not contain '/', '?', '#', '%%' or a space", ErrProfileName, name)
	}
	return nil
}
