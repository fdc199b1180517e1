package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"gopkg.in/yaml.v3"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest/attesttest"
	hbradius "hardbound/radius"
	"hardbound/radius/dynauth"
	"hardbound/radius/eapclient"
	"hardbound/store/config"
)

// rewriteConfig replaces the file the server runs on, as an operator
// editing it would.
func (in *instance) rewriteConfig(t *testing.T, cfg *node.Config) {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2EConfigReloadRaisesOSMinimum: an iPhone enrolled on iOS 17.2
// authenticates and starts a session under min_os 17.0. The file is
// changed to 17.4 (and a listener address, which needs a restart) and
// `hardbound config reload` is run, with no restart: the reload names
// the applied key and the one that needs a restart, the live session gets
// a Disconnect-Request (a policy change is a standing change), the next
// authentication is rejected attested_below_minimum and a 17.3 enrollment
// is refused. A file that does not validate is refused (non-zero exit
// naming the file) and the raised minimum keeps working. SIGHUP then
// reloads the same way: lowered to 17.0 the device is admitted, raised
// again it is rejected.
func TestE2EConfigReloadRaisesOSMinimum(t *testing.T) {
	t.Parallel()
	const (
		secret = "e2e-reload-nas-secret"
		serial = "F2LRELOAD"
		sid    = "E2E-RELOAD-0001"
	)
	das := newE2EDAS(t, secret)
	phones := func(minIOS string) []node.ProfileConfig {
		p := node.ProfileConfig{Name: "phones"}
		p.MinOS = map[string]string{"ios": minIOS}
		return []node.ProfileConfig{{Name: "default"}, p}
	}
	cfg := testConfig(t)
	cfg.RADIUS.Clients = []hbradius.FileClient{{Name: "nas-reload", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: das.port()}}
	cfg.RADIUS.CoA = dynauth.FileConfig{Timeout: config.Duration(500 * time.Millisecond), Retries: 2}
	cfg.Profiles = phones("17.0")
	in := startTest(t, cfg)
	ctx := e2eContext(t)
	in.cliOK(t, "device", "add", serial, "--platform", "ios", "--serial", serial, "--profile", "phones")
	auth, err := attesttest.Load(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(osVersion string) (tls.Certificate, error) {
		t.Helper()
		ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl, err := acmetest.New(ctx, in.httpsClient(t), "https://"+in.Addr("enroll-https")+"/acme/directory", ak, jose.ES256)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Register(ctx); err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
			return auth.AppleWith(key.Public(), serial, "UDID-"+serial, keyAuth, attesttest.AppleOptions{OSVersion: osVersion})
		}, csr)
		c := tls.Certificate{PrivateKey: key}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		if len(chain) > 0 {
			c.Leaf = chain[0]
		}
		return c, err
	}
	cert, err := enroll("17.2")
	if err != nil {
		t.Fatalf("enrollment on 17.2 under min_os 17.0: %v", err)
	}
	nas := in.nasClient(t, secret, nil)
	res := in.mustAccept(t, nas, cert)
	if resp, err := nas.Accounting(ctx, eapclient.AcctStart, radius.Attributes{
		{Type: rfc2866.AcctSessionID_Type, Attribute: radius.Attribute(sid)},
		{Type: rfc2865.Class_Type, Attribute: res.Class},
	}); err != nil || resp.Code != radius.CodeAccountingResponse {
		t.Fatalf("Accounting-Start: %v", err)
	}

	// Raised to 17.4, and the metrics listener moved (restart required).
	raised := *cfg
	raised.Profiles = phones("17.4")
	raised.Metrics.Addr = "127.0.0.1:1"
	in.rewriteConfig(t, &raised)
	out := in.cliOK(t, "config", "reload")
	if !strings.Contains(out, in.cfgPath+" reloaded") || !regexp.MustCompile(`applied:\s+profiles\[phones\]\.min_os\.ios\n`).MatchString(out) ||
		!regexp.MustCompile(`restart required:\s+metrics\.addr\n`).MatchString(out) {
		t.Fatalf("config reload:\n%s", out)
	}
	eventually(t, 15*time.Second, "a Disconnect-Request for the session below the new minimum", func() bool {
		for _, p := range das.requests() {
			if p.Code == radius.CodeDisconnectRequest && rfc2866.AcctSessionID_GetString(p) == sid {
				return true
			}
		}
		return false
	})
	in.waitAuditEvent(t, "radius.disconnect", serial, "ack", "trigger=policy session="+sid)
	in.waitAuditEvent(t, "config.reload", in.cfgPath, "ok", "applied=profiles[phones].min_os.ios restart_required=metrics.addr")
	in.mustReject(t, nas, cert, serial, "attested_below_minimum")
	var p *acmetest.Problem
	if _, err := enroll("17.3"); !errors.As(err, &p) || !strings.Contains(p.Detail, "below min_os") {
		t.Fatalf("enrollment on 17.3 after the reload: %v, want refused below the minimum", err)
	}

	// A file that does not validate: refused, the raised minimum stays.
	bad := raised
	bad.Profiles = phones("seventeen")
	in.rewriteConfig(t, &bad)
	r := in.cli(t, "config", "reload")
	if r.code == 0 || !strings.Contains(r.stderr, in.cfgPath) || !strings.Contains(r.stderr, "min_os") || !strings.Contains(r.stderr, "the running configuration stays") {
		t.Fatalf("reload of an invalid file: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	in.waitAuditEvent(t, "config.reload", in.cfgPath, "error", "")
	in.mustReject(t, nas, cert, serial, "attested_below_minimum")

	// SIGHUP: lowered again the device is admitted, raised it is not.
	sighup := func(c *node.Config) {
		t.Helper()
		n := strings.Count(in.stderr.String(), "configuration reloaded")
		in.rewriteConfig(t, c)
		if err := in.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, fmt.Sprintf("reload %d after SIGHUP", n+1), func() bool {
			return strings.Count(in.stderr.String(), "configuration reloaded") > n
		})
	}
	lowered := raised
	lowered.Profiles = phones("17.0")
	sighup(&lowered)
	in.mustAccept(t, nas, cert)
	sighup(&raised)
	in.mustReject(t, nas, cert, serial, "attested_below_minimum")
	in.waitAuditEvent(t, "config.reload", in.cfgPath, "ok", "")
	if n := in.countAudit(t, "config.reload", in.cfgPath, "", ""); n != 4 {
		t.Errorf("%d config.reload audit events, want 4 (reload, refused, two SIGHUPs)", n)
	}
}
