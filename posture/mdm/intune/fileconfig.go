package intune

import (
	"fmt"
	"time"

	"hardbound/store/config"
)

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
	// Inventory syncs Intune's managed devices into hardbound's inventory
	// (docs/inventory.md) with the same application.
	Inventory InventoryFileConfig `yaml:"inventory"`
}

// InventoryFileConfig is mdm.intune.inventory.
type InventoryFileConfig struct {
	Enabled bool `yaml:"enabled"`
	// Interval between full syncs (default 1h).
	Interval         config.Duration   `yaml:"interval"`
	DefaultProfile   string            `yaml:"default_profile"`
	CategoryProfiles []CategoryProfile `yaml:"category_profiles"`
}

// Profiles lists every profile the section names.
func (c InventoryFileConfig) Profiles() []string {
	var out []string
	if c.DefaultProfile != "" {
		out = append(out, c.DefaultProfile)
	}
	for _, cp := range c.CategoryProfiles {
		out = append(out, cp.Profile)
	}
	return out
}

// Lister is the section's InventoryConfig.
func (c InventoryFileConfig) Lister() InventoryConfig {
	return InventoryConfig{DefaultProfile: c.DefaultProfile, CategoryProfiles: c.CategoryProfiles}
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
	if c.Inventory.Enabled && c.TenantID == "" {
		return config.Errorf(path+".inventory.enabled", "needs tenant_id, client_id and client_secret_file")
	}
	if c.Inventory.Interval < 0 || (c.Inventory.Interval > 0 && c.Inventory.Interval.D() < time.Minute) {
		return config.Errorf(path+".inventory.interval", "must be at least 1m")
	}
	for i, cp := range c.Inventory.CategoryProfiles {
		if cp.Category == "" || cp.Profile == "" {
			return config.Errorf(fmt.Sprintf("%s.inventory.category_profiles[%d]", path, i), "category and profile are required")
		}
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
