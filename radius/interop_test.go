package radius

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireTool finds a real peer binary; in CI (CI=true) a missing one fails.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (required in CI): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

func runTool(t *testing.T, timeout time.Duration, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestInteropEapolTest runs hostap's eapol_test (supplicant + NAS in one)
// against the in-process server. eapol_test compares the MS-MPPE-Recv-Key it
// decrypts with its own PMK (MSK[0:32]) and prints "MPPE keys OK: 1
// mismatch: 0"; the Send-Key half is covered by the Go-peer tests.
func TestInteropEapolTest(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "eapol_test")
	ls := startLive(t, nil)
	// wpa_supplicant 2.10 + OpenSSL derive the max version from the lowest
	// disabled one, so "tls_disable_tlsv1_2=1" alone caps at TLS 1.1;
	// forcing 1.3 means disabling 1.0-1.2.
	const (
		only12 = "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_3=1"
		only13 = "tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=0"
	)
	tests := []struct {
		name    string
		client  string
		phase1  string
		extra   string
		version string // as eapol_test logs it; "" for rejects
	}{
		{"accept/tls1.2", "ok", only12, "", "TLSv1.2"},
		{"accept/tls1.3", "ok", only13, "", "TLSv1.3"},
		{"accept/tls1.3-allowed-negotiates-1.3", "ok", "tls_disable_tlsv1_3=0", "", "TLSv1.3"},
		{"accept/tls1.2-fragment-100", "ok", only12, "fragment_size=100", "TLSv1.2"},
		{"accept/tls1.3-fragment-100", "ok", only13, "fragment_size=100", "TLSv1.3"},
		{"reject/unbound-cert-tls1.3", "unbound", only13, "", ""},
		{"reject/unbound-cert-tls1.2", "unbound", only12, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ca, cert, key := ls.pki.writePEM(t, dir, tt.client)
			conf := fmt.Sprintf(`network={
	key_mgmt=WPA-EAP
	eap=TLS
	identity="anonymous@example.org"
	ca_cert="%s"
	client_cert="%s"
	private_key="%s"
	eap_workaround=0
	phase1="%s"
	%s
}
`, ca, cert, key, tt.phase1, tt.extra)
			confPath := filepath.Join(dir, "eapol.conf")
			if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-c", confPath, "-a", "127.0.0.1", "-p", strconv.Itoa(int(ls.auth.Port())), "-s", testSecret, "-t", "10", "-r", "0",
				// Its own MAC (Calling-Station-Id): one conversation per station and NAS.
				"-M", fmt.Sprintf("02:00:00:00:01:%02x", byte(stationSeq.Add(1)))}
			out, err := runTool(t, 30*time.Second, "", bin, args...)
			if testing.Verbose() {
				t.Logf("eapol_test: %s", grepLines(out, "Using TLS version", "MPPE keys", "SUCCESS", "FAILURE"))
			}
			if tt.version != "" {
				if err != nil {
					t.Fatalf("eapol_test failed: %v\n%s", err, tail(out, 40))
				}
				if !strings.Contains(out, "Using TLS version "+tt.version) {
					t.Fatalf("eapol_test did not negotiate %s:\n%s", tt.version, tail(out, 40))
				}
				if !strings.Contains(out, "MPPE keys OK: 1  mismatch: 0") || !strings.Contains(out, "SUCCESS") {
					t.Fatalf("eapol_test did not confirm the MPPE keys:\n%s", tail(out, 40))
				}
				return
			}
			if err == nil || strings.Contains(out, "\nSUCCESS") {
				t.Fatalf("eapol_test succeeded for a rejected cert:\n%s", tail(out, 40))
			}
			if !strings.Contains(out, "Access-Reject") {
				t.Fatalf("no Access-Reject seen:\n%s", tail(out, 40))
			}
			if ls.metrics.get("reject/unknown_cert") == 0 {
				t.Fatalf("reject not counted as unknown_cert: %v", ls.metrics)
			}
		})
	}
}

// TestInteropRadclient checks Status-Server on both ports and that an
// Access-Request without Message-Authenticator gets no reply at all.
func TestInteropRadclient(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "radclient")
	ls := startLive(t, nil)
	auth := fmt.Sprintf("127.0.0.1:%d", ls.auth.Port())
	acct := fmt.Sprintf("127.0.0.1:%d", ls.acct.Port())
	tests := []struct {
		name   string
		server string
		cmd    string
		stdin  string
		want   string // substring of the output; "" = expect no reply
	}{
		// The placeholder MA makes radclient compute a real one.
		{"ok/status-server-auth", auth, "status", "Message-Authenticator = 0x00\n", "Received Access-Accept"},
		{"ok/status-server-acct", acct, "status", "Message-Authenticator = 0x00\n", "Received Accounting-Response"},
		{"drop/access-request-without-ma", auth, "auth", "User-Name = \"bob\"\nUser-Password = \"x\"\nProxy-State = 0x41414141\n", ""},
		{"ok/accounting-start", acct, "acct", "Acct-Status-Type = Start\nAcct-Session-Id = \"radclient-1\"\nUser-Name = \"bob\"\n", "Received Accounting-Response"},
	}
	// The group returns only after its parallel subtests, so the checks
	// below see their effects.
	t.Run("group", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				out, err := runTool(t, 20*time.Second, tt.stdin, bin, "-x", "-r", "1", "-t", "1", tt.server, tt.cmd, testSecret)
				if tt.want == "" {
					if err == nil || strings.Contains(out, "Received") || !strings.Contains(out, "No reply") {
						t.Fatalf("expected no reply, got err=%v:\n%s", err, out)
					}
					return
				}
				if err != nil || !strings.Contains(out, tt.want) {
					t.Fatalf("err=%v, want %q in:\n%s", err, tt.want, out)
				}
			})
		}
	})
	if ls.metrics.get("drop/"+DropMissingMsgAuth) == 0 {
		t.Fatal("the MA-less request was not counted as a drop")
	}
	if _, ok := ls.sessions.get("lo", "radclient-1"); !ok {
		t.Fatal("radclient accounting Start not stored")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return strings.Join(out, " | ")
}
