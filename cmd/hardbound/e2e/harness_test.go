// Package e2e drives the built hardbound binary through its public
// surface only: the config file, the command line, the RADIUS, enrollment,
// admin and metrics listeners, and the files a data dir documents (the CA
// root, the --dev token, secret and test attestation authority). TestMain
// builds the binary once (with -race when the tests run with it); every
// test starts its own servers on 127.0.0.1 ephemeral ports.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	"hardbound/store"
)

// hardboundBin is the binary TestMain built.
var hardboundBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hardbound-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	hardboundBin = filepath.Join(dir, "hardbound")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", hardboundBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command(goTool, append(args, "hardbound/cmd/hardbound")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building hardbound:", err)
		return 2
	}
	return m.Run()
}

// requireTools fails under CI=true when a real peer is missing (CI installs
// them), and skips otherwise.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (CI must install it: see .ci/run)", tool)
			}
			t.Skipf("%s not installed", tool)
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
	cfg.RADIUS.RadSec.Addr = "127.0.0.1:0"
	return cfg
}

// instance is one running `hardbound serve` process.
type instance struct {
	t       *testing.T
	cfg     *node.Config // as written to the config file
	cfgPath string       // the config file serve runs on

	cmd    *exec.Cmd
	exited chan struct{}
	stderr *syncBuffer

	mu    sync.Mutex
	addrs map[string]string // banner: listener name -> bound address

	// From the data dir once the server is up.
	ca             caFiles
	radiusSecret   string // --dev: the 127.0.0.0/8 NAS secret
	adminTokenPath string
	st             apiStore
}

// caFiles is the CA as the data dir publishes it.
type caFiles struct{ root, issuing *x509.Certificate }

func (c caFiles) Root() *x509.Certificate    { return c.root }
func (c caFiles) Issuing() *x509.Certificate { return c.issuing }

// startE2E starts a --dev server on ephemeral 127.0.0.1 ports after mod
// adjusted the configuration.
func startE2E(t *testing.T, mod func(cfg *node.Config)) *instance {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(cfg)
	}
	return startTest(t, cfg)
}

// startTest writes cfg as hardbound.yaml, runs `hardbound serve` on it
// (with --dev when cfg.Dev) and returns once the banner has named every
// configured listener. The server is stopped at test end.
func startTest(t *testing.T, cfg *node.Config) *instance {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "hardbound.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfgPath}
	if cfg.Dev {
		args = append(args, "--dev")
	}
	in := &instance{t: t, cfg: cfg, cfgPath: cfgPath, addrs: map[string]string{}, exited: make(chan struct{}), stderr: &syncBuffer{}}
	in.cmd = exec.Command(hardboundBin, args...)
	in.cmd.Env = cleanEnv()
	in.cmd.Stderr = in.stderr
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = in.cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() {
		in.Shutdown()
		if t.Failed() {
			t.Logf("server log (%s):\n%s", cfg.DataDir, in.stderr.tail(150))
		}
	})
	want := wantListeners(cfg)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for len(in.addrsCopy()) < len(want) {
		select {
		case line, ok := <-lines:
			if !ok {
				<-in.exited
				t.Fatalf("serve exited (%v) before naming its listeners\n%s", in.cmd.ProcessState, in.stderr.tail(80))
			}
			if f := strings.Fields(line); len(f) >= 2 && want[f[0]] {
				in.mu.Lock()
				in.addrs[f[0]] = f[1]
				in.mu.Unlock()
			}
		case <-deadline:
			t.Fatalf("serve named %v of the listeners %v within 60s\n%s", in.addrsCopy(), want, in.stderr.tail(80))
		}
	}
	go func() { // the rest of stdout, so the server never blocks on it
		for range lines {
		}
	}()
	in.loadDataDir(t)
	return in
}

// wantListeners is the banner names of the listeners cfg configures.
func wantListeners(cfg *node.Config) map[string]bool {
	want := map[string]bool{}
	for name, addr := range map[string]string{
		"radius-auth": cfg.RADIUS.AuthAddr, "radius-acct": cfg.RADIUS.AcctAddr,
		"enroll-https": cfg.Enroll.HTTPSAddr, "enroll-http": cfg.Enroll.HTTPAddr,
		"admin": cfg.Admin.Addr, "metrics": cfg.Metrics.Addr, "radsec": cfg.RADIUS.RadSec.Addr,
	} {
		if addr != "" {
			want[name] = true
		}
	}
	return want
}

// cleanEnv is the environment without the HARDBOUND_* variables a
// developer's shell may carry.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HARDBOUND_") {
			env = append(env, kv)
		}
	}
	return env
}

