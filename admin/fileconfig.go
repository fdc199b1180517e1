package admin

import (
	"path/filepath"

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
}

// DefaultFileConfig is the section before the file is laid over it.
func DefaultFileConfig() FileConfig { return FileConfig{Addr: "127.0.0.1:9443"} }

// Validate names the field of a bad value; path is the section's place in
// the file ("admin").
func (c FileConfig) Validate(path string) error {
	return config.CheckAddr(path+".addr", c.Addr)
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
