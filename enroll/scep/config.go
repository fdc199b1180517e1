package scep

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"hardbound/enroll/gate"
	"hardbound/store/policy"
)

// DefaultMaxBodyBytes caps a PKIOperation body (POST) or message (GET).
// Intune challenge blobs make CSRs a few KiB; 256 KiB is far above that.
const DefaultMaxBodyBytes = 256 << 10

// IdentitySource says where a profile reads the device identity in a CSR.
type IdentitySource string

const (
	// IdentityCN reads the subject commonName (the default; Jamf profiles
	// usually template it as $SERIALNUMBER or $UDID).
	IdentityCN IdentitySource = "cn"
	// IdentitySerial reads the subject serialNumber attribute (2.5.4.5).
	IdentitySerial IdentitySource = "serial"
	// IdentitySANURI reads the SAN URI that starts with Identity.URIPrefix,
	// e.g. "IntuneDeviceId://" for Intune profiles; the rest is the identity.
	IdentitySANURI IdentitySource = "san_uri"
)

// Identity configures how a profile derives the device from a CSR.
type Identity struct {
	Source IdentitySource
	// URIPrefix selects the SAN URI for IdentitySANURI (case-insensitive).
	URIPrefix string
	// Alias, if set, is the store alias kind of the identity ("serial",
	// "udid", "intune_id"): an existing device with that alias is the one
	// enrolled, and new devices get the alias recorded.
	Alias string
}

// Profile is one SCEP enrollment profile. The zero value of every security
// knob is the strict one.
type Profile struct {
	Name string
	// Validity of issued certificates; zero means ca.DefaultValidity.
	Validity time.Duration
	// Platform is recorded on new devices (apple, windows, android, linux).
	Platform string
	Identity Identity
	// StaticChallenge, if non-empty, is accepted as challengePassword for
	// any device of this profile (constant-time compare). Certificates
	// issued this way are always recorded Attested=false.
	//
	// WARNING: a static challenge is a shared secret; whoever learns it can
	// enroll any device identity. Use minted one-time challenges instead.
	StaticChallenge string
	// Validator, if set, validates challenges the store does not know
	// (Intune's encrypted challenge blobs) before issuing.
	Validator Validator
	// Formats are the attestation formats the profile admits at
	// authentication (posture's view of the same profile): issuance
	// mirrors that decision, so a certificate the profile would reject
	// (unattested without policy.FormatNone, or attested in a format not
	// listed) is never issued. Empty admits every hardware format and no
	// unattested key.
	Formats policy.Formats
	// RequireAttestation refuses issuance unless the CSR key is attested
	// (by a challenge bound to a verified attestation, or an attestation
	// of that key in the store), even when Formats lists
	// policy.FormatNone.
	RequireAttestation bool
}

// Config configures a Handler. CA, Store, RA and at least one profile are required.
type Config struct {
	CA    CA
	Store Store
	RA    *RA
	// Profiles are selected by the last URL path segment (/scep/<name>), by
	// a minted challenge's Profile, or else DefaultProfile.
	Profiles       []Profile
	DefaultProfile string // default: Profiles[0].Name
	Limiter        Limiter
	Metrics        Metrics
	Logger         *slog.Logger
	Now            func() time.Time
	MaxBodyBytes   int64 // default DefaultMaxBodyBytes
	// Gate, if set, is the issuance gate (enroll/gate, docs/inventory.md):
	// inventory record, the record's profile, format vs platform. nil
	// issues without it.
	Gate Gate
}

// Gate is the issuance gate (*gate.Gate satisfies it).
type Gate interface {
	Admit(ctx context.Context, r gate.Request) (*gate.Decision, error)
}

func (c *Config) validate() error {
	if c.CA == nil || c.Store == nil || c.RA == nil {
		return fmt.Errorf("%w: CA, Store and RA are required", ErrConfig)
	}
	if len(c.Profiles) == 0 {
		return fmt.Errorf("%w: at least one profile is required", ErrConfig)
	}
	seen := make(map[string]bool, len(c.Profiles))
	for i, p := range c.Profiles {
		if err := policy.CheckName(p.Name); err != nil {
			return fmt.Errorf("%w: profiles[%d].name: %w", ErrConfig, i, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: profiles[%d].name: duplicate %q", ErrConfig, i, p.Name)
		}
		seen[p.Name] = true
		if p.Validity < 0 {
			return fmt.Errorf("%w: profiles[%d].validity: must not be negative", ErrConfig, i)
		}
		if err := p.Identity.Check(); err != nil {
			return fmt.Errorf("%w: profiles[%d].identity: %v", ErrConfig, i, err)
		}
		if err := p.Formats.Check(); err != nil {
			return fmt.Errorf("%w: profiles[%d].formats: %w", ErrConfig, i, err)
		}
	}
	if c.DefaultProfile != "" && !seen[c.DefaultProfile] {
		return fmt.Errorf("%w: default_profile: no profile named %q", ErrConfig, c.DefaultProfile)
	}
	return nil
}

// Check reports whether id can be used: a known source, and a URI prefix
// for IdentitySANURI. Its errors name the source as configured, so that a
// configuration loader can report them under its own field names.
func (id Identity) Check() error {
	switch id.Source {
	case "", IdentityCN, IdentitySerial:
		return nil
	case IdentitySANURI:
		if id.URIPrefix == "" {
			return fmt.Errorf("%s needs a uri_prefix", IdentitySANURI)
		}
		return nil
	}
	return fmt.Errorf("unknown source %q (%s, %s or %s)", id.Source, IdentityCN, IdentitySerial, IdentitySANURI)
}

// identity extracts the device identity from csr according to id.
func (id Identity) extract(csr *x509.CertificateRequest) (string, bool) {
	var v string
	switch id.Source {
	case "", IdentityCN:
		v = csr.Subject.CommonName
	case IdentitySerial:
		v = csr.Subject.SerialNumber
	case IdentitySANURI:
		prefix := strings.ToLower(id.URIPrefix)
		for _, u := range csr.URIs {
			s := u.String()
			if len(s) > len(prefix) && strings.ToLower(s[:len(prefix)]) == prefix {
				v = s[len(prefix):]
				break
			}
		}
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 256 {
		return "", false
	}
	return v, true
}
