package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/admin"
	"hardbound/cmd/hardbound/internal/node"
	"hardbound/enroll/devbind"
	"hardbound/store"
	"hardbound/store/auditexport"
	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger/badgertest"
	"hardbound/store/config"
)

// receivedSeqs counts each event seq in a receiver's file, and the
// checkpoints.
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
	if err := auditexport.ReadRecords(f, func(ev *store.AuditEvent, cp *store.AuditCheckpoint) error {
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

// TestE2EAuditExportKill9AndTamper drives the hardbound binary with audit
// sinks to a real rsyslog over TLS (RFC 5425) and over TCP (RFC 6587):
//   - a burst of audited admin changes; kill -9 of the server in the
//     middle of it; a restart: both of rsyslog's files hold every seq of
//     the chain, no gap (duplicates allowed, by seq);
//   - `audit verify` and `audit verify --checkpoints <rsyslog file>` OK;
//   - the tail cut from the stopped server's store and the head fixed:
//     `audit verify` reports the truncation by seq;
//   - the whole chain rewritten consistently and the stored checkpoints
//     dropped: `audit verify` (the server's own view) says OK, `audit
//     verify --checkpoints` with what rsyslog received reports it.
func TestE2EAuditExportKill9AndTamper(t *testing.T) {
	rs := rsyslogtest.Start(t, rsyslogtest.NewPKI(t, t.TempDir()))
	cfg := testConfig(t)
	cfg.Log.Level = "warn"
	cfg.Audit.Checkpoint = auditexport.CheckpointConfig{Every: 200, Interval: config.Duration(time.Second)}
	half := config.Duration(500 * time.Millisecond)
	cfg.Audit.Sinks = []auditexport.SinkConfig{
		{Name: "siem", Type: "syslog", Transport: "tls", Address: fmt.Sprintf("127.0.0.1:%d", rs.TLSPort), CAFile: rs.PKI.CAFile, ConfirmAfter: half},
		{Name: "siem-tcp", Type: "syslog", Transport: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", rs.TCPPort), ConfirmAfter: half},
	}
	restart := func() *instance { return startTest(t, cloneConfig(cfg)) }

	in := restart()
	// The burst: 8 admin clients each quarantine and release their own
	// device in a loop; every change is an audit event in the change's
	// transaction.
	for i := range 8 {
		in.bind(t, devbind.Request{DeviceID: fmt.Sprintf("burst-%d", i)})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := fmt.Sprintf("burst-%d", i)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				action := "quarantine"
				if n%2 == 1 {
					action = "release"
				}
				_ = in.api(http.MethodPost, "/api/v1/devices/"+id+"/"+action, nil, nil) // fails once the server is killed
			}
		})
	}
	eventually(t, 2*time.Minute, "600 events at rsyslog before the kill", func() bool {
		seen, _ := receivedSeqs(t, rs.TLSFile())
		return len(seen) >= 600
	})
	in.cmd.Process.Kill() // kill -9, in the middle of the burst
	<-in.exited
	close(stop)
	wg.Wait()

	in = restart()
	var tail admin.List[admin.AuditEvent]
	in.cliJSON(t, &tail, "audit", "tail", "-n", "1")
	want := tail.Items[0].Seq
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
	if out := in.cliOK(t, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify: %s", out)
	}
	eventually(t, 30*time.Second, "a checkpoint at rsyslog", func() bool { _, cps := receivedSeqs(t, rs.TLSFile()); return cps > 0 })
	if out := in.cliOK(t, "audit", "verify", "--checkpoints", rs.TLSFile()); !strings.Contains(out, "signed checkpoint at seq") {
		t.Fatalf("audit verify --checkpoints: %s", out)
	}
	in.Shutdown()
	rs.Stop()
	received := filepath.Join(t.TempDir(), "received.log")
	if b, err := os.ReadFile(rs.TLSFile()); err != nil || os.WriteFile(received, b, 0o600) != nil {
		t.Fatal(err)
	}

	// Truncation: the last 30 events the newest received checkpoint
	// covers are cut, and the head fixed.
	db := filepath.Join(cfg.DataDir, "db")
	f, _ := os.Open(received)
	cps, err := auditexport.ReadCheckpoints(f)
	f.Close()
	if err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints received: %d, %v", len(cps), err)
	}
	last := cps[len(cps)-1].Seq
	badgertest.TruncateAudit(t, db, last-30)
	in = restart()
	r := in.cli(t, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN") || !strings.Contains(r.stdout, "truncated") {
		t.Fatalf("audit verify after truncation: %+v", r)
	}
	t.Logf("after truncation: %s", strings.TrimSpace(r.stdout))
	in.Shutdown()

	// A consistent rewrite of the whole chain, stored checkpoints gone.
	badgertest.RewriteAudit(t, db, func(e *store.AuditEvent) {
		if e.Seq == 10 {
			e.Reason = "rewritten"
		}
	}, true)
	in = restart()
	if r := in.cli(t, "audit", "verify"); r.code != 0 {
		t.Fatalf("the rewritten chain should pass the server's own check (that is the attack): %+v", r)
	}
	r = in.cli(t, "--json", "audit", "verify", "--checkpoints", received)
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
	t.Logf("after the rewrite: last matching checkpoint at seq %d, first mismatch at seq %d, %d checkpoints disagree", vr.AnchorSeq, rewritten[0], len(rewritten))
	// The export for investigations holds the rewritten event.
	out := filepath.Join(t.TempDir(), "export.jsonl")
	in.cliOK(t, "audit", "export", "--from-seq", "10", "-o", out)
	b, _ := os.ReadFile(out)
	if first := strings.SplitN(string(b), "\n", 2)[0]; !strings.Contains(first, `"seq":10,`) || !strings.Contains(first, `"reason":"rewritten"`) {
		t.Fatalf("export starts with %.300s", b)
	}
}

// cloneConfig copies cfg so that each start writes the same file.
func cloneConfig(c *node.Config) *node.Config {
	d := *c
	return &d
}
