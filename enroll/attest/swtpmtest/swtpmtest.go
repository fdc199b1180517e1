// Package swtpmtest starts a real software TPM (swtpm) for tests: TPM 2.0
// state made by swtpm_setup with an EK certificate from a private
// swtpm-localca, served on a Unix socket, and an adapter that gives it to
// go-attestation. It is shared by the attestation tests and the
// end-to-end tests so that both wait for the TPM the same way.
package swtpmtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/tpmutil"
)

// TPM is a running swtpm.
type TPM struct {
	Sock string // the TPM command socket
	// RootPEM and IssuerPEM are the localca's root and the issuer of the
	// EK certificate, the trust a relying party configures for it.
	RootPEM, IssuerPEM string
}

// Start runs swtpm_setup and swtpm for the test and stops it at cleanup.
// A missing tool skips the test, except under CI=true where it fails:
// a real peer missing in CI is a defect, not a reason to pass.
func Start(t testing.TB) *TPM {
	t.Helper()
	for _, n := range []string{"swtpm", "swtpm_setup", "swtpm_localca"} {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required when CI=true: %v", n, err)
			}
			t.Skipf("%s not installed: %v", n, err)
		}
	}
	localcaBin, _ := exec.LookPath("swtpm_localca")
	// Unix socket paths are limited to ~108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "hbtpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	state, lca := filepath.Join(dir, "state"), filepath.Join(dir, "ca")
	for _, d := range []string{state, lca} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Our own localca configuration: the default state directory is
	// machine-wide (docs/attestation.md §3.4).
	localca := write("swtpm-localca.conf", fmt.Sprintf("statedir = %[1]s\nsignkey = %[1]s/signkey.pem\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", lca))
	opts := write("swtpm-localca.options", "--platform-manufacturer hardbound\n--platform-version 2.1\n--platform-model test\n")
	setup := write("swtpm_setup.conf", fmt.Sprintf("create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n", localcaBin, localca, opts))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "swtpm_setup", "--tpm2", "--tpmstate", state,
		"--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--overwrite", "--config", setup).CombinedOutput(); err != nil {
		t.Fatalf("swtpm_setup: %v\n%s", err, out)
	}

	sock := filepath.Join(dir, "tpm.sock")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+sock+".ctrl",
		"--flags", "not-need-init,startup-clear")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("swtpm socket: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if err := waitListening(sock, exited, 20*time.Second); err != nil {
		t.Fatalf("swtpm: %v: %s", err, stderr.String())
	}
	return &TPM{Sock: sock,
		RootPEM:   filepath.Join(lca, "swtpm-localca-rootca-cert.pem"),
		IssuerPEM: filepath.Join(lca, "issuercert.pem")}
}

// waitListening returns once the socket accepts a connection. The file
// appears when swtpm binds, before it listens, so its existence alone is
// not readiness: a client that dials in between is refused.
func waitListening(sock string, exited <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			// swtpm serves one client at a time and takes the next
			// once this one closes.
			return c.Close()
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited before listening: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s: %w", sock, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Open connects go-attestation to the TPM; the caller closes it.
func (p *TPM) Open(t testing.TB) *attest.TPM {
	t.Helper()
	tpm, err := attest.OpenTPM(&attest.OpenConfig{CommandChannel: channel{tpmutil.NewEmulatorReadWriteCloser(p.Sock)}})
	if err != nil {
		t.Fatalf("OpenTPM: %v", err)
	}
	return tpm
}

// channel adapts go-tpm's emulator socket to go-attestation's command
// channel, which also wants an event log (swtpm keeps none).
type channel struct {
	*tpmutil.EmulatorReadWriteCloser
}

func (channel) MeasurementLog() ([]byte, error) { return nil, nil }

// Close is a no-op: go-tpm's emulator client dials per command and holds
// no connection between them.
func (channel) Close() error { return nil }
