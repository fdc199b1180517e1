package dynauth

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/store/config"
)

func TestFileConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantField string // empty: valid
	}{
		{"defaults", "", ""},
		{"no-retransmission", "retries: 0", ""},
		{"ten-retries", "retries: 10", ""},
		{"negative-retries", "retries: -1", "radius.coa.retries"},
		{"too-many-retries", "retries: 11", "radius.coa.retries"},
		{"zero-timeout", "timeout: 0s", "radius.coa.timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultFileConfig()
			if err := yaml.Unmarshal([]byte(tc.body), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate("radius.coa")
			if err := config.MatchField(err, tc.wantField); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestFileConfigDefaultsAreTheSenders(t *testing.T) {
	t.Parallel()
	got := DefaultFileConfig().Sender()
	s := NewSender(SenderConfig{})
	if got.Tries != s.cfg.Tries || got.Timeout != s.cfg.Timeout {
		t.Errorf("file defaults: %d tries, timeout %v; Sender defaults: %d tries, timeout %v", got.Tries, got.Timeout, s.cfg.Tries, s.cfg.Timeout)
	}
}

func TestFileConfigMapsOntoTheSenderAndEnforcer(t *testing.T) {
	t.Parallel()
	c := FileConfig{Timeout: config.Duration(500 * time.Millisecond), Retries: 2, PreferCoA: true, ReauthOnRecovery: true}
	if s := c.Sender(); s.Tries != 3 || s.Timeout != 500*time.Millisecond {
		t.Errorf("Sender() = %d tries, timeout %v; want 3 tries, 500ms", s.Tries, s.Timeout)
	}
	if e := c.Enforcer(); !e.PreferCoA || !e.ReauthOnRecovery {
		t.Errorf("Enforcer() = %+v, want PreferCoA and ReauthOnRecovery", e)
	}
	if s := (FileConfig{Timeout: config.Duration(time.Second)}).Sender(); s.Tries != 1 {
		t.Errorf("retries 0: %d tries, want 1", s.Tries)
	}
}
