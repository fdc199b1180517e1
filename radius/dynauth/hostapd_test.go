package dynauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startHostapd runs hostapd (driver=wired on a fresh veth pair) as a real
// RFC 5176 DAS that requires Event-Timestamp and Message-Authenticator.
// Outside CI a missing hostapd or missing root skips; in CI it fails.
func startHostapd(t *testing.T, secret string) (addr string) {
	t.Helper()
	need := func(ok bool, why string) {
		if ok {
			return
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("real peer unavailable in CI: %s", why)
		}
		t.Skipf("real peer unavailable: %s", why)
	}
	bin, err := exec.LookPath("hostapd")
	need(err == nil, "hostapd not installed")
	need(os.Geteuid() == 0, "needs root for a veth pair")
	_, err = exec.LookPath("ip")
	need(err == nil, "iproute2 not installed")

	ifname := fmt.Sprintf("hbdas%d", os.Getpid()%100000)
	_ = exec.Command("ip", "link", "del", ifname).Run() // left over from a killed run
	if out, err := exec.Command("ip", "link", "add", ifname, "type", "veth", "peer", "name", ifname+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", ifname).Run() })
	for _, n := range []string{ifname, ifname + "p"} {
		if out, err := exec.Command("ip", "link", "set", n, "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set up: %v: %s", err, out)
		}
	}
	// Reserve a free UDP port for the DAS.
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()

	conf := filepath.Join(t.TempDir(), "hostapd.conf")
	cfg := strings.Join([]string{
		"interface=" + ifname, "driver=wired", "ieee8021x=1", "eapol_version=2", "use_pae_group_addr=1",
		"eap_reauth_period=0", "nas_identifier=hb-test-nas", "own_ip_addr=127.0.0.1",
		"auth_server_addr=127.0.0.1", "auth_server_port=9", "auth_server_shared_secret=unused",
		fmt.Sprintf("radius_das_port=%d", port), "radius_das_client=127.0.0.1 " + secret,
		"radius_das_require_event_timestamp=1", "radius_das_require_message_authenticator=1",
		"logger_stdout=-1", "logger_stdout_level=1",
	}, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, conf)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "AP-ENABLED") {
				ready <- nil
				for sc.Scan() { // keep draining so hostapd never blocks on its pipe
				}
				return
			}
		}
		ready <- errors.New("hostapd exited before AP-ENABLED")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hostapd did not start")
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestHostapdDAS checks our packets against hostapd's DAS, which drops
// anything with a wrong authenticator, Message-Authenticator or missing
// Event-Timestamp, and checks its answers (with Message-Authenticator
// required) against our parser.
func TestHostapdDAS(t *testing.T) {
	const secret = "das-secret-for-hostapd"
	addr := startHostapd(t, secret)
	// A late answer to the first try is still accepted, so a short timeout
	// only costs a retransmission on a loaded machine, never the outcome.
	s := NewSender(SenderConfig{Tries: 2, Timeout: 200 * time.Millisecond, RequireResponseMA: true})
	tests := []struct {
		name   string
		req    Request
		secret string
		result Result
		cause  ErrorCause
	}{
		{"nak/unknown_session", Request{Identity: Identity{AcctSessionID: "0123456789ABCDEF", NASIdentifier: "hb-test-nas"}}, secret, ResultNAK, 503},
		{"nak/unknown_station", Request{Identity: Identity{CallingStationID: "02-00-00-00-00-01", UserName: "device-1"}}, secret, ResultNAK, 503},
		{"nak/other_nas", Request{Identity: Identity{AcctSessionID: "0123456789ABCDEF", NASIdentifier: "another-nas"}}, secret, ResultNAK, 403},
		{"nak/coa_vlan_unsupported", Request{Kind: CoA, VLAN: "666", Identity: Identity{AcctSessionID: "0123456789ABCDEF"}}, secret, ResultNAK, 401},
		{"timeout/wrong_secret_dropped", Request{Identity: Identity{AcctSessionID: "0123456789ABCDEF"}}, "not-the-secret", ResultTimeout, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := s.Send(context.Background(), NAS{Addr: addr, Secret: []byte(tc.secret)}, tc.req)
			if out.Result != tc.result || out.ErrorCause != tc.cause {
				t.Fatalf("outcome %+v, want %s %d", out, tc.result, tc.cause)
			}
		})
	}
}
