package admin

import (
	"path/filepath"
	"time"

	"hardbound/store/config"
)

// FileConfig is the admin: section of hardbound.yaml.
type FileConfig struct {
	// Addr is the HTTPS listener; keep it on localhost or a management
	// network. Empty turns the API off.
	Addr string `yaml:"addr"`
	// TokenFile holds the tokens (admin/token: "name sha256hex scope=..."
	// lines, written by `hardbound token create`); defaults to
	// <data_dir>/admin.tokens.
	TokenFile string `yaml:"token_file"`
	// Console is the web console at /ui/ on the same listener.
	Console ConsoleConfig `yaml:"console"`
	// AuditVerifyInterval is how often the server verifies the audit
	// chain (from its newest signed checkpoint, or whole without
	// checkpoints) and exports the outcome (hardbound_audit_chain_ok), for
	// the alert on a broken chain; default 6h, 0 turns it off.
	AuditVerifyInterval config.Duration `yaml:"audit_verify_interval"`
}

// ConsoleConfig is admin.console: the web console (admin/ui).
type ConsoleConfig struct {
	// Enabled serves the console at /ui/ (default true; it is only ever
	// on the admin listener, behind the same tokens).
	Enabled *bool `yaml:"enabled"`
	// IdleTimeout ends a console session not used for this long
	// (default 15m, 1m..24h).
	IdleTimeout config.Duration `yaml:"idle_timeout"`
}

// On reports whether the console is served.
func (c ConsoleConfig) On() bool { return c.Enabled == nil || *c.Enabled }

// DefaultFileConfig is the section before the file is laid over it.
func DefaultFileConfig() FileConfig {
	return FileConfig{Addr: "127.0.0.1:9443", Console: ConsoleConfig{IdleTimeout: config.Duration(15 * time.Minute)},
		AuditVerifyInterval: config.Duration(6 * time.Hour)}
}

// Validate names the field of a bad value; path is the section's place in
// the file ("admin").
func (c FileConfig) Validate(path string) error {
	if err := config.CheckAddr(path+".addr", c.Addr); err != nil {
		return err
	}
	if d := c.Console.IdleTimeout.D(); d != 0 && (d < time.Minute || d > 24*time.Hour) {
		return config.Errorf(path+".console.idle_timeout", "must be between 1m and 24h, not %s", d)
	}
	if d := c.AuditVerifyInterval.D(); d != 0 && d < time.Minute {
		return config.Errorf(path+".audit_verify_interval", "must be 0 (off) or at least 1m, not %s", d)
	}
	return nil
}

// TokenPath is the token file: token_file, or admin.tokens in dataDir.
func (c FileConfig) TokenPath(dataDir string) string {
	if c.TokenFile != "" {
		return c.TokenFile
	}
	return filepath.Join(dataDir, "admin.tokens")
}

// Tokens loads the token file (LoadTokens) at TokenPath.
func (c FileConfig) Tokens(dataDir string) ([]Token, error) {
	return LoadTokens(c.TokenPath(dataDir))
}
