package radsec_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/ca/catest"
	"hardbound/enroll/devbind"
	"hardbound/radius/dynauth"
)

const proxySecret = "proxy-udp-secret"

// freeUDPPort picks a loopback UDP port for a peer that cannot listen on 0.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// radsecproxy starts Debian's radsecproxy as the NAS-side proxy: RADIUS/UDP
// from eapol_test on its port, RADIUS/TLS to hardbound with cert (chain and
// key files) trusting caFile. It returns the UDP port.
func startRadsecproxy(t *testing.T, e *env, crt, key, caFile, tlsVersion string) int {
	t.Helper()
	bin := requireTool(t, "radsecproxy")
	dir := t.TempDir()
	port := freeUDPPort(t)
	host, tport, _ := net.SplitHostPort(e.addr)
	conf := fmt.Sprintf(`ListenUDP 127.0.0.1:%d
LogLevel 4
tls nas {
	CACertificateFile %s
	CertificateFile %s
	CertificateKeyFile %s
	TlsVersion %s
}
client eapol {
	host 127.0.0.1
	type udp
	secret %s
}
server hardbound {
	host %s
	port %s
	type tls
	tls nas
	secret radsec
	CertificateNameCheck on
}
realm * {
	server hardbound
}
`, port, caFile, crt, key, tlsVersion, proxySecret, host, tport)
	// radsecproxy checks the server's name against host: the server
	// certificate carries IP 127.0.0.1.
	path := filepath.Join(dir, "radsecproxy.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-f", "-c", path, "-i", filepath.Join(dir, "pid"))
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("radsecproxy log:\n%s", tail(log.String(), 40))
		}
	})
	return port
}

// eapolTest runs eapol_test against the proxy's UDP port.
func eapolTest(t *testing.T, port int, caFile string, dev *devbind.Device, phase1 string) (string, error) {
	t.Helper()
	return eapolTestSecret(t, port, proxySecret, caFile, dev, phase1, 20)
}

// eapolTestSecret is eapolTest with the proxy's UDP secret and eapol_test's
// overall timeout in seconds (generous: under -race on a loaded machine an
// EAP-TLS exchange through a proxy takes seconds).
func eapolTestSecret(t *testing.T, port int, secret, caFile string, dev *devbind.Device, phase1 string, timeout int) (string, error) {
	t.Helper()
	bin := requireTool(t, "eapol_test")
	dir := t.TempDir()
	crt, key := writeCert(t, dir, "device", dev.Certificate)
	conf := fmt.Sprintf(`network={
	key_mgmt=WPA-EAP
	eap=TLS
	identity="%s"
	ca_cert="%s"
	client_cert="%s"
	private_key="%s"
	eap_workaround=0
	phase1="%s"
}
`, dev.ID, caFile, crt, key, phase1)
	path := filepath.Join(dir, "eapol.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout+20)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", path, "-a", "127.0.0.1", "-p", strconv.Itoa(port),
		"-s", secret, "-t", strconv.Itoa(timeout), "-r", "0").CombinedOutput()
	return string(out), err
}

