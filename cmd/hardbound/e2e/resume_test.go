package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/enroll/devbind"
	"hardbound/radius"
	"hardbound/store"
)

// holdRelay is a UDP relay between eapol_test and hardbound that holds
// eapol_test's next request after the n-th Access-Accept until the test has
// changed the device's standing: eapol_test -r runs its authentications
// back to back with nothing in between, and the session cache it resumes
// from lives only inside that one process.
type holdRelay struct {
	down, up *net.UDPConn
	after    int
	held     chan struct{} // closed once a request is being held
	release  chan struct{} // closed by the test to let it through
}

func newHoldRelay(t *testing.T, target string, after int) *holdRelay {
	t.Helper()
	listen := func(addr string) *net.UDPConn {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.ListenUDP("udp", a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	r := &holdRelay{down: listen("127.0.0.1:0"), after: after, held: make(chan struct{}), release: make(chan struct{})}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	r.up = up
	var (
		mu      sync.Mutex
		client  *net.UDPAddr
		accepts int
	)
	// eapol_test -> hardbound
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := r.down.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			client = from
			hold := r.after > 0 && accepts == r.after
			mu.Unlock()
			if hold {
				select {
				case <-r.held:
				default:
					close(r.held)
				}
				<-r.release
			}
			if _, err := r.up.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	// hardbound -> eapol_test
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.up.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			if n > 0 && buf[0] == 2 { // Access-Accept
				accepts++
			}
			to := client
			mu.Unlock()
			if to != nil {
				_, _ = r.down.WriteToUDP(buf[:n], to)
			}
		}
	}()
	return r
}

func (r *holdRelay) port() int { return r.down.LocalAddr().(*net.UDPAddr).Port }

