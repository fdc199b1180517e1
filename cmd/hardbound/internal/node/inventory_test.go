package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInventoryProfileKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "hardbound.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write(`
profiles:
  - name: corp
    require_inventory: false
    min_os: {ios: "17.4", macos: "14.3"}
    min_patch_level: 202509
  - name: eng
enroll:
  android:
    status_list: "off"
`))
	if err != nil {
		t.Fatal(err)
	}
	corp, eng := cfg.Profiles[0], cfg.Profiles[1]
	if corp.requireInventory() || !eng.requireInventory() {
		t.Errorf("require_inventory: corp %v eng %v, want false and the default true", corp.requireInventory(), eng.requireInventory())
	}
	if a := corp.acmeView(); a.RequireInventory || a.Minimums.PatchLevel != 202509 || a.Minimums.OS["ios"].String() != "17.4.0" || a.Minimums.OS["apple"].String() != "17.4.0" {
		t.Errorf("acme view %+v", a)
	}
	if p := corp.postureView(); p.Minimums.OS["macos"].String() != "14.3.0" {
		t.Errorf("posture view %+v", p)
	}
	if d := (&Config{}).effectiveProfiles()[0]; !d.requireInventory() {
		t.Error("the built-in default profile does not require inventory")
	}
	for body, field := range map[string]string{
		"profiles:\n  - name: p\n    min_os: {windows: \"10\"}\n":        "profiles[0].min_os",
		"profiles:\n  - name: p\n    min_patch_level: 2025\n":            "profiles[0].min_os",
		"mdm:\n  intune:\n    inventory:\n      default_profile: nope\n": "mdm.intune.inventory",
		"mdm:\n  jamf:\n    inventory:\n      enabled: true\n":           "mdm.jamf.inventory.enabled",
		"enroll:\n  android:\n    status_unavailable: sometimes\n":       "enroll.android.status_unavailable",
	} {
		_, err := LoadConfig(write(body))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", body, err, field)
		}
	}
}
