package node

import (
	"slices"
	"testing"
)

// TestReloadClassification: of the keys a new file changes, the run-time
// settings are applied (profiles matched by name) and everything else is
// reported as needing a restart and keeps its running value.
func TestReloadClassification(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := `data_dir: ` + dir + `
radius:
  auth_addr: 127.0.0.1:1812
profiles:
  - name: default
  - name: phones
    min_os: {ios: "17.0"}
`
	tests := []struct {
		name             string
		file             string
		applied, restart []string
	}{
		{"nothing", base, nil, nil},
		{"min_os and posture", base + `    min_patch_level: 202509
    posture_max_age: 24h
    noncompliant: quarantine
    quarantine_vlan: "666"
`, []string{"profiles[phones].min_patch_level", "profiles[phones].noncompliant", "profiles[phones].posture_max_age", "profiles[phones].quarantine_vlan"}, nil},
		{"android knobs", base + `enroll:
  android:
    allow_unlocked_bootloader: true
    status_unavailable: accept
`, []string{"enroll.android.allow_unlocked_bootloader", "enroll.android.status_unavailable"}, nil},
		{"listener, validity and formats", `data_dir: ` + dir + `
radius:
  auth_addr: 127.0.0.1:11812
profiles:
  - name: default
  - name: phones
    min_os: {ios: "17.4"}
    validity: 720h
    formats: [apple]
`, []string{"profiles[phones].min_os.ios"}, []string{"profiles[phones].formats", "profiles[phones].validity", "radius.auth_addr"}},
		{"a new profile", base + `  - name: lab
    min_os: {macos: "14.0"}
`, nil, []string{"profiles"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cur, err := LoadConfig(writeFile(t, t.TempDir(), "cur.yaml", base))
			if err != nil {
				t.Fatal(err)
			}
			next, err := LoadConfig(writeFile(t, t.TempDir(), "next.yaml", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			restart, err := changedKeys(cur.withoutReloadable(), next.withoutReloadable())
			if err != nil {
				t.Fatal(err)
			}
			merged := cur.clone()
			copyReloadable(merged, next)
			applied, err := changedKeys(cur, merged)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(applied, tc.applied) || !slices.Equal(restart, tc.restart) {
				t.Fatalf("applied %q restart %q, want %q and %q", applied, restart, tc.applied, tc.restart)
			}
			// What needs a restart keeps its running value.
			if again, _ := changedKeys(cur.withoutReloadable(), merged.withoutReloadable()); len(again) != 0 {
				t.Fatalf("the merged configuration changed restart-only keys: %q", again)
			}
			if cur.Profiles[1].MinOS["ios"] != "17.0" {
				t.Fatal("the merge wrote the running configuration")
			}
		})
	}
}