func (in *instance) loadDataDir(t *testing.T) {
	t.Helper()
	dir := in.cfg.DataDir
	in.ca = caFiles{root: readCert(t, filepath.Join(dir, "ca", "root.crt")), issuing: readCert(t, filepath.Join(dir, "ca", "issuing.crt"))}
	if in.cfg.Dev {
		b, err := os.ReadFile(filepath.Join(dir, "radius.secret"))
		if err != nil {
			t.Fatal(err)
		}
		in.radiusSecret = strings.TrimSpace(string(b))
		in.adminTokenPath = filepath.Join(dir, "admin.token")
		in.st = apiStore{in: in}
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (in *instance) addrsCopy() map[string]string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]string, len(in.addrs))
	for k, v := range in.addrs {
		out[k] = v
	}
	return out
}

// Addr is a listener's bound address as the banner printed it.
func (in *instance) Addr(name string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.addrs[name]
}

// Shutdown sends SIGTERM and waits for a clean exit (it is idempotent).
func (in *instance) Shutdown() {
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
		if st := in.cmd.ProcessState; st != nil && st.ExitCode() != 0 {
			in.t.Errorf("serve exited %d after SIGTERM\n%s", st.ExitCode(), in.stderr.tail(80))
		}
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
		in.t.Errorf("serve did not stop within 20s of SIGTERM")
	}
}

// bind makes a test device through the --dev admin endpoint: the key is
// made here, the server issues for its CSR and records the binding.
func (in *instance) bind(t *testing.T, r devbind.Request) *devbind.Device {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req := admin.DevEnrollRequest{DeviceID: r.DeviceID, CSR: base64.StdEncoding.EncodeToString(csr), Format: r.Format,
		Profile: r.Profile, Posture: string(r.Posture), Unbound: r.NoBinding, Aliases: r.Aliases}
	if r.Validity != 0 {
		req.Validity = r.Validity.String()
	}
	var resp admin.DevEnrollResponse
	if err := in.api(http.MethodPost, "/api/v1/dev/devices", req, &resp); err != nil {
		t.Fatalf("dev enroll %s: %v", r.DeviceID, err)
	}
	var chain [][]byte
	for rest := []byte(resp.Certificate); ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		chain = append(chain, blk.Bytes)
	}
	if len(chain) == 0 {
		t.Fatalf("dev enroll %s: no certificate in %q", r.DeviceID, resp.Certificate)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	d := &devbind.Device{ID: resp.DeviceID, Key: key, Leaf: leaf,
		Certificate: tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}}
	if !r.NoBinding {
		d.Binding = &store.Cert{Serial: resp.Serial, DeviceID: resp.DeviceID, SHA256: store.HashCert(leaf)}
	}
	return d
}

// apiError is an admin API answer other than 2xx.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// notFound reports whether err is the API's 404.
func notFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// api calls the admin API with the dev token; body (if not nil) is sent as
// JSON and a 2xx answer is decoded into out (if not nil).
func (in *instance) api(method, path string, body, out any) error {
	tok, err := os.ReadFile(in.adminTokenPath)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+in.Addr("admin")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := in.httpsClient(in.t).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// apiStore reads the server's records through the admin API, under the
// names of the store methods the tests used to call in-process.
type apiStore struct{ in *instance }

func (s apiStore) GetCert(_ context.Context, leaf *x509.Certificate) (*admin.CertDetail, error) {
	var c admin.CertDetail
	if err := s.in.api(http.MethodGet, "/api/v1/certs/"+serialOf(leaf), nil, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (s apiStore) GetAttestation(_ context.Context, id string) (*admin.Attestation, error) {
	var a admin.Attestation
	if err := s.in.api(http.MethodGet, "/api/v1/attestations/"+id, nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (s apiStore) GetDevice(_ context.Context, id string) (*admin.Device, error) {
	var d admin.DeviceDetail
	if err := s.in.api(http.MethodGet, "/api/v1/devices/"+id, nil, &d); err != nil {
		return nil, err
	}
	return d.Device, nil
}

func (s apiStore) TailAudit(_ context.Context, n int) ([]admin.AuditEvent, error) {
	var l admin.List[admin.AuditEvent]
	if err := s.in.api(http.MethodGet, fmt.Sprintf("/api/v1/audit?n=%d", n), nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (s apiStore) ListSessions(_ context.Context, deviceID string, liveOnly bool) ([]admin.Session, error) {
	var l admin.List[admin.Session]
	path := "/api/v1/sessions?device=" + deviceID
	if !liveOnly {
		path += "&all=true"
	}
	if err := s.in.api(http.MethodGet, path, nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// serialOf is a certificate's serial as the API names it (lower-case hex).
func serialOf(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

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

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail is the last n lines.
func (s *syncBuffer) tail(n int) string {
	lines := strings.Split(s.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
