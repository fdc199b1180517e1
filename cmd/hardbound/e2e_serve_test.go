package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/devbind"
	"hardbound/store"
)

// e2eServeConfig puts every listener on an ephemeral 127.0.0.1 port.
const e2eServeConfig = `radius:
  auth_addr: 127.0.0.1:0
  acct_addr: 127.0.0.1:0
enroll:
  https_addr: 127.0.0.1:0
  http_addr: 127.0.0.1:0
admin:
  addr: 127.0.0.1:0
metrics:
  addr: 127.0.0.1:0
`

var bannerAdmin = regexp.MustCompile(`(?m)^\s+admin\s+(127\.0\.0\.1:\d+)\s`)

// serveOnce runs `hardbound serve --dev` through run(), waits for the
// banner, lets check talk to the running server, then cancels the context
// and requires a clean exit.
func serveOnce(t *testing.T, dataDir, cfgPath string, check func(banner string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--dev", "--config", cfgPath, "--data-dir", dataDir},
			func(string) string { return "" }, strings.NewReader(""), stdout, stderr)
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stdout.String(), "CA root:") {
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before printing its banner\nstdout: %s\nstderr: %s", c, stdout, stderr)
		case <-deadline:
			t.Fatalf("no banner after 30s\nstdout: %s\nstderr: %s", stdout, stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	banner := stdout.String()
	for _, want := range []string{"hardbound", "running, data in " + dataDir, "radius-auth", "radius-acct", "enroll-https", "enroll-http", "admin", "metrics", "dev mode:"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, ":0 ") {
		t.Errorf("banner shows an unbound :0 address:\n%s", banner)
	}
	check(banner)
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("serve exited %d after cancel\nstderr: %s", c, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of the context ending")
	}
}

// TestE2EServeDevRestart: serve --dev creates its data dir, serves, stops
// on cancel, and a second start reuses the CA and the admin token.
func TestE2EServeDevRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "hardbound.yaml")
	if err := os.WriteFile(cfgPath, []byte(e2eServeConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The banner's admin address answers the CLI with the dev token.
	check := func(banner string) {
		m := bannerAdmin.FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("no admin address in the banner:\n%s", banner)
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"--server", "https://" + m[1], "--token-file", filepath.Join(dataDir, "admin.token"),
			"--ca-file", filepath.Join(dataDir, "ca", "root.crt"), "device", "list"},
			func(string) string { return "" }, strings.NewReader(""), &out, &errb)
		if code != 0 || !strings.HasPrefix(out.String(), "ID") {
			t.Fatalf("device list against the served admin API: exit %d\n%s%s", code, out.String(), errb.String())
		}
	}

	serveOnce(t, dataDir, cfgPath, check)
	root1, token1, tokens1 := read("ca/root.crt"), read("admin.token"), read("admin.tokens")
	if len(bytes.TrimSpace(token1)) == 0 {
		t.Fatal("empty admin token")
	}

	serveOnce(t, dataDir, cfgPath, check)
	if !bytes.Equal(read("ca/root.crt"), root1) {
		t.Error("second start replaced the CA root")
	}
	if !bytes.Equal(read("admin.token"), token1) || !bytes.Equal(read("admin.tokens"), tokens1) {
		t.Error("second start replaced the admin token")
	}
}

// TestE2ERestartKeepsState: a server restarted on the same data dir keeps
// bindings, standing, the NAS secret and an intact audit chain; the devices
// it knew authenticate as before.
func TestE2ERestartKeepsState(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	first := startTest(t, cfg)
	good := first.bind(t, devbind.Request{DeviceID: "restart-good", Posture: store.ComplianceCompliant})
	quar := first.bind(t, devbind.Request{DeviceID: "restart-quar", Posture: store.ComplianceCompliant})
	first.mustAccept(t, first.nasClient(t, "", nil), good.Certificate)
	first.cliOK(t, "device", "quarantine", quar.ID)
	secret := first.radiusSecret
	first.shutdown()

	// A fresh config, as a new process would load it.
	cfg2 := testConfig(t)
	cfg2.DataDir = cfg.DataDir
	second := startTest(t, cfg2)
	if second.radiusSecret != secret {
		t.Fatal("the dev NAS secret changed across a restart")
	}
	if !second.ca.Root().Equal(first.ca.Root()) || !second.ca.Issuing().Equal(first.ca.Issuing()) {
		t.Fatal("the CA changed across a restart")
	}
	nas := second.nasClient(t, "", nil)
	second.mustAccept(t, nas, good.Certificate)
	second.mustReject(t, nas, quar.Certificate, quar.ID, "device_quarantined")
	var vr store.VerifyResult
	second.cliJSON(t, &vr, "audit", "verify")
	if !vr.OK {
		t.Fatalf("audit chain after restart: %+v", vr)
	}
	if second.countAudit(t, "device.quarantine", quar.ID, "ok", "") != 1 {
		t.Fatalf("the quarantine of %s is not in the audit chain after restart:\n%s", quar.ID, second.auditDump(t, 20))
	}
}
