package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/eaptls"
	"hardbound/radius/eapclient"
)

// e2eTimeout bounds every end-to-end test's own context.
const e2eTimeout = 60 * time.Second

func e2eContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (in *instance) rootPath() string  { return filepath.Join(in.cfg.DataDir, "ca", "root.crt") }
func (in *instance) tokenPath() string { return filepath.Join(in.cfg.DataDir, "admin.token") }

// cliResult is one run of the hardbound CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the hardbound CLI against in's admin API with the
// dev admin token.
func (in *instance) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return in.cliToken(t, in.tokenPath(), args...)
}

// cliToken is cli with another token file.
func (in *instance) cliToken(t *testing.T, tokenFile string, args ...string) cliResult {
	t.Helper()
	return runCLI(t, append([]string{"--server", "https://" + in.Addr("admin"), "--token-file", tokenFile, "--ca-file", in.rootPath()}, args...)...)
}

// runCLI runs the built hardbound binary with args.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, nil, nil, &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// cliOK runs the CLI and fails the test unless it exits 0.
func (in *instance) cliOK(t *testing.T, args ...string) string {
	t.Helper()
	r := in.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("hardbound %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// cliJSON runs the CLI with --json and decodes its output into v.
func (in *instance) cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := in.cliOK(t, append(args, "--json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("hardbound %s --json: output does not parse as %T: %v\n%s", strings.Join(args, " "), v, err, out)
	}
}

// nasClient is a NAS emulator talking to in's RADIUS listeners with the
// given shared secret (empty: the --dev "localhost" secret).
func (in *instance) nasClient(t *testing.T, secret string, mod func(*eapclient.Config)) *eapclient.Client {
	t.Helper()
	if secret == "" {
		secret = in.radiusSecret
	}
	cfg := eapclient.Config{
		Server: in.Addr("radius-auth"), AcctServer: in.Addr("radius-acct"), Secret: []byte(secret),
		NASIdentifier: "e2e-nas", Timeout: 3 * time.Second, Retries: 2,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := eapclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// authenticate runs one EAP-TLS conversation with cert (leaf + issuing CA
// and its key) against in, verifying the server against in's root.
func (in *instance) authenticate(t *testing.T, c *eapclient.Client, cert tls.Certificate) eapclient.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	roots := x509.NewCertPool()
	roots.AddCert(in.ca.Root())
	peer := eaptls.NewPeer(ctx, eaptls.PeerConfig{
		TLS: &tls.Config{
			RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		},
		Identity: "anonymous@e2e.test",
	})
	defer peer.Close()
	res, err := c.Authenticate(ctx, peer)
	if err != nil {
		t.Fatalf("EAP-TLS conversation failed: %v (result %+v)", err, res)
	}
	return res
}

// mustAccept authenticates and requires an Access-Accept whose MPPE keys
// match the supplicant's MSK.
func (in *instance) mustAccept(t *testing.T, c *eapclient.Client, cert tls.Certificate) eapclient.Result {
	t.Helper()
	res := in.authenticate(t, c, cert)
	if !res.Accepted {
		t.Fatalf("Access-Reject (%q), want Access-Accept; last audit: %s", res.ReplyMessage, in.lastAudit(t, "radius.auth"))
	}
	if !res.KeysMatch {
		t.Fatalf("Access-Accept without matching MS-MPPE keys (present %v)", res.KeysPresent)
	}
	return res
}

// mustReject authenticates, requires an Access-Reject and that the audit
// chain records it for device with reason.
func (in *instance) mustReject(t *testing.T, c *eapclient.Client, cert tls.Certificate, device, reason string) {
	t.Helper()
	n := in.countAudit(t, "radius.auth", device, "reject", reason)
	res := in.authenticate(t, c, cert)
	if res.Accepted {
		t.Fatalf("Access-Accept (VLAN %q), want Access-Reject with reason %s", res.VLAN, reason)
	}
	if n > 0 {
		// A repeat of an audited reject within a minute is counted, not
		// audited again (the audit budget, docs/radius.md).
		return
	}
	in.waitAudit(t, fmt.Sprintf("radius.auth reject %s for %s", reason, device),
		func() bool { return in.countAudit(t, "radius.auth", device, "reject", reason) > n })
}

// countAudit counts events of the last 1000 matching every non-empty field.
func (in *instance) countAudit(t *testing.T, action, subject, result, reason string) int {
	t.Helper()
	evs, err := in.st.TailAudit(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if matchAudit(ev, action, subject, result, reason) {
			n++
		}
	}
	return n
}

// matchAudit matches reason as the event's label: RADIUS decisions and
// refusals follow it with key=value facts (docs/radius.md).
func matchAudit(ev admin.AuditEvent, action, subject, result, reason string) bool {
	return (action == "" || ev.Action == action) && (subject == "" || ev.Subject == subject) &&
		(result == "" || ev.Result == result) && (reason == "" || ev.Reason == reason || strings.HasPrefix(ev.Reason, reason+" "))
}

// waitAudit waits (bounded) until cond holds; on timeout it dumps the tail
// of the audit chain.
func (in *instance) waitAudit(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for audit %s; tail:\n%s", what, in.auditDump(t, 20))
}

// waitAuditEvent waits for one event matching every non-empty field.
func (in *instance) waitAuditEvent(t *testing.T, action, subject, result, reason string) {
	t.Helper()
	in.waitAudit(t, fmt.Sprintf("%s/%s/%s/%s", action, subject, result, reason), func() bool {
		return in.countAudit(t, action, subject, result, reason) > 0
	})
}

func (in *instance) auditDump(t *testing.T, n int) string {
	t.Helper()
	evs, _ := in.st.TailAudit(context.Background(), n)
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %d %s %s %s %s %s\n", ev.Seq, ev.Actor, ev.Action, ev.Subject, ev.Result, ev.Reason)
	}
	return b.String()
}

func (in *instance) lastAudit(t *testing.T, action string) string {
	t.Helper()
	evs, _ := in.st.TailAudit(context.Background(), 50)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Action == action {
			ev := evs[i]
			return fmt.Sprintf("%s %s %s %s", ev.Action, ev.Subject, ev.Result, ev.Reason)
		}
	}
	return "(none)"
}

// rootPool is a pool with the data dir's CA root file, as a device or the
// CLI would load it.
func (in *instance) rootPool(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(in.rootPath())
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no PEM certificate", in.rootPath())
	}
	return p
}

