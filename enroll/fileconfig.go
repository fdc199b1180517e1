package enroll

import (
	"crypto/x509"
	"os"
	"slices"

	"hardbound/enroll/attest"
	"hardbound/enroll/ca"
	"hardbound/enroll/est"
	"hardbound/enroll/limit"
	"hardbound/enroll/ocsp"
	"hardbound/store/config"
)

// FileConfig is the enroll: section of hardbound.yaml. DefaultFileConfig is
// laid under the file; Validate names the field of every bad value.
type FileConfig struct {
	HTTPSAddr   string   `yaml:"https_addr"`
	HTTPAddr    string   `yaml:"http_addr"`
	ServerNames []string `yaml:"server_names"`
	// Roots: PEM bundles replacing the built-in vendor roots.
	AppleRoots string `yaml:"apple_roots"`
	// TPMRoots are the TPM manufacturers' EK root CAs (there is no
	// built-in one); TPMIntermediates their intermediate CAs, which many
	// EK certificates name only through AIA (never fetched).
	TPMRoots         string `yaml:"tpm_roots"`
	TPMIntermediates string `yaml:"tpm_intermediates"`
	// TPMAKRoots are other attestation CAs whose AK certificates ACME
	// "tpm" statements may carry (hardbound's own is trusted through
	// CertifyTPMAKs).
	TPMAKRoots   string `yaml:"tpm_ak_roots"`
	AndroidRoots string `yaml:"android_roots"`
	// CertifyTPMAKs makes hardbound the attestation CA of the TPMs whose
	// EK chains to TPMRoots: after credential activation
	// (/tpm-ak/attest, /tpm-ak/secret, the step CLI's
	// --attestation-ca-url) the issuing CA certifies the AK, and ACME "tpm"
	// statements verify to it. Default true; it does nothing without
	// TPMRoots.
	CertifyTPMAKs bool       `yaml:"certify_tpm_aks"`
	RateLimits    RateLimits `yaml:"rate_limits"`
	// OCSP is the responder at /ocsp (enroll/ocsp, docs/ocsp.md).
	OCSP ocsp.FileConfig `yaml:"ocsp"`
	// EST is RFC 7030 under /.well-known/est/ (enroll/est, docs/est.md).
	EST est.FileConfig `yaml:"est"`
	// Android is the Android policy and attestation status list.
	Android attest.AndroidFileConfig `yaml:"android"`
	// AttestedNames says which profiles' certificates for attested keys
	// name the attested facts in their subjectAltName, whichever protocol
	// (ACME, SCEP, EST) issues them (docs/cert-extensions.md).
	AttestedNames AttestedNames `yaml:"attested_names"`
}

// AttestedNames is enroll.attested_names: lists of profile names.
type AttestedNames struct {
	// PermanentIdentifier: the device id as an RFC 4043
	// permanentIdentifier otherName.
	PermanentIdentifier []string `yaml:"permanent_identifier"`
	// HardwareModuleName: an RFC 4108 hardwareModuleName otherName (hwType
	// by attestation format, hwSerialNum the module serial the evidence
	// proved) for keys attested in hardware.
	HardwareModuleName []string `yaml:"hardware_module_name"`
}

// Names is the CA's per-profile view (ca.WithNames) of attested_names
// and of the older enroll.est.permanent_identifier; every listed profile
// must be one of profiles.
func (c FileConfig) Names(path string, profiles []string) (map[string]ca.Names, error) {
	out := map[string]ca.Names{}
	for _, l := range []struct {
		field string
		list  []string
		set   func(*ca.Names)
	}{
		{path + ".attested_names.permanent_identifier", c.AttestedNames.PermanentIdentifier, func(n *ca.Names) { n.PermanentIdentifier = true }},
		{path + ".est.permanent_identifier", c.EST.PermanentIdentifier, func(n *ca.Names) { n.PermanentIdentifier = true }},
		{path + ".attested_names.hardware_module_name", c.AttestedNames.HardwareModuleName, func(n *ca.Names) { n.HardwareModuleName = true }},
	} {
		for _, p := range l.list {
			if !slices.Contains(profiles, p) {
				return nil, config.Errorf(l.field, "profile %q is not configured", p)
			}
			n := out[p]
			l.set(&n)
			out[p] = n
		}
	}
	return out, nil
}

