package node

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hardbound/posture"
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
		{"fail/unknown-key", "radius:\n  bogus: 1\n", `config: radius: unknown key "bogus"`},
		{"fail/unknown-nested-key", "radius:\n  coa: {bogus: 1}\n", `config: radius.coa: unknown key "bogus"`},
		{"fail/unknown-section", "bogus: 1\n", `config: (top level): unknown key "bogus"`},
		{"fail/unknown-client-key", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0.0/8, secert: x}\n", `config: radius.clients[0]: unknown key "secert"`},
		{"fail/bad-coa-timeout", "radius:\n  coa:\n    timeout: 30\n", `config: radius.coa.timeout: bad duration "30"`},
		{"fail/bad-duration", "radius:\n  conversation_idle_timeout: soon\n", "bad duration"},
		{"fail/negative-duration", "mdm:\n  webhook: {window: -1m}\n", "is negative"},
		// Each section is validated by its component, under its path; the
		// components' tests hold the cases of every field.
		{"fail/bad-cidr", "radius:\n  clients:\n    - {name: a, cidr: 10.0.0/33, secret: x}\n", `config: radius.clients[0].cidr: bad CIDR "10.0.0/33"`},
		{"fail/coa-retries", "radius:\n  coa: {retries: 11}\n", "config: radius.coa.retries:"},
		{"fail/unreadable-roots", "enroll:\n  apple_roots: /nonexistent.pem\n", "config: enroll.apple_roots:"},
		{"fail/zero-rate", "enroll:\n  rate_limits:\n    per_ip: {every: 1s, burst: 0}\n", "config: enroll.rate_limits.per_ip:"},
		{"fail/bad-addr", "admin:\n  addr: nonsense\n", "config: admin.addr:"},
		{"fail/bad-metrics-addr", "metrics:\n  addr: nonsense\n", "config: metrics.addr:"},
		{"fail/webhook-secret", "mdm:\n  webhook: {secret_file: /nonexistent}\n", "config: mdm.webhook.secret_file:"},
		{"fail/jamf-api", "mdm:\n  jamf: {url: \"https://jamf.example\"}\n", "config: mdm.jamf.url:"},
		{"fail/intune-incomplete", "mdm:\n  intune: {tenant_id: t}\n", "config: mdm.intune:"},
		{"ok/store-postgres", "store:\n  backend: postgres\n  postgres: {dsn: 'host=127.0.0.1 dbname=hb'}\n", ""},
		{"fail/store-backend", "store:\n  backend: sqlite\n", "config: store.backend:"},
		{"fail/store-postgres-no-dsn", "store:\n  backend: postgres\n", "config: store.postgres.dsn:"},
		{"ok/store-unavailable", "store:\n  unavailable: {grace: 5s, policy: accept_cached}\n", ""},
		{"fail/store-unavailable-policy", "store:\n  unavailable: {policy: open}\n", "config: store.unavailable.policy:"},
		{"fail/store-unavailable-grace", "store:\n  unavailable: {grace: -1s}\n", "store.unavailable.grace"},
		// The process's keys, the profiles and the checks across sections.
		{"fail/bad-log", "log:\n  format: xml\n", "log.format"},
		{"fail/empty-data-dir", "data_dir: \"\"\n", "data_dir"},
		{"fail/bad-format", "profiles:\n  - {name: p, formats: [sgx]}\n", "profiles[0].formats"},
		{"fail/quarantine-without-vlan", "profiles:\n  - {name: p, noncompliant: quarantine}\n", "profiles[0].quarantine_vlan"},
		{"fail/scep-identity", "profiles:\n  - {name: p, scep: {identity: imei}}\n", "profiles[0].scep.identity"},
		{"fail/scep-intune-unconfigured", "profiles:\n  - {name: p, scep: {intune: true}}\n", "profiles[0].scep.intune"},
		{"fail/jamf-unknown-profile", "mdm:\n  jamf: {username: u, challenge_profile: nope}\n", "mdm.jamf.challenge_profile"},
		{"ok/jamf-default-profile", "mdm:\n  jamf: {username: u, challenge_profile: default}\n", ""},
		{"fail/bad-action", "profiles:\n  - {name: p, unknown: allow}\n", "profiles[0].unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "hardbound.yaml", tc.body)
			cfg, err := LoadConfig(p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				if cfg.RADIUS.AuthAddr != "0.0.0.0:1812" {
					t.Errorf("defaults not applied: auth_addr = %q", cfg.RADIUS.AuthAddr)
				}
				for _, c := range cfg.RADIUS.Server().Clients {
					if len(c.Secret) == 0 || !c.Prefix.IsValid() {
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

// The defaults of hardbound.yaml are the components' own, as README's
// Configuration reference documents them.
func TestDefaultConfigIsTheDocumentedOne(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.RADIUS
	if r.AuthAddr != "0.0.0.0:1812" || r.AcctAddr != "0.0.0.0:1813" || r.MaxConversations != 20000 || r.MaxPerNAS != 5000 ||
		r.IdleTimeout.D() != 30*time.Second || r.TLSMaxVersion != "1.3" || !slices.Equal(r.ServerNames, []string{"localhost"}) {
		t.Errorf("radius defaults = %+v", r)
	}
	if r.CoA.Timeout.D() != time.Second || r.CoA.Retries != 3 {
		t.Errorf("radius.coa defaults = %+v", r.CoA)
	}
	e := cfg.Enroll
	if e.HTTPSAddr != "0.0.0.0:8443" || e.HTTPAddr != "0.0.0.0:8080" || !slices.Equal(e.ServerNames, []string{"localhost"}) {
		t.Errorf("enroll defaults = %+v", e)
	}
	rl := e.RateLimits
	if rl.PerDevice.Every.D() != time.Minute || rl.PerDevice.Burst != 5 || rl.PerIP.Every.D() != time.Second || rl.PerIP.Burst != 50 ||
		rl.PerProfile.Every.D() != time.Millisecond || rl.PerProfile.Burst != 1000 {
		t.Errorf("enroll.rate_limits defaults = %+v", rl)
	}
	if u := cfg.Store.Unavailable; u.Grace.D() != posture.DefaultOutageGrace || u.Policy != string(posture.OutageReject) {
		t.Errorf("store.unavailable defaults = %+v, want posture's (%s, %s)", u, posture.DefaultOutageGrace, posture.OutageReject)
	}
	if cfg.Store.Backend != "badger" {
		t.Errorf("store.backend %q, want badger: make run needs no database", cfg.Store.Backend)
	}
	if cfg.Admin.Addr != "127.0.0.1:9443" || cfg.Metrics.Addr != "127.0.0.1:9812" {
		t.Errorf("admin.addr %q, metrics.addr %q", cfg.Admin.Addr, cfg.Metrics.Addr)
	}
	if cfg.MDM.Webhook.Window.D() != 5*time.Minute || cfg.MDM.Intune.PollInterval.D() != 15*time.Minute {
		t.Errorf("mdm defaults = %+v", cfg.MDM)
	}
	if a := cfg.Audit; len(a.Sinks) != 0 || a.Checkpoint.Every != 1000 || a.Checkpoint.Interval.D() != time.Minute ||
		a.Checkpoint.KeyPath(cfg.DataDir) != "data/audit/checkpoint.key" {
		t.Errorf("audit defaults = %+v", a)
	}
	if cfg.DataDir != "./data" || cfg.Log != (LogConfig{Format: "text", Level: "info"}) {
		t.Errorf("data_dir %q, log %+v", cfg.DataDir, cfg.Log)
	}
}

func TestExampleConfigParses(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../../testdata/hardbound.example.yaml")
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
	cfg, err := LoadConfig(writeFile(t, dir, "h.yaml", body))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Audit.Sinks) != 2 || cfg.Audit.Sinks[0].Transport != "tls" || cfg.Audit.Sinks[1].Type != "http" {
		t.Errorf("audit = %+v", cfg.Audit)
	}
	if len(cfg.Profiles) != 2 || cfg.Profiles[0].Noncompliant != "quarantine" || !cfg.Profiles[0].SCEP.RequireAttestation || !cfg.RADIUS.CoA.ReauthOnRecovery {
		t.Errorf("profiles = %+v", cfg.Profiles)
	}
}
