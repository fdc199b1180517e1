package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	lradius "layeh.com/radius"

	"hardbound/enroll/devbind"
	"hardbound/radius/packet"
	"hardbound/radius/radsec"
)

// TestRadSecNASIssue is RADIUS/TLS end to end through the CLI: `hardbound
// nas issue` writes a NAS certificate from the running server's CA;
// radsecproxy with it carries eapol_test's EAP-TLS to an Access-Accept with
// no configuration edit on the server; `hardbound cert revoke` of the NAS
// certificate closes the proxy's connection and keeps it out.
func TestRadSecNASIssue(t *testing.T) {
	requireTools(t, "radsecproxy", "eapol_test")
	in := startE2E(t, nil)
	dir := t.TempDir()
	out := in.cliOK(t, "nas", "issue", "proxy1", "--dns", "proxy1.example.org", "--out", dir)
	if !strings.Contains(out, "serial") {
		t.Fatalf("nas issue printed %q", out)
	}
	crt, key, caFile := filepath.Join(dir, "proxy1.crt"), filepath.Join(dir, "proxy1.key"), filepath.Join(dir, "ca.crt")
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	leaf := readCert(t, crt)

	port := freeUDPPort(t)
	conf := fmt.Sprintf(`ListenUDP 127.0.0.1:%d
LogLevel 3
tls nas {
	CACertificateFile %s
	CertificateFile %s
	CertificateKeyFile %s
}
client eapol {
	host 127.0.0.1
	type udp
	secret udp-secret
}
server hardbound {
	host 127.0.0.1
	port %d
	type tls
	tls nas
	secret radsec
}
realm * {
	server hardbound
}
`, port, caFile, crt, key, portOf(in.Addr("radsec")))
	confPath := filepath.Join(dir, "radsecproxy.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proxy := exec.CommandContext(ctx, "radsecproxy", "-f", "-c", confPath, "-i", filepath.Join(dir, "pid"))
	plog := &syncBuffer{}
	proxy.Stdout, proxy.Stderr = plog, plog
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = proxy.Wait()
		if t.Failed() {
			t.Logf("radsecproxy:\n%s", plog.tail(40))
		}
	})

	dev := in.bind(t, devbind.Request{DeviceID: "laptop-radsec"})
	devCA, devCrt, devKey := writeDevice(t, t.TempDir(), "laptop", in, dev)
	eapol := func() (string, error) {
		edir := t.TempDir()
		ec := fmt.Sprintf("network={\n\tkey_mgmt=WPA-EAP\n\teap=TLS\n\tidentity=\"laptop-radsec\"\n\tca_cert=\"%s\"\n\tclient_cert=\"%s\"\n\tprivate_key=\"%s\"\n}\n", devCA, devCrt, devKey)
		p := filepath.Join(edir, "eapol.conf")
		if err := os.WriteFile(p, []byte(ec), 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		b, err := exec.CommandContext(cctx, "eapol_test", "-c", p, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-s", "udp-secret", "-t", "8", "-r", "0").CombinedOutput()
		return string(b), err
	}
	if out, err := eapol(); err != nil || !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "MPPE keys OK: 1  mismatch: 0") {
		t.Fatalf("eapol_test through radsecproxy: %v\n%s", err, out[max(0, len(out)-3000):])
	}
	if n := metricSum(t, in.scrape(t), "hardbound_radsec_accepted_total", `source="hardbound"`); n < 1 {
		t.Fatalf("no RADIUS/TLS connection counted")
	}
	in.waitAuditEvent(t, "radius.auth", "laptop-radsec", "ok", "ok")

	in.cliOK(t, "cert", "revoke", serialOf(leaf))
	eventually(t, 10*time.Second, "the proxy's connection closed as revoked", func() bool {
		return metricSum(t, in.scrape(t), "hardbound_radsec_closed_total", `reason="revoked"`) >= 1
	})
	if out, err := eapol(); err == nil || strings.Contains(out, "\nSUCCESS") {
		t.Fatalf("authenticated through a revoked NAS:\n%s", out[max(0, len(out)-2000):])
	}
	// radsecproxy reconnects on its own schedule; whenever it does, the
	// handshake is refused (TestRevocationCloses in radius/radsec), so no
	// second connection is ever accepted.
	if n := metricSum(t, in.scrape(t), "hardbound_radsec_accepted_total", `source="hardbound"`); n != 1 {
		t.Fatalf("%v connections accepted, want 1 (none after the revocation)", n)
	}
}

// radsecStatus connects to the node's RADIUS/TLS listener as the NAS whose
// certificate and key `hardbound nas issue` wrote to dir, and asks
// Status-Server (RFC 5997) once: nil when it is answered, the handshake's
// or the exchange's error otherwise (a refused NAS certificate fails the
// handshake, or on TLS 1.3 the first read).
func (in *instance) radsecStatus(t *testing.T, dir, name string) error {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil || !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.crt: %v", err)
	}
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{kp}}}
	ctx, cancel := context.WithTimeout(e2eContext(t), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", in.Addr("radsec"))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	sec := packet.NewSecret([]byte(radsec.Secret))
	req, err := sec.EncodeRequest(lradius.CodeStatusServer, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	b, err := packet.ReadStream(c, make([]byte, packet.MaxLen), nil)
	if err != nil {
		return err
	}
	p, err := packet.Parse(b)
	if err != nil {
		return err
	}
	return sec.VerifyResponse(&p, req[4:20], packet.Policy{})
}
