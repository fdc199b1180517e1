package jamf

import (
	"fmt"
	"time"

	"hardbound/store/config"
)

// FileConfig is the mdm.jamf section of hardbound.yaml. Secrets stay in
// files, read by whoever builds the handler and the API client.
type FileConfig struct {
	// Username/PasswordFile are the Basic credentials Jamf uses for the
	// dynamic-challenge URL and for its webhooks.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// URL and an API client (Jamf Pro 10.49+, "Read Computers") let
	// hardbound confirm every webhook against the Jamf Pro API (optional).
	URL                 string `yaml:"url"`
	APIClientID         string `yaml:"api_client_id"`
	APIClientSecretFile string `yaml:"api_client_secret_file"`
	// NoncompliantGroups are smart groups whose members are noncompliant.
	NoncompliantGroups []string `yaml:"noncompliant_groups"`
	// ChallengeProfile is the enrollment profile of dynamic SCEP challenges;
	// that it names a profile is checked where the profiles are known.
	ChallengeProfile string `yaml:"challenge_profile"`
	// Inventory syncs Jamf's managed devices into hardbound's inventory
	// (docs/inventory.md); it needs url and the API client ("Read
	// Computers", and "Read Mobile Devices" with mobile_devices).
	Inventory InventoryFileConfig `yaml:"inventory"`
}

// InventoryFileConfig is mdm.jamf.inventory.
type InventoryFileConfig struct {
	Enabled bool `yaml:"enabled"`
	// Interval between full syncs (default 1h); webhooks hint sooner, but
	// at most once per MinGap (default 30s).
	Interval config.Duration `yaml:"interval"`
	MinGap   config.Duration `yaml:"min_gap"`
	// DefaultProfile, GroupProfiles, MobileDevices, MobileProfile: see
	// InventoryConfig. That the profiles exist is checked where the
	// profiles are known.
	DefaultProfile string         `yaml:"default_profile"`
	GroupProfiles  []GroupProfile `yaml:"group_profiles"`
	MobileDevices  bool           `yaml:"mobile_devices"`
	MobileProfile  string         `yaml:"mobile_profile"`
}

// Profiles lists every profile the section names.
func (c InventoryFileConfig) Profiles() []string {
	var out []string
	for _, p := range append([]string{c.DefaultProfile, c.MobileProfile}, groupProfiles(c.GroupProfiles)...) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func groupProfiles(gs []GroupProfile) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Profile
	}
	return out
}

// Lister is the section's InventoryConfig.
func (c InventoryFileConfig) Lister() InventoryConfig {
	return InventoryConfig{DefaultProfile: c.DefaultProfile, GroupProfiles: c.GroupProfiles, MobileDevices: c.MobileDevices, MobileProfile: c.MobileProfile}
}

// Validate names the field of a bad value; path is the section's place in
// the file ("mdm.jamf").
func (c FileConfig) Validate(path string) error {
	if (c.URL != "") != (c.APIClientID != "" && c.APIClientSecretFile != "") {
		return config.Errorf(path+".url", "url, api_client_id and api_client_secret_file go together")
	}
	if c.Inventory.Enabled && c.URL == "" {
		return config.Errorf(path+".inventory.enabled", "needs url, api_client_id and api_client_secret_file")
	}
	if c.Inventory.Interval < 0 || (c.Inventory.Interval > 0 && c.Inventory.Interval.D() < time.Minute) {
		return config.Errorf(path+".inventory.interval", "must be at least 1m")
	}
	if c.Inventory.MinGap < 0 || (c.Inventory.MinGap > 0 && c.Inventory.MinGap.D() < time.Second) {
		return config.Errorf(path+".inventory.min_gap", "must be at least 1s")
	}
	for i, g := range c.Inventory.GroupProfiles {
		if g.Group == "" || g.Profile == "" {
			return config.Errorf(fmt.Sprintf("%s.inventory.group_profiles[%d]", path, i), "group and profile are required")
		}
	}
	return nil
}

// Handler is the section's part of the webhook handler's Config, with
// password read from PasswordFile; the caller wires Lookup, Updater,
// Auditor, Metrics and Logger.
func (c FileConfig) Handler(password string) Config {
	return Config{Username: c.Username, Password: password, NoncompliantGroups: c.NoncompliantGroups}
}

// API is the API client's configuration, with clientSecret read from
// APIClientSecretFile.
func (c FileConfig) API(clientSecret string) APIConfig {
	return APIConfig{BaseURL: c.URL, ClientID: c.APIClientID, ClientSecret: clientSecret}
}
