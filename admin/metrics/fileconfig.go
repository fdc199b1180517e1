package metrics

import "hardbound/store/config"

// FileConfig is the metrics: section of hardbound.yaml.
type FileConfig struct {
	// Addr is the plain-HTTP listener of /metrics; empty turns it off.
	Addr string `yaml:"addr"`
}

// DefaultFileConfig is the section before the file is laid over it.
func DefaultFileConfig() FileConfig { return FileConfig{Addr: "127.0.0.1:9812"} }

// Validate names the field of a bad value; path is the section's place in
// the file ("metrics").
func (c FileConfig) Validate(path string) error {
	return config.CheckAddr(path+".addr", c.Addr)
}