// eapolConf writes an eapol_test network block that allows session
// tickets for one TLS version.
func eapolConf(t *testing.T, dir, ca, cert, key, version string) string {
	t.Helper()
	phase1 := "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_3=1 tls_disable_session_ticket=0"
	if version == "1.3" {
		phase1 = "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=0 tls_disable_session_ticket=0"
	}
	conf := fmt.Sprintf(`network={
	key_mgmt=WPA-EAP
	eap=TLS
	identity="anonymous@example.org"
	ca_cert="%s"
	client_cert="%s"
	private_key="%s"
	eap_workaround=0
	phase1="%s"
}
`, ca, cert, key, phase1)
	path := filepath.Join(dir, "eapol-"+version+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runEapolTest(t *testing.T, conf string, port int, secret string, reauths int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "eapol_test", "-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(port),
		"-s", secret, "-t", "10", "-r", strconv.Itoa(reauths))
	out, err := cmd.CombinedOutput()
	if f := os.Getenv("HB_EAPOL_LOG"); f != "" {
		_ = os.WriteFile(f, out, 0o600)
	}
	return string(out), err
}

// resumedCount is how many of eapol_test's authentications its own log
// reports as resumed ("OpenSSL: Handshake finished - resumed=1").
// OpenSSL prints it again after a TLS 1.3 post-handshake message, so each
// authentication (from CTRL-EVENT-EAP-STARTED on) counts once.
func resumedCount(out string) int {
	n := 0
	for _, auth := range strings.Split(out, "CTRL-EVENT-EAP-STARTED")[1:] {
		if strings.Contains(auth, "Handshake finished - resumed=1") {
			n++
		}
	}
	return n
}

// TestResumeEapolTest is the resumption contract with a real supplicant
// (hostap's eapol_test over OpenSSL), TLS 1.2 and TLS 1.3, tickets allowed:
// the second and third authentications resume with matching MPPE keys; a
// quarantine or a certificate revocation between two authentications makes
// the resumed attempt fail with that reason (the decision runs on the
// ticket's certificate). (That rotated ticket keys make it a full
// handshake is TestResumeRotateKeysCLI, and across nodes
// TestResumeRotateKeysShared.)
func TestResumeEapolTest(t *testing.T) {
	requireTools(t, "eapol_test")
	in := startE2E(t, nil)
	type step struct {
		name string
		// change runs while eapol_test's second authentication is held.
		change     func(t *testing.T, d *devbind.Device)
		wantReason string // the second authentication's reject reason
	}
	steps := []step{
		{name: "quarantine", wantReason: "device_quarantined", change: func(t *testing.T, d *devbind.Device) {
			in.cliOK(t, "device", "quarantine", d.ID)
		}},
		{name: "noncompliant", wantReason: "noncompliant", change: func(t *testing.T, d *devbind.Device) {
			in.cliOK(t, "posture", "set", d.ID, "noncompliant")
		}},
		{name: "cert_revoke", wantReason: "cert_revoked", change: func(t *testing.T, d *devbind.Device) {
			in.cliOK(t, "cert", "revoke", d.Binding.Serial)
		}},
	}
	for _, version := range []string{"1.2", "1.3"} {
		t.Run("tls"+version+"/resumes", func(t *testing.T) {
			d := in.bind(t, devbind.Request{DeviceID: "resume-" + version, Posture: store.ComplianceCompliant})
			dir := t.TempDir()
			ca, cert, key := writeDevice(t, dir, "dev", in, d)
			conf := eapolConf(t, dir, ca, cert, key, version)
			before := metricSum(t, in.scrape(t), "hardbound_eaptls_resumptions_total", `result="ok"`)
			out, err := runEapolTest(t, conf, portOf(in.Addr("radius-auth")), in.radiusSecret, 2)
			if err != nil {
				t.Fatalf("eapol_test: %v\n%s", err, tail(out, 60))
			}
			if !strings.Contains(out, "Using TLS version TLSv"+version) {
				t.Fatalf("eapol_test did not negotiate TLS %s:\n%s", version, tail(out, 60))
			}
			if n := resumedCount(out); n != 2 {
				t.Fatalf("eapol_test resumed %d of 3 authentications, want 2:\n%s", n, tail(out, 80))
			}
			if !strings.Contains(out, "MPPE keys OK: 3  mismatch: 0") || !strings.Contains(out, "\nSUCCESS") {
				t.Fatalf("eapol_test did not confirm the MPPE keys of all three:\n%s", tail(out, 60))
			}
			after := metricSum(t, in.scrape(t), "hardbound_eaptls_resumptions_total", `result="ok"`)
			if after-before != 2 {
				t.Fatalf("server counted %v resumptions, want 2", after-before)
			}
		})
		for _, st := range steps {
			t.Run("tls"+version+"/"+st.name, func(t *testing.T) {
				d := in.bind(t, devbind.Request{DeviceID: "resume-" + version + "-" + st.name, Posture: store.ComplianceCompliant})
				dir := t.TempDir()
				ca, cert, key := writeDevice(t, dir, "dev", in, d)
				conf := eapolConf(t, dir, ca, cert, key, version)
				relay := newHoldRelay(t, in.Addr("radius-auth"), 1)
				m := in.scrape(t)
				refusedBefore := metricSum(t, m, "hardbound_eaptls_resumptions_total", `result="refused"`)
				done := make(chan struct{})
				var out string
				var err error
				go func() {
					defer close(done)
					out, err = runEapolTest(t, conf, relay.port(), in.radiusSecret, 1)
				}()
				select {
				case <-relay.held:
				case <-done:
					t.Fatalf("eapol_test ended before its second authentication: %v\n%s", err, tail(out, 60))
				}
				st.change(t, d)
				close(relay.release)
				<-done
				m = in.scrape(t)
				refused := metricSum(t, m, "hardbound_eaptls_resumptions_total", `result="refused"`) - refusedBefore
				if err == nil || !strings.Contains(out, "Access-Reject") {
					t.Fatalf("the second authentication was not rejected: %v\n%s", err, tail(out, 60))
				}
				if refused != 1 {
					t.Fatalf("server counted %v refused resumptions, want 1", refused)
				}
				in.waitAuditEvent(t, "radius.auth", d.ID, "reject", st.wantReason)
			})
		}
	}
}

// TestResumeRotateKeysCLI: with eapol_test held between its first and
// second authentication (-r 1), `hardbound resume rotate-keys` on the
// built binary replaces the server's ticket keys, and the second
// authentication, which offers the ticket, is a full handshake (eapol_test
// reports resumed=0) that is still accepted with matching MPPE keys. The
// rotation is audited. Without the rotation the same run resumes
// (TestResumeEapolTest).
func TestResumeRotateKeysCLI(t *testing.T) {
	requireTools(t, "eapol_test")
	in := startE2E(t, nil)
	for _, version := range []string{"1.2", "1.3"} {
		t.Run("tls"+version, func(t *testing.T) {
			d := in.bind(t, devbind.Request{DeviceID: "rotate-" + version, Posture: store.ComplianceCompliant})
			dir := t.TempDir()
			ca, cert, key := writeDevice(t, dir, "dev", in, d)
			conf := eapolConf(t, dir, ca, cert, key, version)
			relay := newHoldRelay(t, in.Addr("radius-auth"), 1)
			done := make(chan struct{})
			var out string
			var err error
			go func() {
				defer close(done)
				out, err = runEapolTest(t, conf, relay.port(), in.radiusSecret, 1)
			}()
			select {
			case <-relay.held:
			case <-done:
				t.Fatalf("eapol_test ended before its second authentication: %v\n%s", err, tail(out, 60))
			}
			before := in.countAudit(t, "resumption.rotate_keys", "ticket_keys", "ok", "local")
			if got := in.cliOK(t, "resume", "rotate-keys"); !strings.Contains(got, "ticket keys replaced") {
				t.Fatalf("resume rotate-keys said %q", got)
			}
			close(relay.release)
			<-done
			if err != nil || !strings.Contains(out, "MPPE keys OK: 2  mismatch: 0") || !strings.Contains(out, "Using TLS version TLSv"+version) {
				t.Fatalf("eapol_test: %v\n%s", err, tail(out, 60))
			}
			if n := resumedCount(out); n != 0 {
				t.Fatalf("eapol_test resumed %d of 2 authentications after the rotation, want 0:\n%s", n, tail(out, 80))
			}
			if !strings.Contains(out, "OpenSSL: Handshake finished - resumed=0") {
				t.Fatalf("eapol_test did not report a full handshake:\n%s", tail(out, 80))
			}
			if in.countAudit(t, "resumption.rotate_keys", "ticket_keys", "ok", "local") != before+1 {
				t.Fatalf("the rotation was not audited:\n%s", in.auditDump(t, 10))
			}
		})
	}
}

// tail is the last n lines of s, for failure messages.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestHostapdReauthResumes is the real-NAS path: hostapd as a wired
// 802.1X authenticator in front of hardbound and wpa_supplicant as the
// device, over a veth pair. After the first authentication a
// re-authentication (wpa_cli reauthenticate, as at Session-Timeout or a
// roam) resumes the TLS session, for TLS 1.2 and 1.3, and hardbound
// decides it in full: the resumption is counted as ok and audited as an
// accept of the device.
func TestHostapdReauthResumes(t *testing.T) {
	requireTools(t, "hostapd", "hostapd_cli", "wpa_supplicant", "wpa_cli", "ip")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the hostapd test needs root (network namespaces); CI runs as root")
		}
		t.Skip("needs root for network namespaces")
	}
	const secret = "hostapd-resume-secret"
	cfg := testConfig(t)
	cfg.RADIUS.Clients = []radius.FileClient{{Name: "hostapd", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: freeUDPPort(t)}}
	in := startTest(t, cfg)
	for _, tc := range []struct{ version, phase1 string }{
		{"1.2", "tls_disable_tlsv1_3=1 tls_disable_session_ticket=0"},
		{"1.3", "tls_disable_tlsv1_3=0 tls_disable_session_ticket=0"},
	} {
		t.Run("tls"+tc.version, func(t *testing.T) {
			dev := in.bind(t, devbind.Request{DeviceID: "lab-resume-" + tc.version, Posture: store.ComplianceCompliant})
			dir := t.TempDir()
			caPath, certPath, keyPath := writeDevice(t, dir, "dev", in, dev)
			lab := newNetLab(t)
			hapdCtrl, supCtrl := filepath.Join(dir, "hapd"), filepath.Join(dir, "sup")
			hapdConf, supConf := filepath.Join(dir, "hostapd.conf"), filepath.Join(dir, "wpa_supplicant.conf")
			writeText(t, hapdConf, fmt.Sprintf(`interface=%s
driver=wired
ctrl_interface=%s
ieee8021x=1
eapol_version=2
eap_reauth_period=0
use_pae_group_addr=1
logger_stdout=-1
logger_stdout_level=1
own_ip_addr=127.0.0.1
nas_identifier=hb-lab-nas
auth_server_addr=127.0.0.1
auth_server_port=%d
auth_server_shared_secret=%s
`, lab.nasIf, hapdCtrl, portOf(in.Addr("radius-auth")), secret))
			writeText(t, supConf, fmt.Sprintf(`ctrl_interface=%s
ap_scan=0
network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity="anonymous@lab"
	ca_cert="%s"
	client_cert="%s"
	private_key="%s"
	eapol_flags=0
	phase1="%s"
}
`, supCtrl, caPath, certPath, keyPath, tc.phase1))
			hapdOut := startProc(t, "hostapd", "-d", hapdConf)
			eventually(t, 10*time.Second, "hostapd to start", func() bool {
				return strings.Contains(hapdOut.String(), "INTERFACE-ENABLED") || strings.Contains(hapdOut.String(), "interface state")
			})
			supOut := startProc(t, "ip", "netns", "exec", lab.ns, "wpa_supplicant", "-D", "wired", "-i", lab.supIf, "-c", supConf, "-d")
			accepts := func() int { return in.countAudit(t, "radius.auth", dev.ID, "ok", "ok") }
			eventually(t, 30*time.Second, "the first authentication over EAPOL", func() bool { return accepts() == 1 })
			if !strings.Contains(supOut.String(), "Using TLS version TLSv"+tc.version) {
				t.Fatalf("wpa_supplicant did not use TLS %s", tc.version)
			}
			before := metricSum(t, in.scrape(t), "hardbound_eaptls_resumptions_total", `version="`+tc.version+`"`, `result="ok"`)
			if out, err := exec.Command("ip", "netns", "exec", lab.ns, "wpa_cli", "-p", supCtrl, "-i", lab.supIf, "reauthenticate").CombinedOutput(); err != nil {
				t.Fatalf("wpa_cli reauthenticate: %v %s", err, out)
			}
			eventually(t, 30*time.Second, "the re-authentication to be accepted", func() bool { return accepts() == 2 })
			after := metricSum(t, in.scrape(t), "hardbound_eaptls_resumptions_total", `version="`+tc.version+`"`, `result="ok"`)
			if after-before != 1 {
				t.Fatalf("hardbound counted %v resumptions for the re-authentication, want 1", after-before)
			}
			if n := resumedCount(supOut.String()); n != 1 {
				t.Fatalf("wpa_supplicant reports %d resumed authentications, want 1", n)
			}
		})
	}
}
