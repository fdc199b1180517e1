package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ETokens: the first admin token is made offline on a stopped data
// dir and works once the server runs; a read token made through the API
// reads but its write is refused with 403 and an audit event naming it;
// the offline command refuses a data dir a server holds.
func TestE2ETokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cli := func(args ...string) cliResult {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
		return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
	}
	if r := cli("ca", "init", "--data-dir", dataDir); r.code != 0 {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	opsFile := filepath.Join(dir, "ops.token")
	r := cli("token", "create", "ops", "--scope", "admin", "--data-dir", dataDir, "--out", opsFile)
	if r.code != 0 || !strings.Contains(r.stderr, "written to "+opsFile) {
		t.Fatalf("offline token create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("token", "create", "ops", "--scope", "admin", "--data-dir", dataDir); r.code != 1 || !strings.Contains(r.stderr, "already in use") {
		t.Fatalf("second token named ops: exit %d %q", r.code, r.stderr)
	}
	if r := cli("token", "create", "x", "--scope", "root", "--data-dir", dataDir); r.code != 1 || !strings.Contains(r.stderr, "scope") {
		t.Fatalf("bad scope: exit %d %q", r.code, r.stderr)
	}
	if r := cli("token", "list", "--data-dir", dataDir); r.code != 0 || !strings.Contains(r.stdout, "ops") || !strings.Contains(r.stdout, "never") {
		t.Fatalf("offline token list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dataDir, "admin.tokens"))
	v, _ := os.ReadFile(opsFile)
	if len(v) < 20 || bytes.Contains(b, bytes.TrimSpace(v)) {
		t.Fatal("the token file holds the token's value")
	}

	cfgPath := filepath.Join(dir, "hardbound.yaml")
	cfg := "data_dir: " + dataDir + "\n" + strings.Replace(e2eServeConfig, "radius:\n",
		"radius:\n  clients:\n    - {name: sw1, cidr: 127.0.0.1/32, secret: e2e-token-secret}\n", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serveArgs(t, []string{"serve", "--config", cfgPath}, dataDir, false, func(banner string) {
		m := bannerAdmin.FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("no admin address in the banner:\n%s", banner)
		}
		base := []string{"--server", "https://" + m[1], "--ca-file", filepath.Join(dataDir, "ca", "root.crt")}
		as := func(tokenFile string, args ...string) cliResult {
			return cli(append(append(append([]string{}, base...), "--token-file", tokenFile), args...)...)
		}
		if r := as(opsFile, "device", "list"); r.code != 0 {
			t.Fatalf("device list with the offline-made token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r := as(opsFile, "token", "create", "ro", "--scope", "read", "--expires", "30d")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "hb_") || !strings.Contains(r.stderr, "shown this once") {
			t.Fatalf("token create over the API: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		roFile := writeSecret(t, "ro.token", strings.TrimSpace(r.stdout))
		if r := as(roFile, "device", "list"); r.code != 0 {
			t.Fatalf("device list with a read token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = as(roFile, "device", "quarantine", "some-device")
		if r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") || !strings.Contains(r.stderr, "read token may not write") {
			t.Fatalf("quarantine with a read token: exit %d %q", r.code, r.stderr)
		}
		r = as(opsFile, "audit", "tail", "-n", "5", "--json")
		if r.code != 0 || !strings.Contains(r.stdout, `"admin:ro"`) || !strings.Contains(r.stdout, `"reason": "scope"`) ||
			!strings.Contains(r.stdout, "POST /api/v1/devices/some-device/quarantine") {
			t.Fatalf("the refused write is not audited with the token's name:\n%s%s", r.stdout, r.stderr)
		}
		if r := as(opsFile, "token", "list"); r.code != 0 || !strings.Contains(r.stdout, "ro") || !strings.Contains(r.stdout, "read") {
			t.Fatalf("token list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// The server holds the data dir: the offline path refuses it.
		if r := cli("token", "create", "late", "--scope", "read", "--data-dir", dataDir); r.code != 1 || !strings.Contains(r.stderr, "server running") {
			t.Fatalf("offline create on a running server's data dir: exit %d %q", r.code, r.stderr)
		}
		if r := as(opsFile, "token", "revoke", "ro"); r.code != 0 {
			t.Fatalf("revoke: exit %d %q", r.code, r.stderr)
		}
		if r := as(roFile, "device", "list"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 401") {
			t.Fatalf("revoked token: exit %d %q", r.code, r.stderr)
		}
	})
	// Stopped again: the offline audit event lands in the same chain.
	if r := cli("token", "revoke", "ops", "--data-dir", dataDir); r.code != 0 {
		t.Fatalf("offline revoke: exit %d %q", r.code, r.stderr)
	}
}
