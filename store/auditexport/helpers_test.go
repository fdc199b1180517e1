package auditexport

import (
	"bytes"
	"context"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbound/store"
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

// testPKI is a CA and a certificate for 127.0.0.1 signed by it, as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
}

func newPKI(t testing.TB, dir string) testPKI {
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
	p := testPKI{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", der)
	write(p.keyFile, "PRIVATE KEY", keyDER)
	return p
}

// rsyslog is an rsyslogd started by the test with its own configuration:
// one imtcp input with TLS (gtls, RFC 5425) and one plain (RFC 6587), each
// writing "MSGID MSG" lines to its own file.
type rsyslog struct {
	t        testing.TB
	bin, dir string
	pki      testPKI
	tlsPort  int
	tcpPort  int
	udpPort  int
	cmd      *exec.Cmd
	done     chan struct{}
}

func startRsyslog(t *testing.T, pki testPKI) *rsyslog { return startRsyslogB(t, pki) }

func startRsyslogB(t testing.TB, pki testPKI) *rsyslog {
	t.Helper()
	bin := needTool(t, "rsyslogd", "/usr/sbin/rsyslogd")
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"); err != nil && os.Getenv("CI") != "true" {
		if matches, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(matches) == 0 {
			t.Skip("rsyslog-gnutls is not installed")
		}
	}
	r := &rsyslog{t: t, bin: bin, dir: t.TempDir(), pki: pki}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) tlsFile() string { return filepath.Join(r.dir, "tls.log") }
func (r *rsyslog) tcpFile() string { return filepath.Join(r.dir, "tcp.log") }
func (r *rsyslog) udpFile() string { return filepath.Join(r.dir, "udp.log") }

// freeUDPPort picks a port for imudp, which cannot report one it chose.
func freeUDPPort(t testing.TB) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// start runs rsyslogd; the first start picks free ports (port 0 and
// listenPortFileName), a restart listens on the same ones.
func (r *rsyslog) start() {
	t := r.t
	t.Helper()
	port := func(p int) string { return strconv.Itoa(p) }
	if r.udpPort == 0 {
		r.udpPort = freeUDPPort(t)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"
  defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" maxSessions="50")
template(name="line" type="string" string="%%msgid%% %%msg%%\n")
ruleset(name="tls") { action(type="omfile" file=%q template="line") }
ruleset(name="tcp") { action(type="omfile" file=%q template="line") }
ruleset(name="udp") { action(type="omfile" file=%q template="line") }
module(load="imudp")
input(type="imudp" address="127.0.0.1" port=%q ruleset="udp")
input(type="imtcp" address="127.0.0.1" port=%q listenPortFileName=%q ruleset="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port=%q listenPortFileName=%q ruleset="tcp")
`, r.dir, r.pki.caFile, r.pki.certFile, r.pki.keyFile, r.tlsFile(), r.tcpFile(), r.udpFile(), port(r.udpPort),
		port(r.tlsPort), filepath.Join(r.dir, "tls.port"), port(r.tcpPort), filepath.Join(r.dir, "tcp.port"))
	cf := filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(r.dir, "tls.port"))
	os.Remove(filepath.Join(r.dir, "tcp.port"))
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
		if r.tlsPort != 0 {
			// A restart on known ports (rsyslog writes the port files
			// only for port 0): listening once both accept.
			if dialable(r.tlsPort) && dialable(r.tcpPort) {
				break
			}
		} else {
			tlsP, err1 := readPort(filepath.Join(r.dir, "tls.port"))
			tcpP, err2 := readPort(filepath.Join(r.dir, "tcp.port"))
			if err1 == nil && err2 == nil {
				r.tlsPort, r.tcpPort = tlsP, tcpP
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

// stop ends rsyslogd cleanly (SIGTERM: it writes what it read, then exits).
func (r *rsyslog) stop() {
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

// received reads a sink's file: how often each event seq arrived and
// the checkpoints.
type received struct {
	count map[uint64]int
	cps   []store.AuditCheckpoint
	evs   map[uint64]*store.AuditEvent
}

func readReceived(t testing.TB, path string) received {
	t.Helper()
	rc := received{count: map[uint64]int{}, evs: map[uint64]*store.AuditEvent{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return rc
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = ReadRecords(f, func(ev *store.AuditEvent, cp *store.AuditCheckpoint) error {
		if ev != nil {
			rc.count[ev.Seq]++
			rc.evs[ev.Seq] = ev
		} else {
			rc.cps = append(rc.cps, *cp)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rc
}

// gaps lists the seqs in 1..head that never arrived (at most 10) and
// counts the duplicates.
func (rc received) gaps(head uint64) (missing []uint64, dups int) {
	for s := uint64(1); s <= head; s++ {
		switch n := rc.count[s]; {
		case n == 0:
			if len(missing) < 10 {
				missing = append(missing, s)
			}
		case n > 1:
			dups += n - 1
		}
	}
	return missing, dups
}

// lagMetrics records the latest lag and delivery of each sink.
type lagMetrics struct {
	mu        sync.Mutex
	lag       map[string]uint64
	maxLag    map[string]uint64
	delivered map[string]int
	errors    map[string]int
	lastOK    map[string]time.Time
}

func newLagMetrics() *lagMetrics {
	return &lagMetrics{lag: map[string]uint64{}, maxLag: map[string]uint64{}, delivered: map[string]int{},
		errors: map[string]int{}, lastOK: map[string]time.Time{}}
}

func (m *lagMetrics) ExportLag(s string, n uint64) {
	m.mu.Lock()
	m.lag[s] = n
	m.maxLag[s] = max(m.maxLag[s], n)
	m.mu.Unlock()
}
func (m *lagMetrics) ExportDelivered(s string, n int, at time.Time) {
	m.mu.Lock()
	m.delivered[s] += n
	m.lastOK[s] = at
	m.mu.Unlock()
}
func (m *lagMetrics) ExportError(s string) { m.mu.Lock(); m.errors[s]++; m.mu.Unlock() }

func (m *lagMetrics) get(s string) (lag, maxLag uint64, errs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lag[s], m.maxLag[s], m.errors[s]
}

// waitFor polls cond (bounded); on timeout it fails with what().
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", d, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appendEvents appends n radius.auth-like events in groups of 50.
func appendEvents(ctx context.Context, st interface {
	AppendAudits(ctx context.Context, evs []*store.AuditEvent) error
}, n int) error {
	for n > 0 {
		k := min(n, 50)
		evs := make([]*store.AuditEvent, k)
		for i := range evs {
			evs[i] = &store.AuditEvent{Actor: "nas:ap1", Action: "radius.auth", Subject: fmt.Sprintf("device-%d", n-i), Result: "ok", Source: "127.0.0.1"}
		}
		if err := st.AppendAudits(ctx, evs); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// truncate empties one of rsyslog's files between benchmark rounds.
func (r *rsyslog) truncate(tr string) {
	if tr == "tls" {
		os.Truncate(r.tlsFile(), 0)
	} else {
		os.Truncate(r.tcpFile(), 0)
	}
}
