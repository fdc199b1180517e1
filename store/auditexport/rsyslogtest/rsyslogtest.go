// Package rsyslogtest starts a real rsyslogd (Debian rsyslog and
// rsyslog-gnutls) for tests, on 127.0.0.1 with its own configuration: a
// TLS (RFC 5425) input, a plain TCP (RFC 6587) input and a UDP input, each
// writing "MSGID MSG" lines to its own file. A missing rsyslogd fails the
// test under CI=true and skips it otherwise.
package rsyslogtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTool finds a peer program: missing fails under CI=true, skips otherwise.
func needTool(t testing.TB, name string, alt ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, a := range alt {
		if _, err := os.Stat(a); err == nil {
			return a
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (Debian: .ci/run installs it)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// PKI is a CA and a certificate for 127.0.0.1 signed by it, as PEM files.
type PKI struct {
	CAFile, CertFile, KeyFile string
}

func NewPKI(t testing.TB, dir string) PKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := PKI{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.CAFile, "CERTIFICATE", caDER)
	write(p.CertFile, "CERTIFICATE", der)
	write(p.KeyFile, "PRIVATE KEY", keyDER)
	return p
}

// Rsyslog is an rsyslogd started by the test with its own configuration:
// one imtcp input with TLS (gtls, RFC 5425) and one plain (RFC 6587), each
// writing "MSGID MSG" lines to its own file.
type Rsyslog struct {
	t        testing.TB
	bin, dir string
	PKI      PKI
	TLSPort  int
	TCPPort  int
	UDPPort  int
	MTLSPort int // TLS that requires a client certificate from PKI's CA
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start runs rsyslogd until the test ends.
func Start(t testing.TB, pki PKI) *Rsyslog {
	t.Helper()
	bin := needTool(t, "rsyslogd", "/usr/sbin/rsyslogd")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"); err != nil && os.Getenv("CI") != "true" {
		if matches, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(matches) == 0 {
			t.Skip("rsyslog-gnutls is not installed")
		}
	}
	r := &Rsyslog{t: t, bin: bin, dir: t.TempDir(), PKI: pki}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// TLSFile, TCPFile and UDPFile are what each input received.
func (r *Rsyslog) TLSFile() string { return filepath.Join(r.dir, "tls.log") }
func (r *Rsyslog) TCPFile() string { return filepath.Join(r.dir, "tcp.log") }
func (r *Rsyslog) UDPFile() string { return filepath.Join(r.dir, "udp.log") }

// MTLSFile is what the mutual-TLS input received.
func (r *Rsyslog) MTLSFile() string { return filepath.Join(r.dir, "mtls.log") }

// freeUDPPort picks a port for imudp, which cannot report one it chose.
func freeUDPPort(t testing.TB) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Start runs rsyslogd again after Stop; the first start picks free ports (port 0 and
// listenPortFileName), a restart listens on the same ones.
func (r *Rsyslog) Start() {
	t := r.t
	t.Helper()
	port := func(p int) string { return strconv.Itoa(p) }
	if r.UDPPort == 0 {
		r.UDPPort = freeUDPPort(t)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"
  defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" maxSessions="50")
template(name="line" type="string" string="%%msgid%% %%msg%%\n")
ruleset(name="tls") { action(type="omfile" file=%q template="line") }
ruleset(name="tcp") { action(type="omfile" file=%q template="line") }
ruleset(name="udp") { action(type="omfile" file=%q template="line") }
ruleset(name="mtls") { action(type="omfile" file=%q template="line") }
input(type="imtcp" address="127.0.0.1" port=%q listenPortFileName=%q ruleset="mtls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port=%q ruleset="udp")
input(type="imtcp" address="127.0.0.1" port=%q listenPortFileName=%q ruleset="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port=%q listenPortFileName=%q ruleset="tcp")
`, r.dir, r.PKI.CAFile, r.PKI.CertFile, r.PKI.KeyFile, r.TLSFile(), r.TCPFile(), r.UDPFile(), r.MTLSFile(), port(r.MTLSPort), filepath.Join(r.dir, "mtls.port"), port(r.UDPPort),
		port(r.TLSPort), filepath.Join(r.dir, "tls.port"), port(r.TCPPort), filepath.Join(r.dir, "tcp.port"))
	cf := filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(r.dir, "tls.port"))
	os.Remove(filepath.Join(r.dir, "tcp.port"))
	os.Remove(filepath.Join(r.dir, "mtls.port"))
	var out bytes.Buffer
	cmd := exec.Command(r.bin, "-n", "-f", cf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("rsyslogd: %v", err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r.TLSPort != 0 {
			// A restart on known ports (rsyslog writes the port files
			// only for port 0): listening once both accept.
			if dialable(r.TLSPort) && dialable(r.TCPPort) && dialable(r.MTLSPort) {
				break
			}
		} else {
			tlsP, err1 := readPort(filepath.Join(r.dir, "tls.port"))
			tcpP, err2 := readPort(filepath.Join(r.dir, "tcp.port"))
			mtlsP, err3 := readPort(filepath.Join(r.dir, "mtls.port"))
			if err1 == nil && err2 == nil && err3 == nil {
				r.TLSPort, r.TCPPort, r.MTLSPort = tlsP, tcpP, mtlsP
				break
			}
		}
		select {
		case <-r.done:
			t.Fatalf("rsyslogd exited: %s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not listen: %s", out.String())
		}
	}
}

func dialable(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func readPort(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port file %q", b)
	}
	return p, nil
}

// Stop ends rsyslogd cleanly (SIGTERM: it writes what it read, then exits).
func (r *Rsyslog) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// Truncate empties one input's file ("tls", "tcp", "udp" or "mtls")
// between test rounds; rsyslog appends, so it goes on writing from 0.
func (r *Rsyslog) Truncate(input string) {
	os.Truncate(filepath.Join(r.dir, input+".log"), 0)
}
