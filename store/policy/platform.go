package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Platforms: the values of a device record's platform. An inventory names
// the operating system; PlatformApple is an Apple device whose OS family
// is not known (older records, imports that say only "apple").
const (
	PlatformIOS     = "ios"
	PlatformMacOS   = "macos"
	PlatformApple   = "apple"
	PlatformAndroid = "android"
	PlatformWindows = "windows"
	PlatformLinux   = "linux"
)

// ErrPlatform is wrapped by errors about a platform name or a platform that
// does not match an attestation format.
var ErrPlatform = errors.New("policy: platform")

// Platforms returns every platform name, in a new slice.
func Platforms() []string {
	return []string{PlatformIOS, PlatformMacOS, PlatformApple, PlatformAndroid, PlatformWindows, PlatformLinux}
}

// NormalizePlatform maps the spellings MDMs and spreadsheets use
// ("iOS", "iPadOS", "Mac", "Windows 11"...) onto a platform name, or
// returns an error wrapping ErrPlatform.
func NormalizePlatform(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch {
	case v == PlatformIOS, v == "ipados", v == "iphone", v == "ipad", v == "iphoneos", v == "tvos", v == "watchos", v == "visionos":
		return PlatformIOS, nil
	case v == PlatformMacOS, v == "mac", v == "osx", v == "mac os x", v == "macintosh", v == "computer":
		return PlatformMacOS, nil
	case v == PlatformApple:
		return PlatformApple, nil
	case v == PlatformAndroid, strings.HasPrefix(v, "android"):
		return PlatformAndroid, nil
	case v == PlatformWindows, strings.HasPrefix(v, "windows"):
		return PlatformWindows, nil
	case v == PlatformLinux:
		return PlatformLinux, nil
	}
	return "", fmt.Errorf("%w %q: must be one of %s", ErrPlatform, s, strings.Join(Platforms(), ", "))
}

// PlatformFormat is the hardware attestation format a platform's devices
// attest with: apple for iOS and macOS, android-key for Android, tpm for
// Windows and Linux; "" for an unknown platform.
func PlatformFormat(platform string) string {
	switch platform {
	case PlatformIOS, PlatformMacOS, PlatformApple:
		return FormatApple
	case PlatformAndroid:
		return FormatAndroidKey
	case PlatformWindows, PlatformLinux:
		return FormatTPM
	}
	return ""
}

// CheckPlatformFormat returns nil when a device of platform may present an
// attestation of format: the platform is empty (not yet known), or the
// format is the platform's (PlatformFormat). Otherwise an error wrapping
// ErrPlatform: an Android attestation naming a Mac's serial is not the Mac.
func CheckPlatformFormat(platform, format string) error {
	if platform == "" {
		return nil
	}
	want := PlatformFormat(platform)
	if want == "" {
		return fmt.Errorf("%w %q is not a known platform", ErrPlatform, platform)
	}
	if want != format {
		return fmt.Errorf("%w: a %s device attests with %s, not %s", ErrPlatform, platform, want, format)
	}
	return nil
}

// Version is an OS version packed for comparison without allocation:
// major<<32 | minor<<16 | patch. The zero Version is "unknown".
type Version uint64

// ErrVersion is wrapped by ParseVersion's errors.
var ErrVersion = errors.New("policy: bad version")

// ParseVersion reads "17", "17.4" or "17.4.1" (missing parts are zero).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) == 0 || len(parts) > 3 || parts[0] == "" {
		return 0, fmt.Errorf("%w %q: want major[.minor[.patch]]", ErrVersion, s)
	}
	var v Version
	for i := 0; i < 3; i++ {
		var n uint64
		if i < len(parts) {
			var err error
			if n, err = strconv.ParseUint(parts[i], 10, 16); err != nil {
				return 0, fmt.Errorf("%w %q: part %q is not a number below 65536", ErrVersion, s, parts[i])
			}
		}
		v = v<<16 | Version(n)
	}
	if v == 0 {
		return 0, fmt.Errorf("%w %q: version 0 is not a minimum", ErrVersion, s)
	}
	return v, nil
}

// String formats v as major.minor.patch.
func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v>>32, (v>>16)&0xffff, v&0xffff)
}