// RateLimits is enroll.rate_limits: the token buckets of limit.Config.
type RateLimits struct {
	PerDevice  RateConfig `yaml:"per_device"`
	PerIP      RateConfig `yaml:"per_ip"`
	PerProfile RateConfig `yaml:"per_profile"`
}

// RateConfig is one bucket: a token every Every, up to Burst saved.
type RateConfig struct {
	Every config.Duration `yaml:"every"`
	Burst int             `yaml:"burst"`
}

// DefaultFileConfig is the section before the file is laid over it; the
// rate limits are limit.DefaultConfig.
func DefaultFileConfig() FileConfig {
	d := limit.DefaultConfig()
	rate := func(r limit.Rate) RateConfig { return RateConfig{Every: config.Duration(r.Every), Burst: r.Burst} }
	return FileConfig{
		HTTPSAddr:     "0.0.0.0:8443",
		HTTPAddr:      "0.0.0.0:8080",
		ServerNames:   []string{"localhost"},
		CertifyTPMAKs: true,
		RateLimits:    RateLimits{PerDevice: rate(d.PerDevice), PerIP: rate(d.PerIP), PerProfile: rate(d.PerProfile)},
		OCSP:          ocsp.DefaultFileConfig(),
		EST:           est.DefaultFileConfig(),
	}
}

// Validate checks every field; the root bundles must be readable (they are
// parsed when the attestation verifier is built). path is the section's
// place in the file ("enroll"); errors are *config.FieldError.
func (c FileConfig) Validate(path string) error {
	if err := config.CheckAddr(path+".https_addr", c.HTTPSAddr); err != nil {
		return err
	}
	if err := config.CheckAddr(path+".http_addr", c.HTTPAddr); err != nil {
		return err
	}
	for _, f := range []struct{ name, path string }{
		{"apple_roots", c.AppleRoots}, {"tpm_roots", c.TPMRoots}, {"tpm_intermediates", c.TPMIntermediates},
		{"tpm_ak_roots", c.TPMAKRoots}, {"android_roots", c.AndroidRoots},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return config.Errorf(path+"."+f.name, "%w", err)
		}
	}
	if err := c.Android.Validate(path + ".android"); err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		RateConfig
	}{
		{"per_device", c.RateLimits.PerDevice}, {"per_ip", c.RateLimits.PerIP}, {"per_profile", c.RateLimits.PerProfile},
	} {
		if r.Every <= 0 || r.Burst <= 0 {
			return config.Errorf(path+".rate_limits."+r.name, "every and burst must be > 0")
		}
	}
	return c.OCSP.Validate(path + ".ocsp")
}

// Limits is the limiter's Config from the section.
func (c FileConfig) Limits() limit.Config {
	rate := func(r RateConfig) limit.Rate { return limit.Rate{Every: r.Every.D(), Burst: r.Burst} }
	return limit.Config{
		PerDevice:  rate(c.RateLimits.PerDevice),
		PerIP:      rate(c.RateLimits.PerIP),
		PerProfile: rate(c.RateLimits.PerProfile),
	}
}

// AttestRoots loads the configured root bundles. A bundle left unset stays
// nil, and the verifier then uses its built-in vendor roots (none for TPM).
// path is the section's place in the file ("enroll").
func (c FileConfig) AttestRoots(path string) (attest.Roots, error) {
	var r attest.Roots
	for _, f := range []struct {
		name, file string
		pool       **x509.CertPool
	}{
		{"apple_roots", c.AppleRoots, &r.Apple}, {"tpm_roots", c.TPMRoots, &r.TPM},
		{"tpm_intermediates", c.TPMIntermediates, &r.TPMIntermediates}, {"tpm_ak_roots", c.TPMAKRoots, &r.TPMAK},
		{"android_roots", c.AndroidRoots, &r.Android},
	} {
		if f.file == "" {
			continue
		}
		b, err := os.ReadFile(f.file)
		if err != nil {
			return r, config.Errorf(path+"."+f.name, "%w", err)
		}
		if *f.pool, err = attest.PoolFromPEM(b); err != nil {
			return r, config.Errorf(path+"."+f.name, "%w", err)
		}
	}
	return r, nil
}
