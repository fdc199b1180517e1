package est

import (
	"crypto/x509"
	"os"
	"slices"

	"hardbound/store/config"
)

// FileConfig is the enroll.est section of hardbound.yaml. The profiles
// are the configured ones; this section says what EST adds to them.
type FileConfig struct {
	// Enabled mounts /.well-known/est/ on the enrollment HTTPS listener,
	// which then asks TLS clients for a certificate (optional: only
	// simplereenroll uses it). Default true.
	Enabled bool `yaml:"enabled"`
	// RevokeOnRenew revokes a renewed certificate (superseded) once the new
	// one is recorded, so only one certificate per device authenticates.
	// Default true.
	RevokeOnRenew bool `yaml:"revoke_on_renew"`
	// RequireAttestation lists the profiles whose EST certificates must be
	// for a key with a verified attestation (the TPM activation flow, which
	// binds the challenge to the attested key), at enrollment and at every
	// renewal with a new key.
	RequireAttestation []string `yaml:"require_attestation"`
	// PermanentIdentifier is the older spelling of
	// enroll.attested_names.permanent_identifier (docs/cert-extensions.md):
	// the profiles listed here get the RFC 4043 permanentIdentifier SAN
	// for attested keys, whichever protocol issues.
	PermanentIdentifier []string `yaml:"permanent_identifier"`
	// RequireChannelBinding lists the profiles whose CSRs must carry the
	// TLS channel binding in their challengePassword (RFC 7030 §3.5:
	// tls-unique on TLS 1.2, tls-exporter on TLS 1.3). Default none: the
	// binding is checked whenever a CSR has a challengePassword, but
	// clients that cannot read their own TLS session (curl with openssl
	// CSRs) could not enroll at all if it were required everywhere.
	RequireChannelBinding []string `yaml:"require_channel_binding"`
	// BootstrapRoots is a PEM bundle of manufacturer CAs whose device
	// certificates (IDevIDs) authenticate a first enrollment instead of a
	// challenge (BootstrapIntermediates: their intermediates). Empty: none.
	BootstrapRoots         string `yaml:"bootstrap_roots"`
	BootstrapIntermediates string `yaml:"bootstrap_intermediates"`
}

// Pools loads the bootstrap bundles; nil pools when unset.
func (c FileConfig) Pools(path string) (roots, inter *x509.CertPool, err error) {
	load := func(field, file string) (*x509.CertPool, error) {
		if file == "" {
			return nil, nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, config.Errorf(path+"."+field, "%w", err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			return nil, config.Errorf(path+"."+field, "no PEM certificate in %s", file)
		}
		return p, nil
	}
	if roots, err = load("bootstrap_roots", c.BootstrapRoots); err != nil {
		return nil, nil, err
	}
	if inter, err = load("bootstrap_intermediates", c.BootstrapIntermediates); err != nil {
		return nil, nil, err
	}
	if roots == nil && inter != nil {
		return nil, nil, config.Errorf(path+".bootstrap_intermediates", "set without bootstrap_roots")
	}
	return roots, inter, nil
}

// DefaultFileConfig is the section before the file is laid over it.
func DefaultFileConfig() FileConfig { return FileConfig{Enabled: true, RevokeOnRenew: true} }

// Validate checks the section; profiles are the configured profile names.
func (c FileConfig) Validate(path string, profiles []string) error {
	for field, list := range map[string][]string{"require_attestation": c.RequireAttestation, "permanent_identifier": c.PermanentIdentifier,
		"require_channel_binding": c.RequireChannelBinding} {
		for _, p := range list {
			if !slices.Contains(profiles, p) {
				return config.Errorf(path+"."+field, "profile %q is not configured", p)
			}
		}
	}
	return nil
}