// httpsClient trusts only the data dir's CA root.
func (in *instance) httpsClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: in.rootPool(t), MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 20 * time.Second, Transport: tr}
}

// httpDo sends one request and returns status and body.
func httpDo(t *testing.T, hc *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (in *instance) device(t *testing.T, id string) *admin.Device {
	t.Helper()
	d, err := in.st.GetDevice(context.Background(), id)
	if err != nil {
		t.Fatalf("device %s: %v", id, err)
	}
	return d
}

// writeSecret writes s to a 0600 file under t.TempDir.
func writeSecret(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// scrape fetches /metrics from in's metrics listener.
func (in *instance) scrape(t *testing.T) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+in.Addr("metrics")+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	status, body := httpDo(t, http.DefaultClient, req)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", status)
	}
	return string(body)
}

// metricSum sums the samples of name whose labels include every
// `key="value"` pair given.
func metricSum(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// run runs the built binary with args as a user's shell would: getenv
// gives the environment (nil: none beyond PATH and HOME), stdout and stderr
// collect its output. Ending ctx sends SIGTERM, as an operator's Ctrl-C
// does. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := exec.CommandContext(ctx, hardboundBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range []string{"HARDBOUND_SERVER", "HARDBOUND_TOKEN_FILE", "HARDBOUND_CA_FILE", "HARDBOUND_CONFIG", "GOMEMLIMIT"} {
		if getenv != nil && getenv(k) != "" {
			cmd.Env = append(cmd.Env, k+"="+getenv(k))
		}
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	if cmd.ProcessState != nil {
		return cmd.ProcessState.ExitCode()
	}
	fmt.Fprintf(stderr, "e2e: running hardbound: %v\n", err)
	return -1
}
