package intune

import (
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
		{"off", DefaultFileConfig(), true},
		{"complete", FileConfig{TenantID: "t", ClientID: "c", ClientSecretFile: "/s"}, true},
		{"no-client", FileConfig{TenantID: "t", ClientSecretFile: "/s"}, false},
		{"no-secret", FileConfig{TenantID: "t", ClientID: "c"}, false},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate("mdm.intune")
		want := "mdm.intune"
		if tc.ok {
			want = ""
		}
		if err := config.MatchField(err, want); err != nil {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
	}
}

func TestFileConfigPoller(t *testing.T) {
	t.Parallel()
	if got := DefaultFileConfig().Poller("").Interval; got != DefaultInterval {
		t.Errorf("default poll interval %v, want the poller's %v", got, DefaultInterval)
	}
	c := FileConfig{TenantID: "t", ClientID: "c", PollInterval: config.Duration(time.Minute), GraphURL: "https://g", LoginURL: "https://l"}
	p := c.Poller("s")
	if p.TenantID != "t" || p.ClientID != "c" || p.ClientSecret != "s" || p.Interval != time.Minute || p.GraphURL != "https://g" || p.LoginURL != "https://l" {
		t.Errorf("Poller() = %+v", p)
	}
}

func TestInventoryFileConfig(t *testing.T) {
	t.Parallel()
	app := FileConfig{TenantID: "t", ClientID: "c", ClientSecretFile: "/s"}
	with := func(inv InventoryFileConfig) FileConfig { c := app; c.Inventory = inv; return c }
	tests := []struct {
		name  string
		cfg   FileConfig
		field string
	}{
		{"ok/on", with(InventoryFileConfig{Enabled: true, CategoryProfiles: []CategoryProfile{{Category: "Kiosk", Profile: "kiosk"}}}), ""},
		{"fail/on-without-app", FileConfig{Inventory: InventoryFileConfig{Enabled: true}}, "mdm.intune.inventory.enabled"},
		{"fail/interval", with(InventoryFileConfig{Enabled: true, Interval: config.Duration(time.Second)}), "mdm.intune.inventory.interval"},
		{"fail/category-without-profile", with(InventoryFileConfig{Enabled: true, CategoryProfiles: []CategoryProfile{{Category: "Kiosk"}}}), "mdm.intune.inventory.category_profiles[0]"},
	}
	for _, tc := range tests {
		if err := config.MatchField(tc.cfg.Validate("mdm.intune"), tc.field); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	inv := InventoryFileConfig{DefaultProfile: "corp", CategoryProfiles: []CategoryProfile{{Category: "Kiosk", Profile: "kiosk"}}}
	if got := inv.Profiles(); len(got) != 2 || got[0] != "corp" || got[1] != "kiosk" {
		t.Errorf("Profiles() = %q", got)
	}
}
