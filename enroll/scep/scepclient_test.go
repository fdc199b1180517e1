package scep_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hardbound/enroll/ca"
	"hardbound/enroll/scep"
	"hardbound/store"
)

// micromdmSCEPClient is the micromdm scepclient the interop test builds;
// .ci/run installs the same one into the same cache directory.
const (
	micromdmSCEPClient        = "github.com/micromdm/scep/v2/cmd/scepclient"
	micromdmSCEPClientVersion = "v2.3.0"
)

// needPeer skips when a real peer is missing, except under CI=true, where
// a missing peer fails the test.
func needPeer(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required when CI=true: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// goTool returns the binary of pkg@version, built once with go install
// into <user cache>/hardbound-test-tools/<name>@<version>.
func goTool(t *testing.T, pkg, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	needPeer(t, err, "a user cache directory")
	name := path.Base(pkg)
	dir := filepath.Join(cache, "hardbound-test-tools", name+"@"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", pkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		needPeer(t, err, "go install "+pkg+"@"+version+": "+string(out))
	}
	return bin
}

// debianSCEPClient is Debian's scep package's scepclient (2.1.0).
func debianSCEPClient(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("/usr/bin/scepclient")
	needPeer(t, err, "Debian's scepclient (apt-get install scep)")
	return bin
}

// TestSCEPClientsInterop enrolls with two independent SCEP clients,
// without any client flag beyond server, challenge, key and name: Debian's
// scepclient 2.1.0 (micromdm's code of 2021, which casts every GetCACert
// key to RSA) and micromdm's scepclient v2.3.0 (which encrypts to every
// GetCACert certificate unless told to select one). Both need an RSA CA:
// `ca init --key-type rsa`. The challenge is a one-time minted one.
func TestSCEPClientsInterop(t *testing.T) {
	t.Parallel()
	clients := []struct {
		name string
		bin  func(t *testing.T) string
	}{
		{"debian_scep_2.1.0", debianSCEPClient},
		{"micromdm_" + micromdmSCEPClientVersion, func(t *testing.T) string {
			return goTool(t, micromdmSCEPClient, micromdmSCEPClientVersion)
		}},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			bin := cl.bin(t)
			e := newEnvKeyType(t, ca.KeyRSA, nil)
			device := "scepclient-" + strings.ReplaceAll(cl.name, ".", "-")
			challenge := e.mint(scep.MintRequest{DeviceID: device, Profile: "corp"})
			dir := t.TempDir()
			certPath := filepath.Join(dir, "client.pem")
			enroll := func(challenge string) ([]byte, error) {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin,
					"-server-url", e.srv.URL+"/scep/corp",
					"-challenge", challenge,
					"-private-key", filepath.Join(dir, "key.pem"),
					"-certificate", certPath,
					"-cn", device)
				cmd.Dir = dir
				return cmd.CombinedOutput()
			}
			out, err := enroll(challenge)
			if err != nil {
				t.Fatalf("%s: %v\n%s", cl.name, err, out)
			}
			b, err := os.ReadFile(certPath)
			if err != nil {
				t.Fatalf("no certificate written: %v\n%s", err, out)
			}
			blk, _ := pem.Decode(b)
			if blk == nil {
				t.Fatalf("client.pem holds no PEM:\n%s", b)
			}
			leaf, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if err := leaf.CheckSignatureFrom(e.ca.Issuing()); err != nil {
				t.Fatalf("certificate not from the issuing CA: %v", err)
			}
			rec, err := e.store.GetCert(t.Context(), store.HashCert(leaf))
			if err != nil {
				t.Fatal(err)
			}
			if rec.DeviceID != device || rec.Profile != "corp" || rec.Protocol != scep.Protocol || rec.Attested {
				t.Errorf("binding %+v, want unattested scep corp for %s", rec, device)
			}
			// The challenge was one-time: the same client is refused with it
			// again (a new key, so it is a new PKCSReq).
			for _, f := range []string{"key.pem", "client.pem", "csr.pem"} {
				_ = os.Remove(filepath.Join(dir, f))
			}
			if out, err := enroll(challenge); err == nil {
				t.Fatalf("a used challenge enrolled again:\n%s", out)
			} else if !strings.Contains(string(out), "failInfo") {
				t.Errorf("second enrollment failed without a CertRep failure:\n%s", out)
			}
		})
	}
}
