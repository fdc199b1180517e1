package intune

import "hardbound/store/config"

// FileConfig is the mdm.intune section of hardbound.yaml: the Entra
// application that polls compliance (and validates SCEP challenges), on
// when TenantID is set. The client secret stays in its file, read by whoever
// builds the poller.
type FileConfig struct {
	TenantID         string          `yaml:"tenant_id"`
	ClientID         string          `yaml:"client_id"`
	ClientSecretFile string          `yaml:"client_secret_file"`
	PollInterval     config.Duration `yaml:"poll_interval"`
	// GraphURL and LoginURL: empty is the public cloud.
	GraphURL string `yaml:"graph_url"`
	LoginURL string `yaml:"login_url"`
}

// DefaultFileConfig is the section before the file is laid over it.
func DefaultFileConfig() FileConfig {
	return FileConfig{PollInterval: config.Duration(DefaultInterval)}
}

// Validate names the field of a bad value; path is the section's place in
// the file ("mdm.intune").
func (c FileConfig) Validate(path string) error {
	if c.TenantID != "" && (c.ClientID == "" || c.ClientSecretFile == "") {
		return config.Errorf(path, "tenant_id, client_id and client_secret_file go together")
	}
	return nil
}

// Poller is the section's part of the poller's Config, with clientSecret
// read from ClientSecretFile; the caller sets Refresh and wires Updater,
// Metrics and Logger.
func (c FileConfig) Poller(clientSecret string) Config {
	return Config{TenantID: c.TenantID, ClientID: c.ClientID, ClientSecret: clientSecret,
		LoginURL: c.LoginURL, GraphURL: c.GraphURL, Interval: c.PollInterval.D()}
}
