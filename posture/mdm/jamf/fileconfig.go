package jamf

import "hardbound/store/config"

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
}

// Validate names the field of a bad value; path is the section's place in
// the file ("mdm.jamf").
func (c FileConfig) Validate(path string) error {
	if (c.URL != "") != (c.APIClientID != "" && c.APIClientSecretFile != "") {
		return config.Errorf(path+".url", "url, api_client_id and api_client_secret_file go together")
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
