package ocsp

import (
	"net/url"
	"time"

	"hardbound/store/config"
)

// FileConfig is the enroll.ocsp section of hardbound.yaml.
type FileConfig struct {
	// Enabled mounts /ocsp on both enrollment listeners (default true).
	Enabled bool `yaml:"enabled"`
	// URL is the responder's address as relying parties reach it, put in
	// the AIA extension of issued device certificates, e.g.
	// "http://enroll.example.com:8080/ocsp" (plain HTTP: OCSP clients
	// fetch it over http, RFC 5019 §5). Empty: no AIA.
	URL string `yaml:"url"`
	// Validity is nextUpdate - thisUpdate (default 10m), Refresh how long
	// a signed answer is reused (default 1m), SignerValidity the delegated
	// signing certificate's lifetime (default 48h, rotated at half).
	Validity       config.Duration `yaml:"validity"`
	Refresh        config.Duration `yaml:"refresh"`
	SignerValidity config.Duration `yaml:"signer_validity"`
	// Posture makes answers follow the authentication decision (default
	// true): quarantined, noncompliant or stale devices answer
	// revoked/certificateHold. PostureProfiles restricts that to some
	// profiles (empty: all).
	Posture         bool     `yaml:"posture"`
	PostureProfiles []string `yaml:"posture_profiles"`
	// CRLHolds puts the holds of quarantined and noncompliant devices on
	// the CRL too (reason certificateHold), for relying parties that only
	// read CRLs. Default false.
	CRLHolds bool `yaml:"crl_holds"`
}

// DefaultFileConfig is the section before the file is laid over it.
func DefaultFileConfig() FileConfig {
	return FileConfig{
		Enabled:        true,
		Validity:       config.Duration(10 * time.Minute),
		Refresh:        config.Duration(time.Minute),
		SignerValidity: config.Duration(48 * time.Hour),
		Posture:        true,
	}
}

// Validate checks every field; path is the section's place ("enroll.ocsp").
func (c FileConfig) Validate(path string) error {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return config.Errorf(path+".url", "must be an absolute http(s) URL")
		}
	}
	if c.Validity <= 0 {
		return config.Errorf(path+".validity", "must be > 0")
	}
	if c.Refresh <= 0 || c.Refresh > c.Validity {
		return config.Errorf(path+".refresh", "must be > 0 and at most validity")
	}
	if c.SignerValidity < 4*c.Validity {
		return config.Errorf(path+".signer_validity", "must be at least 4x validity")
	}
	return nil
}

// Config is the responder's Config from the section.
func (c FileConfig) Config() Config {
	return Config{Validity: c.Validity.D(), Refresh: c.Refresh.D(), SignerValidity: c.SignerValidity.D(),
		Posture: c.Posture, PostureProfiles: c.PostureProfiles}
}
