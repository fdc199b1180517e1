package main

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
// ticket's certificate); a ticket-key rotation makes it a full handshake.
func TestResumeEapolTest(t *testing.T) {
	requireTools(t, "eapol_test")
	in := startE2E(t, nil)
	type step struct {
		name string
		// change runs while eapol_test's second authentication is held.
		change     func(t *testing.T, d *devbind.Device)
		wantReason string // the second authentication's reject reason; "" accepted
		wantResume bool   // the second authentication resumed
	}
	steps := []step{
		{name: "quarantine", wantReason: "device_quarantined", wantResume: true, change: func(t *testing.T, d *devbind.Device) {
			in.cliOK(t, "device", "quarantine", d.ID)
		}},
		{name: "noncompliant", wantReason: "noncompliant", wantResume: true, change: func(t *testing.T, d *devbind.Device) {
			in.cliOK(t, "posture", "set", d.ID, "noncompliant")
		}},
		{name: "cert_revoke", wantReason: "cert_revoked", wantResume: true, change: func(t *testing.T, d *devbind.Device) {
			in.cliOK(t, "cert", "revoke", d.Binding.Serial)
		}},
		{name: "key_rotation", wantResume: false, change: func(t *testing.T, d *devbind.Device) {
			if err := in.radius.DropTickets(); err != nil {
				t.Fatal(err)
			}
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
				okBefore := metricSum(t, m, "hardbound_eaptls_resumptions_total", `result="ok"`)
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
				resumedOK := metricSum(t, m, "hardbound_eaptls_resumptions_total", `result="ok"`) - okBefore
				if st.wantReason == "" {
					if err != nil || !strings.Contains(out, "MPPE keys OK: 2  mismatch: 0") {
						t.Fatalf("eapol_test: %v\n%s", err, tail(out, 60))
					}
					if n := resumedCount(out); n != 0 || resumedOK != 0 {
						t.Fatalf("resumed after the ticket keys were dropped (eapol_test %d, server %v)", n, resumedOK)
					}
					return
				}
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

// tail is the last n lines of s, for failure messages.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
