package dynauth

import "hardbound/store/config"

// FileConfig is the radius.coa section of hardbound.yaml: how standing
// changes reach the NASes holding live sessions.
type FileConfig struct {
	// Timeout is the wait after the first try; it doubles after every try.
	Timeout config.Duration `yaml:"timeout"`
	// Retries is the number of retransmissions after the first try.
	Retries int `yaml:"retries"`
	// PreferCoA moves sessions of quarantining profiles to the quarantine
	// VLAN with a CoA-Request (falling back to Disconnect on NAK); default:
	// Disconnect-Request, which every NAS honours.
	PreferCoA bool `yaml:"prefer_coa"`
	// ReauthOnRecovery disconnects sessions when a device becomes compliant
	// or is released, so it leaves quarantine at once.
	ReauthOnRecovery bool `yaml:"reauth_on_recovery"`
}

// DefaultFileConfig is the section before the file is laid over it: the
// Sender's own defaults.
func DefaultFileConfig() FileConfig {
	return FileConfig{Timeout: config.Duration(defaultTimeout), Retries: defaultTries - 1}
}

// Validate names the field of the first bad value; path is the section's
// place in the file ("radius.coa").
func (c FileConfig) Validate(path string) error {
	if c.Retries < 0 || c.Retries > 10 {
		return config.Errorf(path+".retries", "must be 0..10")
	}
	if c.Timeout <= 0 {
		return config.Errorf(path+".timeout", "must be > 0")
	}
	return nil
}

// Sender is the section's part of SenderConfig; the caller adds the Logger
// and Metrics.
func (c FileConfig) Sender() SenderConfig {
	return SenderConfig{Tries: c.Retries + 1, Timeout: c.Timeout.D()}
}

// Enforcer is the section's part of EnforcerConfig (the enforcement
// policy); the caller wires Events, Sessions, NAS, Sender and the rest.
func (c FileConfig) Enforcer() EnforcerConfig {
	return EnforcerConfig{PreferCoA: c.PreferCoA, ReauthOnRecovery: c.ReauthOnRecovery}
}
