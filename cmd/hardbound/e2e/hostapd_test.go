package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/enroll/devbind"
	"hardbound/radius"
	"hardbound/store"
)

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startProc starts a long-running peer and kills it at test end.
func startProc(t *testing.T, name string, args ...string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, out.String())
		}
	})
	return out
}

// netLab is a veth pair: the NAS end in the root namespace (where hostapd
// reaches hardbound on 127.0.0.1), the supplicant end in a namespace of its
// own, so EAPOL really crosses a link.
type netLab struct {
	ns, nasIf, supIf string
}

func newNetLab(t *testing.T) *netLab {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	l := &netLab{ns: "hb-" + id, nasIf: "hbn" + id, supIf: "hbs" + id}
	mustRun(t, "ip", "netns", "add", l.ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", l.nasIf).Run()
		_ = exec.Command("ip", "netns", "del", l.ns).Run()
	})
	mustRun(t, "ip", "link", "add", l.nasIf, "type", "veth", "peer", "name", l.supIf)
	mustRun(t, "ip", "link", "set", l.supIf, "netns", l.ns)
	mustRun(t, "ip", "link", "set", l.nasIf, "up")
	mustRun(t, "ip", "-n", l.ns, "link", "set", l.supIf, "up")
	mustRun(t, "ip", "-n", l.ns, "link", "set", "lo", "up")
	return l
}

// TestHostapdDisconnect runs a real NAS: hostapd as a wired 802.1X
// authenticator with hardbound as its RADIUS server and DAS client, and
// wpa_supplicant as the device. The device authenticates over EAPOL; then a
// quarantine makes hardbound send a Disconnect-Request and hostapd drops the
// session.
func TestHostapdDisconnect(t *testing.T) {
	requireTools(t, "hostapd", "hostapd_cli", "wpa_supplicant", "wpa_cli", "ip")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the hostapd test needs root (network namespaces); CI runs as root")
		}
		t.Skip("needs root for network namespaces")
	}
	const secret = "hostapd-lab-secret"
	dasPort := freeUDPPort(t)
	cfg := testConfig(t)
	cfg.RADIUS.Clients = []radius.FileClient{{Name: "hostapd", CIDR: "127.0.0.1/32", Secret: secret, CoAPort: dasPort}}
	in := startTest(t, cfg)
	dev := in.bind(t, devbind.Request{DeviceID: "lab-device-1", Posture: store.ComplianceCompliant})

	dir := t.TempDir()
	caPath, certPath, keyPath := writeDevice(t, dir, "dev", in, dev)
	lab := newNetLab(t)
	hapdCtrl := filepath.Join(dir, "hapd")
	supCtrl := filepath.Join(dir, "sup")
	hapdConf := filepath.Join(dir, "hostapd.conf")
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
acct_server_addr=127.0.0.1
acct_server_port=%d
acct_server_shared_secret=%s
radius_das_port=%d
radius_das_client=127.0.0.1 %s
radius_das_require_event_timestamp=1
radius_das_require_message_authenticator=1
`, lab.nasIf, hapdCtrl, portOf(in.Addr("radius-auth")), secret, portOf(in.Addr("radius-acct")), secret, dasPort, secret))
	supConf := filepath.Join(dir, "wpa_supplicant.conf")
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
	phase1="tls_disable_tlsv1_3=0"
}
`, supCtrl, caPath, certPath, keyPath))

	hapdOut := startProc(t, "hostapd", "-d", hapdConf)
	eventually(t, 10*time.Second, "hostapd to start", func() bool {
		return strings.Contains(hapdOut.String(), "INTERFACE-ENABLED") || strings.Contains(hapdOut.String(), "interface state")
	})
	startProc(t, "ip", "netns", "exec", lab.ns, "wpa_supplicant", "-D", "wired", "-i", lab.supIf, "-c", supConf, "-d")

	supStatus := func() string {
		out, _ := exec.Command("ip", "netns", "exec", lab.ns, "wpa_cli", "-p", supCtrl, "-i", lab.supIf, "status").CombinedOutput()
		return string(out)
	}
	eventually(t, 30*time.Second, "the supplicant to authenticate over EAPOL", func() bool {
		return strings.Contains(supStatus(), "Supplicant PAE state=AUTHENTICATED") && strings.Contains(supStatus(), "EAP state=SUCCESS")
	})
	ctx := context.Background()
	var sess admin.Session
	eventually(t, 15*time.Second, "hostapd's Accounting-Start to reach the store", func() bool {
		ss, err := in.st.ListSessions(ctx, dev.ID, true)
		if err == nil && len(ss) == 1 {
			sess = ss[0]
			return true
		}
		return false
	})
	if sess.NAS != "hostapd" || sess.CertSHA256 != store.HashCert(dev.Leaf) {
		t.Errorf("session %+v not mapped to the NAS and cert", sess)
	}
	hapdAuthorized := func() bool {
		out, _ := exec.Command("hostapd_cli", "-p", hapdCtrl, "-i", lab.nasIf, "all_sta").CombinedOutput()
		return strings.Contains(string(out), "[AUTHORIZED]") || strings.Contains(string(out), "flags=[AUTH][ASSOC][AUTHORIZED]")
	}
	eventually(t, 10*time.Second, "hostapd to mark the station authorized", hapdAuthorized)

	in.cliOK(t, "device", "quarantine", dev.ID)
	eventually(t, 15*time.Second, "hostapd to accept the Disconnect-Request", func() bool {
		return strings.Contains(hapdOut.String(), "RADIUS DAS: Found a matching session") &&
			strings.Contains(hapdOut.String(), "AP-STA-DISCONNECTED")
	})
	eventually(t, 15*time.Second, "the audit chain to record the ACK", func() bool {
		evs, _ := in.st.TailAudit(ctx, 50)
		for _, ev := range evs {
			if ev.Action == "radius.disconnect" && ev.Subject == dev.ID && ev.Result == "ack" {
				return true
			}
		}
		return false
	})
	if hapdAuthorized() {
		t.Error("hostapd still lists the station as authorized after the Disconnect-ACK")
	}
	// The device tries again (EAPOL-Start); the quarantined device is rejected.
	if out, err := exec.Command("ip", "netns", "exec", lab.ns, "wpa_cli", "-p", supCtrl, "-i", lab.supIf, "reauthenticate").CombinedOutput(); err != nil {
		t.Fatalf("wpa_cli reauthenticate: %v %s", err, out)
	}
	eventually(t, 30*time.Second, "the re-authentication to be rejected as device_quarantined", func() bool {
		evs, _ := in.st.TailAudit(ctx, 50)
		for _, ev := range evs {
			if ev.Action == "radius.auth" && ev.Subject == dev.ID && ev.Result == "reject" && strings.HasPrefix(ev.Reason, "device_quarantined ") {
				return true
			}
		}
		return false
	})
}

func writeText(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