// AttestedOS is the OS family and version an attestation's verified facts
// state (store.Attestation.Facts, as enroll/attest writes them). The family
// is "ios" or "macos" for Apple (facts["os"]), "android" for Android; TPM
// evidence states no OS. ok is false when the facts carry no version.
func AttestedOS(format string, facts map[string]string) (family string, v Version, ok bool) {
	switch format {
	case FormatApple:
		family = facts["os"]
		if family == "" {
			family = PlatformApple
		}
		v, err := ParseVersion(facts["os_version"])
		return family, v, err == nil
	case FormatAndroidKey:
		// KeyMint's osVersion is MMmmss as one integer (140000 = 14.0.0).
		n, err := strconv.ParseUint(facts["os_version"], 10, 32)
		if err != nil || n == 0 {
			return PlatformAndroid, 0, false
		}
		return PlatformAndroid, Version(n/10000)<<32 | Version(n/100%100)<<16 | Version(n%100), true
	}
	return "", 0, false
}

// AttestedPatchLevel is Android's hardware-enforced osPatchLevel (YYYYMM),
// or false when the facts carry none.
func AttestedPatchLevel(format string, facts map[string]string) (int64, bool) {
	if format != FormatAndroidKey {
		return 0, false
	}
	n, err := strconv.ParseInt(facts["os_patch_level"], 10, 64)
	return n, err == nil && n > 0
}

// ErrBelowMinimum is wrapped when attested facts are below a profile's
// minimums.
var ErrBelowMinimum = errors.New("policy: attested facts below the profile's minimum")

// Minimums are what a profile requires of the verified facts of a device's
// attestation. The zero value requires nothing.
type Minimums struct {
	// OS is the lowest OS version per family (ios, macos, android). A
	// family not listed has no minimum. "apple" applies to an Apple device
	// whose family the evidence does not state, and defaults to the higher
	// of ios and macos.
	OS map[string]Version
	// PatchLevel is the lowest Android osPatchLevel (YYYYMM); 0: none.
	PatchLevel int64
}

// ParseMinimums builds Minimums from configuration: min_os family ->
// version, min_patch_level YYYYMM.
func ParseMinimums(minOS map[string]string, patchLevel int64) (Minimums, error) {
	m := Minimums{PatchLevel: patchLevel}
	if patchLevel != 0 && (patchLevel < 200001 || patchLevel > 999912 || patchLevel%100 == 0 || patchLevel%100 > 12) {
		return m, fmt.Errorf("%w: min_patch_level %d is not YYYYMM", ErrVersion, patchLevel)
	}
	for fam, s := range minOS {
		switch fam {
		case PlatformIOS, PlatformMacOS, PlatformAndroid, PlatformApple:
		default:
			return m, fmt.Errorf("%w: min_os key %q: must be ios, macos, apple or android", ErrPlatform, fam)
		}
		v, err := ParseVersion(s)
		if err != nil {
			return m, fmt.Errorf("min_os.%s: %w", fam, err)
		}
		if m.OS == nil {
			m.OS = map[string]Version{}
		}
		m.OS[fam] = v
	}
	if _, set := m.OS[PlatformApple]; !set && (m.OS[PlatformIOS] != 0 || m.OS[PlatformMacOS] != 0) {
		m.OS[PlatformApple] = max(m.OS[PlatformIOS], m.OS[PlatformMacOS])
	}
	return m, nil
}

// IsZero reports whether m requires nothing.
func (m Minimums) IsZero() bool { return len(m.OS) == 0 && m.PatchLevel == 0 }

// Check returns nil when an attestation of format with facts meets m, and
// otherwise an error wrapping ErrBelowMinimum that says which fact. A
// minimum that applies to evidence lacking the fact fails: the device must
// prove it, not merely not disprove it.
func (m Minimums) Check(format string, facts map[string]string) error {
	if m.IsZero() {
		return nil
	}
	if fam, v, ok := AttestedOS(format, facts); fam != "" {
		if min := m.OS[fam]; min != 0 {
			if !ok {
				return fmt.Errorf("%w: min_os %s %s, and the attestation states no OS version", ErrBelowMinimum, fam, min)
			}
			if v < min {
				return fmt.Errorf("%w: attested %s %s is below min_os %s", ErrBelowMinimum, fam, v, min)
			}
		}
	}
	if m.PatchLevel > 0 && format == FormatAndroidKey {
		pl, ok := AttestedPatchLevel(format, facts)
		if !ok {
			return fmt.Errorf("%w: min_patch_level %d, and the attestation states no patch level", ErrBelowMinimum, m.PatchLevel)
		}
		// Some devices state YYYYMMDD; compare by month.
		if pl > 999912 {
			pl /= 100
		}
		if pl < m.PatchLevel {
			return fmt.Errorf("%w: attested patch level %d is below min_patch_level %d", ErrBelowMinimum, pl, m.PatchLevel)
		}
	}
	return nil
}
