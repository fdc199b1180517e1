package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/ca"
	"hardbound/enroll/devbind"
	"hardbound/posture"
	"hardbound/store"
)

// requireTools fails under CI=true when a real peer is missing (CI installs
// them), and skips otherwise.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; .ci/run must install it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

// testConfig is a dev configuration on 127.0.0.1 ephemeral ports.
func testConfig(t *testing.T) *node.Config {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Dev = true
	cfg.RADIUS.AuthAddr = "127.0.0.1:0"
	cfg.RADIUS.AcctAddr = "127.0.0.1:0"
	cfg.Enroll.HTTPSAddr = "127.0.0.1:0"
	cfg.Enroll.HTTPAddr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Metrics.Addr = "127.0.0.1:0"
	return cfg
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// startTest starts an instance and stops it at test end.
func startTest(t *testing.T, cfg *node.Config) *instance {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = testLogWriter{t}
	}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	return &instance{Node: n, cfg: n.Config(), st: n.Store(), ca: n.CA(), posture: n.Posture(),
		radiusSecret: n.DevRADIUSSecret(), adminTokenPath: n.DevTokenPath()}
}

// instance is a running node with the parts tests reach for at hand.
type instance struct {
	*node.Node
	cfg            *node.Config
	st             store.Store
	ca             *ca.CA
	posture        *posture.Service
	radiusSecret   string
	adminTokenPath string
}

// bind makes a bound device in the running instance.
func (in *instance) bind(t *testing.T, r devbind.Request) *devbind.Device {
	t.Helper()
	d, err := devbind.Bind(context.Background(), in.ca, in.st, time.Now(), r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeDevice writes ca.crt (root), <name>.crt (leaf+issuing) and <name>.key.
func writeDevice(t *testing.T, dir, name string, in *instance, d *devbind.Device) (caPath, certPath, keyPath string) {
	t.Helper()
	caPath = filepath.Join(dir, "ca.crt")
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	root := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: in.ca.Root().Raw})
	var chain []byte
	for _, der := range d.Certificate.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(d.Key)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{caPath: root, certPath: chain, keyPath: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caPath, certPath, keyPath
}

// freeUDPPort returns a port that was free on 127.0.0.1 a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// eventually polls cond every 100ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}
