package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/admin"
	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
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

var (
	bannerAdmin  = regexp.MustCompile(`(?m)^\s+admin\s+(127\.0\.0\.1:\d+)\s`)
	bannerEnroll = regexp.MustCompile(`(?m)^\s+enroll-https\s+(127\.0\.0\.1:\d+)\s`)
)

// serveOnce runs `hardbound serve --dev` through run(), waits for the
// banner, lets check talk to the running server, then cancels the context
// and requires a clean exit.
func serveOnce(t *testing.T, dataDir, cfgPath string, check func(banner string)) {
	t.Helper()
	serveArgs(t, []string{"serve", "--dev", "--config", cfgPath, "--data-dir", dataDir}, dataDir, true, check)
}

// serveArgs runs the serve command line args (dev: with --dev).
func serveArgs(t *testing.T, args []string, dataDir string, dev bool, check func(banner string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, args, func(string) string { return "" }, strings.NewReader(""), stdout, stderr)
	}()
	marker := "/metrics\n" // the last listener line
	if dev {
		marker = "CA root:"
	}
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stdout.String(), marker) {
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before printing its banner\nstdout: %s\nstderr: %s", c, stdout, stderr)
		case <-deadline:
			t.Fatalf("no banner after 30s\nstdout: %s\nstderr: %s", stdout, stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	banner := stdout.String()
	for _, want := range []string{"hardbound", "running, data in " + dataDir, "radius-auth", "radius-acct", "enroll-https", "enroll-http", "admin", "metrics"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "dev mode:") != dev {
		t.Errorf("banner dev section present = %v, want %v:\n%s", !dev, dev, banner)
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
	first.Shutdown()

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
	var vr admin.VerifyResult
	second.cliJSON(t, &vr, "audit", "verify")
	if !vr.OK {
		t.Fatalf("audit chain after restart: %+v", vr)
	}
	if second.countAudit(t, "device.quarantine", quar.ID, "ok", "") != 1 {
		t.Fatalf("the quarantine of %s is not in the audit chain after restart:\n%s", quar.ID, second.auditDump(t, 20))
	}
}

// TestE2EServeProduction: the non-dev path. `ca init` creates the CA (and
// refuses to overwrite it), the operator writes the token hashes and the
// config, and `serve --config` runs without any --dev convenience: no
// test endpoints, and evidence from the test attestation authority is not
// trusted.
func TestE2EServeProduction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cli := func(args ...string) cliResult {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
		return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
	}
	// The root key goes where the operator says, so serve runs without it.
	offlineRoot := filepath.Join(dir, "offline", "root.key")
	if err := os.MkdirAll(filepath.Dir(offlineRoot), 0o700); err != nil {
		t.Fatal(err)
	}
	if r := cli("ca", "init", "--data-dir", dataDir, "--org", "Example Corp", "--root-cn", "Example Root", "--issuing-cn", "Example Issuing",
		"--root-key-out", offlineRoot); r.code != 0 || !strings.Contains(r.stdout, "created CA") ||
		!strings.Contains(r.stdout, "CN=Example Issuing,O=Example Corp") || !strings.Contains(r.stdout, offlineRoot) {
		t.Fatalf("ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "ca", "root.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("root key in the data dir: %v", err)
	}
	if fi, err := os.Stat(offlineRoot); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("offline root key: %v %v", err, fi)
	}
	if r := cli("ca", "show", "--data-dir", dataDir); r.code != 0 || !strings.Contains(r.stdout, "root key: not in the data dir (offline)") {
		t.Fatalf("ca show: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	root1, err := os.ReadFile(filepath.Join(dataDir, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if r := cli("ca", "init", "--data-dir", dataDir); r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Fatalf("second ca init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if root2, _ := os.ReadFile(filepath.Join(dataDir, "ca", "root.crt")); !bytes.Equal(root1, root2) {
		t.Fatal("second ca init changed the root")
	}
	const token = "ops-token-e2e-0123456789abcdef"
	h := admin.HashToken(token)
	if err := os.WriteFile(filepath.Join(dataDir, "admin.tokens"), []byte("ops "+hex.EncodeToString(h[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := writeSecret(t, "ops.token", token)
	cfgPath := filepath.Join(dir, "hardbound.yaml")
	// Outside --dev the Android attestation status list is checked; a
	// test reads it from a file, never from Google.
	statusList := filepath.Join(dir, "android-status.json")
	if err := os.WriteFile(statusList, []byte(`{"entries":{"2c8cdddfd5e03bfc":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "data_dir: " + dataDir + "\n" + strings.Replace(strings.Replace(e2eServeConfig, "radius:\n",
		"radius:\n  clients:\n    - {name: sw1, cidr: 127.0.0.1/32, secret: e2e-production-secret}\n", 1),
		"enroll:\n", "enroll:\n  android:\n    status_list: "+statusList+"\n", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli("serve"); r.code != 1 || !strings.Contains(r.stderr, "--config") {
		t.Fatalf("serve without --config or --dev: exit %d %q", r.code, r.stderr)
	}
	serveArgs(t, []string{"serve", "--config", cfgPath}, dataDir, false, func(banner string) {
		m := bannerAdmin.FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("no admin address in the banner:\n%s", banner)
		}
		base := []string{"--server", "https://" + m[1], "--token-file", tokenFile, "--ca-file", filepath.Join(dataDir, "ca", "root.crt")}
		if r := cli(append(base, "device", "list", "--json")...); r.code != 0 || !strings.Contains(r.stdout, `"items"`) {
			t.Fatalf("device list with the ops token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// The --dev test enrollment endpoint is closed.
		r := cli(append(base, "bench", "make-devices", "--n", "1", "--out", filepath.Join(dir, "devs"))...)
		if r.code == 0 || !strings.Contains(r.stderr, "--dev") {
			t.Fatalf("bench make-devices against a production server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "dev-attest")); err == nil {
			t.Fatal("a production start created the test attestation authority")
		}

		// Evidence from a test authority is not trusted outside --dev.
		e := bannerEnroll.FindStringSubmatch(banner)
		if e == nil {
			t.Fatalf("no enroll-https address in the banner:\n%s", banner)
		}
		ctx := e2eContext(t)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(root1)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Timeout: 20 * time.Second, Transport: tr}
		accountKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl, err := acmetest.New(ctx, hc, "https://"+e[1]+"/acme/directory", accountKey, jose.ES256)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Register(ctx); err != nil {
			t.Fatal(err)
		}
		auth, err := attesttest.NewAuthority()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		_, err = cl.Enroll(ctx, acme.TypePermanentIdentifier, "C02PRODE2E", func(keyAuth string) ([]byte, error) {
			return auth.Apple(key.Public(), "C02PRODE2E", "", keyAuth)
		}, csr)
		var p *acmetest.Problem
		if !errors.As(err, &p) || p.Type != acme.ProblemBadAttestationStatement {
			t.Fatalf("ACME with test-authority evidence on a production server: %v, want badAttestationStatement", err)
		}
	})
}
