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
