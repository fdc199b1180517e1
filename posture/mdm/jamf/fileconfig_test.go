package jamf

import (
	"slices"
	"testing"
	"time"

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

func TestInventoryFileConfig(t *testing.T) {
	t.Parallel()
	api := FileConfig{URL: "https://jamf.example", APIClientID: "id", APIClientSecretFile: "/s"}
	with := func(inv InventoryFileConfig) FileConfig { c := api; c.Inventory = inv; return c }
	tests := []struct {
		name  string
		cfg   FileConfig
		field string
	}{
		{"ok/off", FileConfig{}, ""},
		{"ok/on", with(InventoryFileConfig{Enabled: true, Interval: config.Duration(time.Hour), GroupProfiles: []GroupProfile{{Group: "Eng", Profile: "eng"}}}), ""},
		{"fail/on-without-api", FileConfig{Inventory: InventoryFileConfig{Enabled: true}}, "mdm.jamf.inventory.enabled"},
		{"fail/interval", with(InventoryFileConfig{Enabled: true, Interval: config.Duration(time.Second)}), "mdm.jamf.inventory.interval"},
		{"fail/min-gap", with(InventoryFileConfig{Enabled: true, MinGap: config.Duration(time.Millisecond)}), "mdm.jamf.inventory.min_gap"},
		{"fail/group-without-profile", with(InventoryFileConfig{Enabled: true, GroupProfiles: []GroupProfile{{Group: "Eng"}}}), "mdm.jamf.inventory.group_profiles[0]"},
	}
	for _, tc := range tests {
		if err := config.MatchField(tc.cfg.Validate("mdm.jamf"), tc.field); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	inv := InventoryFileConfig{DefaultProfile: "corp", MobileProfile: "phones", GroupProfiles: []GroupProfile{{Group: "Eng", Profile: "eng"}}}
	if got := inv.Profiles(); !slices.Equal(got, []string{"corp", "phones", "eng"}) {
		t.Errorf("Profiles() = %q", got)
	}
	if l := inv.Lister(); l.DefaultProfile != "corp" || l.MobileProfile != "phones" || len(l.GroupProfiles) != 1 {
		t.Errorf("Lister() = %+v", l)
	}
}
