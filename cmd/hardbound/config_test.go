package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := writeFile(t, dir, "secret", "s3cret\n")
	tests := []struct {
		name    string
		body    string
		wantErr string // substring naming the field; empty means ok
	}{
		{"ok/empty", "", ""},
		{"ok/client", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0.0/8, secret_file: " + secret + "}\n", ""},
		{"ok/single-address", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0.1, secret: x}\n", ""},
		{"fail/unknown-key", "radius:\n  bogus: 1\n", "field bogus not found"},
		{"fail/bad-cidr", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0/33, secret: x}\n", "radius.clients[0].cidr"},
		{"fail/empty-secret", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0.0/8}\n", "radius.clients[0].secret"},
		{"fail/unreadable-secret", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0.0/8, secret_file: /nonexistent}\n", "radius.clients[0].secret_file"},
		{"fail/duplicate-client", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0.0/8, secret: x}\n    - {name: a, cidr: 10.0.0.0/8, secret: y}\n", "radius.clients[1].name"},
		{"fail/bad-duration", "radius:\n  conversation_idle_timeout: soon\n", "bad duration"},
		{"ok/audit-sync", "radius:\n  audit_flush: 2ms\n  audit_sync: true\n", ""},
		{"ok/chain-cache-off", "radius:\n  chain_cache: -1\n", ""},
		{"fail/chain-cache-negative", "radius:\n  chain_cache: -5\n", "radius.chain_cache"},
		{"fail/audit-flush-too-long", "radius:\n  audit_flush: 5s\n", "radius.audit_flush"},
		{"fail/bad-tls", "radius:\n  tls_max_version: \"1.1\"\n", "radius.tls_max_version"},
		{"fail/bad-addr", "admin:\n  addr: nonsense\n", "admin.addr"},
		{"fail/unreadable-roots", "enroll:\n  apple_roots: /nonexistent.pem\n", "enroll.apple_roots"},
		{"fail/bad-format", "profiles:\n  - {name: p, formats: [sgx]}\n", "profiles[0].formats"},
		{"fail/quarantine-without-vlan", "profiles:\n  - {name: p, noncompliant: quarantine}\n", "profiles[0].quarantine_vlan"},
		{"fail/scep-identity", "profiles:\n  - {name: p, scep: {identity: imei}}\n", "profiles[0].scep.identity"},
		{"fail/scep-intune-unconfigured", "profiles:\n  - {name: p, scep: {intune: true}}\n", "profiles[0].scep.intune"},
		{"fail/jamf-unknown-profile", "mdm:\n  jamf: {username: u, challenge_profile: nope}\n", "mdm.jamf.challenge_profile"},
		{"ok/jamf-default-profile", "mdm:\n  jamf: {username: u, challenge_profile: default}\n", ""},
		{"fail/bad-action", "profiles:\n  - {name: p, unknown: allow}\n", "profiles[0].unknown"},
		{"fail/bad-log", "log:\n  format: xml\n", "log.format"},
		{"fail/zero-rate", "enroll:\n  rate_limits:\n    per_ip: {every: 1s, burst: 0}\n", "enroll.rate_limits.per_ip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "hardbound.yaml", tc.body)
			cfg, err := loadConfig(p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				if cfg.RADIUS.AuthAddr != "0.0.0.0:1812" {
					t.Errorf("defaults not applied: auth_addr = %q", cfg.RADIUS.AuthAddr)
				}
				for _, c := range cfg.RADIUS.Clients {
					if len(c.secret) == 0 || !c.prefix.IsValid() || c.CoAPort != 3799 {
						t.Errorf("client %s not resolved: %+v", c.Name, c)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("loadConfig error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestExampleConfigParses(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../testdata/hardbound.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example names secret files that exist only on a real host; point
	// them at a temp file so everything else is validated.
	dir := t.TempDir()
	s := writeFile(t, dir, "secret", "x")
	body := strings.NewReplacer(
		"/etc/hardbound/secrets/wlc-hq", s, "/etc/hardbound/secrets/switches", s,
		"/etc/hardbound/secrets/webhook", s).Replace(string(b))
	cfg, err := loadConfig(writeFile(t, dir, "h.yaml", body))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Profiles) != 2 || cfg.Profiles[0].Noncompliant != "quarantine" || !cfg.Profiles[0].SCEP.RequireAttestation || !cfg.RADIUS.CoA.ReauthOnRecovery {
		t.Errorf("profiles = %+v", cfg.Profiles)
	}
}