// TestRadsecproxy: eapol_test -> radsecproxy (UDP) -> hardbound
// (RADIUS/TLS, NAS certificate from the radsec.Issuer). TLS 1.2 and 1.3 reach an
// Access-Accept with matching MPPE keys; an unbound or revoked device is
// rejected; a radsecproxy with a certificate of another CA is refused at
// the TLS layer.
func TestRadsecproxy(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	caFile := e.writeCA(t, dir)
	crt, key := writeCert(t, dir, "proxy1", e.nasCert(t, "proxy1"))
	ok := e.device(t, "dev-ok", devbind.Request{})
	unbound := e.device(t, "dev-unbound", devbind.Request{NoBinding: true})
	revoked := e.device(t, "dev-revoked", devbind.Request{})
	if _, _, err := e.posture.RevokeDevice(e.ctx, revoked.ID, 0, "admin:test"); err != nil {
		t.Fatal(err)
	}
	const only13 = "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=0"
	for _, v := range []struct{ name, proxy, log string }{{"TLS1.2", "TLS1_2", "tls=\"TLS 1.2\""}, {"TLS1.3", "TLS1_3", "tls=\"TLS 1.3\""}} {
		t.Run(v.name, func(t *testing.T) {
			port := startRadsecproxy(t, e, crt, key, caFile, v.proxy)
			out, err := eapolTest(t, port, caFile, ok, only13)
			if err != nil || !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "MPPE keys OK: 1  mismatch: 0") {
				t.Fatalf("eapol_test: %v\n%s", err, tail(out, 30))
			}
			if !strings.Contains(e.logs.String(), v.log) {
				t.Fatalf("no connection with %s in the listener's log:\n%s", v.log, e.logs.String())
			}
			if v.name == "TLS1.3" {
				reverseToRadsecproxy(t, e, port, caFile, ok)
			}
			for _, d := range []*devbind.Device{unbound, revoked} {
				out, err := eapolTest(t, port, caFile, d, only13)
				if err == nil || !strings.Contains(out, "Access-Reject") {
					t.Fatalf("%s not rejected: %v\n%s", d.ID, err, tail(out, 30))
				}
			}
		})
	}
	if n := e.metrics.get("accepted/hardbound"); n < 2 {
		t.Fatalf("accepted connections %d: %v", n, e.metrics.c)
	}
	t.Run("foreign CA", func(t *testing.T) {
		other := catest.New(t, filepath.Join(t.TempDir(), "other"))
		foreign, err := other.IssueServerTLS(e.ctx, []string{"proxy1"}, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		fdir := t.TempDir()
		fcrt, fkey := writeCert(t, fdir, "foreign", tls.Certificate{Certificate: foreign.Certificate, PrivateKey: foreign.PrivateKey})
		before := e.metrics.get("refused/unknown_ca")
		port := startRadsecproxy(t, e, fcrt, fkey, caFile, "TLS1_2:")
		out, err := eapolTestSecret(t, port, proxySecret, caFile, ok, only13, 5) // no answer is coming
		if err == nil || strings.Contains(out, "\nSUCCESS") {
			t.Fatalf("authenticated through a proxy of another CA:\n%s", tail(out, 30))
		}
		eventually(t, "refusal at the TLS layer", func() bool { return e.metrics.get("refused/unknown_ca") > before })
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// reverseToRadsecproxy sends a Disconnect-Request down radsecproxy's
// connection: radsecproxy 1.9 does not implement dynamic authorization
// (it has no code for Disconnect or CoA), so the request goes unanswered;
// the connection must survive it and keep carrying authentications.
func reverseToRadsecproxy(t *testing.T, e *env, port int, caFile string, dev *devbind.Device) {
	t.Helper()
	sender := dynauth.NewSender(dynauth.SenderConfig{Timeout: 500 * time.Millisecond, Tries: 2})
	out, err := sender.Via(e.ls.Stream).Send(e.ctx, dynauth.NAS{Name: "proxy1", Addr: "127.0.0.1:9", Secret: []byte("unused")},
		dynauth.Request{Kind: dynauth.Disconnect, Identity: dynauth.Identity{UserName: dev.ID, AcctSessionID: "s1"}})
	if err == nil || out.Result == dynauth.ResultACK {
		t.Fatalf("radsecproxy answered a Disconnect: %+v", out)
	}
	if e.metrics.get("packet/reverse_request") == 0 {
		t.Fatal("the Disconnect did not go down the RADIUS/TLS connection")
	}
	res, err := eapolTest(t, port, caFile, dev, "")
	if err != nil || !strings.Contains(res, "SUCCESS") {
		t.Fatalf("authentication after the Disconnect: %v\n%s", err, tail(res, 20))
	}
}
