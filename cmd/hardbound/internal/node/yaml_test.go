package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/store/config"
)

// A configuration written out as YAML loads back the same: the end-to-end
// tests write their configuration files this way.
func TestConfigRoundTripsThroughYAML(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.Profiles = []ProfileConfig{{Name: "default"}, {Name: "fresh", PostureMaxAge: config.Duration(90 * time.Second),
		Noncompliant: "quarantine", QuarantineVLAN: "666", Formats: []string{"apple", "none"}}}
	c.RADIUS.AuthAddr = "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "hardbound.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("LoadConfig of its own YAML: %v\n%s", err, b)
	}
	// Compared as YAML: an empty list and a missing one are the same file.
	again, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(b) {
		t.Errorf("round trip changed the configuration:\n got  %s\n want %s", again, b)
	}
	if got.Profiles[1].PostureMaxAge.D() != 90*time.Second || got.RADIUS.AuthAddr != "127.0.0.1:0" {
		t.Errorf("values lost: %+v", got.Profiles[1])
	}
}
