package jamf

import (
	"slices"
	"testing"

	"hardbound/store/config"
)

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  FileConfig
		ok   bool
	}{
		{"off", FileConfig{}, true},
		{"webhooks-only", FileConfig{Username: "u", PasswordFile: "/p", NoncompliantGroups: []string{"7"}}, true},
		{"with-api", FileConfig{Username: "u", URL: "https://jamf.example", APIClientID: "id", APIClientSecretFile: "/s"}, true},
		{"url-without-client", FileConfig{URL: "https://jamf.example"}, false},
		{"client-without-url", FileConfig{APIClientID: "id", APIClientSecretFile: "/s"}, false},
		{"url-without-secret", FileConfig{URL: "https://jamf.example", APIClientID: "id"}, false},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate("mdm.jamf")
		want := "mdm.jamf.url"
		if tc.ok {
			want = ""
		}
		if err := config.MatchField(err, want); err != nil {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
	}
}

func TestFileConfigMapsOntoTheHandlerAndAPI(t *testing.T) {
	t.Parallel()
	c := FileConfig{Username: "u", NoncompliantGroups: []string{"7", "Unpatched"}, URL: "https://jamf.example", APIClientID: "id"}
	h := c.Handler("pw")
	if h.Username != "u" || h.Password != "pw" || !slices.Equal(h.NoncompliantGroups, c.NoncompliantGroups) {
		t.Errorf("Handler() = %+v", h)
	}
	if a := c.API("s"); a.BaseURL != c.URL || a.ClientID != "id" || a.ClientSecret != "s" {
		t.Errorf("API() = %+v", a)
	}
}
