package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/store"
	"hardbound/store/auditexport"
	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger/badgertest"
)

// serveChildEnv makes the test binary run `hardbound` with the arguments
// in the variable (JSON), so a test can kill -9 a real server process.
const serveChildEnv = "HARDBOUND_TEST_SERVE_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(serveChildEnv); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := run(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// serverProcess is `hardbound serve --dev` in its own process.
type serverProcess struct {
	cmd   *exec.Cmd
	admin string // host:port
	done  chan struct{}
	out   *syncBuffer
}

func startServerProcess(t *testing.T, cfgPath, dataDir string) *serverProcess {
	t.Helper()
	args, _ := json.Marshal([]string{"serve", "--dev", "--config", cfgPath, "--data-dir", dataDir})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+string(args))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, done: make(chan struct{}), out: out}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "CA root:") {
		select {
		case <-p.done:
			t.Fatalf("serve exited: %s", out)
		case <-deadline:
			t.Fatalf("no banner after 60s: %s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	m := bannerAdmin.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no admin address in the banner: %s", out)
	}
	p.admin = m[1]
	return p
}

func (p *serverProcess) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit on %v: %s", sig, p.out)
	}
}

// cliAt runs the CLI against a server process.
func cliAt(t *testing.T, p *serverProcess, dataDir string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	full := append([]string{"--server", "https://" + p.admin, "--token-file", filepath.Join(dataDir, "admin.token"),
		"--ca-file", filepath.Join(dataDir, "ca", "root.crt")}, args...)
	code := run(ctx, full, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// receivedSeqs counts each event seq in a receiver's file.
func receivedSeqs(t *testing.T, path string) (map[uint64]int, int) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[uint64]int{}, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen, cps := map[uint64]int{}, 0
	if err := auditexport.ReadRecords(bufio.NewReader(f), func(ev *store.AuditEvent, cp *store.AuditCheckpoint) error {
		if ev != nil {
			seen[ev.Seq]++
		} else {
			cps++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seen, cps
}

// TestE2EAuditExportKill9AndTamper drives a real `hardbound serve` process
// with an audit sink to a real rsyslog over TLS and one over TCP:
//   - a burst of audited admin refusals; kill -9 of the server in the
//     middle of it; a restart: both of rsyslog's files hold every seq of
//     the chain, no gap (duplicates allowed, by seq);
//   - `audit verify` and `audit verify --checkpoints <rsyslog file>` OK;
//   - the tail cut from the stopped server's store with the head fixed:
//     `audit verify` reports the truncation by seq;
//   - the whole chain rewritten consistently and the stored checkpoints
//     dropped: `audit verify` (the server's own view) says OK, `audit
//     verify --checkpoints` with what rsyslog received reports it.
func TestE2EAuditExportKill9AndTamper(t *testing.T) {
	rs := rsyslogtest.Start(t, rsyslogtest.NewPKI(t, t.TempDir()))
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "hardbound.yaml")
	cfg := e2eServeConfig + fmt.Sprintf(`log:
  level: warn
audit:
  checkpoint: {every: 200, interval: 1s}
  sinks:
    - {name: siem, type: syslog, transport: tls, address: "127.0.0.1:%d", ca_file: %q, confirm_after: 500ms}
    - {name: siem-tcp, type: syslog, transport: tcp, address: "127.0.0.1:%d", confirm_after: 500ms}
`, rs.TLSPort, rs.PKI.CAFile, rs.TCPPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	srv := startServerProcess(t, cfgPath, dataDir)
	// The burst: admin requests with a wrong token, each one an audit
	// event (admin.auth denied), from 8 clients at once.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, filepath.Join(dataDir, "ca", "root.crt"))}, Timeout: 5 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "https://"+srv.admin+"/api/v1/devices", nil)
				req.Header.Set("Authorization", "Bearer wrong")
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	eventually(t, 2*time.Minute, "600 events at rsyslog before the kill", func() bool {
		seen, _ := receivedSeqs(t, rs.TLSFile())
		return len(seen) >= 600
	})
	srv.stop(t, syscall.SIGKILL) // in the middle of the burst
	close(stop)
	wg.Wait()

	srv = startServerProcess(t, cfgPath, dataDir)
	var tail admin.List[admin.AuditEvent]
	head := func() uint64 {
		r := cliAt(t, srv, dataDir, "--json", "audit", "tail", "-n", "1")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tail) != nil || len(tail.Items) != 1 {
			t.Fatalf("audit tail: %+v", r)
		}
		return tail.Items[0].Seq
	}
	want := head()
	for _, f := range []string{rs.TLSFile(), rs.TCPFile()} {
		eventually(t, 2*time.Minute, "every seq at "+filepath.Base(f), func() bool {
			seen, _ := receivedSeqs(t, f)
			for s := uint64(1); s <= want; s++ {
				if seen[s] == 0 {
					return false
				}
			}
			return true
		})
		seen, cps := receivedSeqs(t, f)
		dups := 0
		for _, n := range seen {
			dups += n - 1
		}
		t.Logf("%s: seqs 1-%d all present, %d duplicates, %d checkpoints", filepath.Base(f), want, dups, cps)
	}
	if r := cliAt(t, srv, dataDir, "audit", "verify"); r.code != 0 || !strings.Contains(r.stdout, "audit chain OK") {
		t.Fatalf("audit verify: %+v", r)
	}
	// Wait for a checkpoint of the final head to reach rsyslog.
	eventually(t, 30*time.Second, "a checkpoint at rsyslog", func() bool { _, cps := receivedSeqs(t, rs.TLSFile()); return cps > 0 })
	if r := cliAt(t, srv, dataDir, "audit", "verify", "--checkpoints", rs.TLSFile()); r.code != 0 || !strings.Contains(r.stdout, "signed checkpoint at seq") {
		t.Fatalf("audit verify --checkpoints: %+v", r)
	}
	srv.stop(t, syscall.SIGTERM)
	rs.Stop()
	received := filepath.Join(dir, "received.log")
	if b, err := os.ReadFile(rs.TLSFile()); err != nil || os.WriteFile(received, b, 0o600) != nil {
		t.Fatal(err)
	}

	// Truncation: cut the last 30 events and fix the head.
	db := filepath.Join(dataDir, "db")
	last, err := lastCheckpointSeq(t, received)
	if err != nil {
		t.Fatal(err)
	}
	badgertest.TruncateAudit(t, db, last-30)
	srv = startServerProcess(t, cfgPath, dataDir)
	r := cliAt(t, srv, dataDir, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN") || !strings.Contains(r.stdout, "truncated") {
		t.Fatalf("audit verify after truncation: %+v", r)
	}
	t.Logf("after truncation: %s", strings.TrimSpace(r.stdout))
	srv.stop(t, syscall.SIGTERM)

	// A consistent rewrite of the whole chain, stored checkpoints gone.
	badgertest.RewriteAudit(t, db, func(e *store.AuditEvent) {
		if e.Seq == 10 {
			e.Reason = "rewritten"
		}
	}, true)
	srv = startServerProcess(t, cfgPath, dataDir)
	defer srv.stop(t, syscall.SIGTERM)
	if r := cliAt(t, srv, dataDir, "audit", "verify"); r.code != 0 {
		t.Fatalf("the rewritten chain should pass the server's own check (that is the attack): %+v", r)
	}
	r = cliAt(t, srv, dataDir, "--json", "audit", "verify", "--checkpoints", received)
	var vr admin.VerifyResult
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &vr) != nil || vr.OK {
		t.Fatalf("audit verify --checkpoints after the rewrite: %+v", r)
	}
	// Every checkpoint rsyslog received from seq 10 on disagrees with the
	// rewritten chain (the cut tail is reported too); the last one that
	// matched is before 10.
	var rewritten []uint64
	for _, p := range vr.Problems {
		if p.Kind == auditexport.ProblemRewritten {
			rewritten = append(rewritten, p.Seq)
		}
	}
	if len(rewritten) == 0 || rewritten[0] < 10 || vr.AnchorSeq >= 10 {
		t.Fatalf("rewrite not located: anchor %d, rewritten at %v", vr.AnchorSeq, rewritten)
	}
	t.Logf("after the rewrite: anchor (last matching checkpoint) seq %d, first mismatch seq %d, %d checkpoints disagree", vr.AnchorSeq, rewritten[0], len(rewritten))
	// The export for investigations holds the rewritten event.
	out := filepath.Join(dir, "export.jsonl")
	if r := cliAt(t, srv, dataDir, "audit", "export", "--from-seq", "10", "-o", out); r.code != 0 {
		t.Fatalf("audit export: %+v", r)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), `"seq":10,`) || !strings.Contains(strings.SplitN(string(b), "\n", 2)[0], `"reason":"rewritten"`) {
		t.Fatalf("export starts with %.300s", b)
	}
}

func lastCheckpointSeq(t *testing.T, path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cps, err := auditexport.ReadCheckpoints(f)
	if err != nil || len(cps) == 0 {
		return 0, fmt.Errorf("no checkpoint in %s: %v", path, err)
	}
	var last uint64
	for _, c := range cps {
		last = max(last, c.Seq)
	}
	return last, nil
}

// tlsConfigFor trusts the dev CA's root for the admin listener.
func tlsConfigFor(t *testing.T, rootFile string) *tls.Config {
	t.Helper()
	b, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no root in " + rootFile)
	}
	return &tls.Config{RootCAs: pool}
}
