package auditexport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger"
	"hardbound/store/config"
)

// The child process of TestRsyslogKill9: what `hardbound serve` runs for
// the audit chain (a Badger store on disk, the Exporter and the
// Checkpointer) under a burst of appends, in a process the test can kill.
const childEnv = "HARDBOUND_AUDITEXPORT_CHILD"

type childConfig struct {
	Dir     string       `json:"dir"`
	KeyFile string       `json:"key_file"`
	Sinks   []SinkConfig `json:"sinks"`
	Burst   int          `json:"burst"`
}

func TestMain(m *testing.M) {
	if c := os.Getenv(childEnv); c != "" {
		if err := runChild(c); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(conf string) error {
	var c childConfig
	if err := json.Unmarshal([]byte(conf), &c); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	st, err := badger.Open(ctx, c.Dir)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := LoadOrCreateKey(c.KeyFile)
	if err != nil {
		return err
	}
	signer, err := NewSigner(key)
	if err != nil {
		return err
	}
	m := newLagMetrics()
	exp, err := New(st, FileConfig{Sinks: c.Sinks}, Options{Metrics: m, Poll: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	cpr := NewCheckpointer(st, signer, CheckpointConfig{Every: 500, Interval: config.Duration(time.Second)}, nil)
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	wg.Go(func() { cpr.Run(ctx) })
	out := bufio.NewWriter(os.Stdout)
	for n := c.Burst; n > 0 && ctx.Err() == nil; n -= 50 {
		if err := appendEvents(ctx, st, min(n, 50)); err != nil {
			return err
		}
		tl, _ := st.TailAudit(ctx, 1)
		fmt.Fprintf(out, "appended %d\n", tl[0].Seq)
		out.Flush()
	}
	fmt.Fprintln(out, "burst done")
	out.Flush()
	for ctx.Err() == nil {
		var head uint64
		if tl, _ := st.TailAudit(ctx, 1); len(tl) == 1 {
			head = tl[0].Seq
		}
		fmt.Fprintf(out, "head %d", head)
		for _, s := range c.Sinks {
			lag, _, _ := m.get(s.Name)
			fmt.Fprintf(out, " %d", lag)
		}
		fmt.Fprintln(out)
		out.Flush()
		sleep(ctx, 100*time.Millisecond)
	}
	wg.Wait()
	return nil
}

// child is a running child process and its stdout lines.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func startChild(t *testing.T, c childConfig) *child {
	t.Helper()
	b, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case ch.lines <- sc.Text():
			default: // the test only needs recent lines
			}
		}
		cmd.Wait()
		close(ch.done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-ch.done })
	return ch
}

// await reads lines until match accepts one (bounded).
func (c *child) await(t *testing.T, d time.Duration, what string, match func(string) bool) {
	t.Helper()
	timeout := time.After(d)
	last := ""
	for {
		select {
		case l := <-c.lines:
			last = l
			if match(l) {
				return
			}
		case <-c.done:
			t.Fatalf("child exited while waiting for %s (last line %q)", what, last)
		case <-timeout:
			t.Fatalf("timed out waiting for %s (last line %q)", what, last)
		}
	}
}

// TestRsyslogKill9: the process appending and exporting is killed with
// SIGKILL in the middle of a burst and started again; rsyslog's TLS and
// TCP files then hold every seq of the chain with no gap (duplicates only
// from the resend after the restart), and the checkpoints they received
// verify the chain.
func TestRsyslogKill9(t *testing.T) {
	pki := rsyslogtest.NewPKI(t, t.TempDir())
	rs := rsyslogtest.Start(t, pki)
	dir := t.TempDir()
	cfg := childConfig{Dir: filepath.Join(dir, "db"), KeyFile: filepath.Join(dir, "audit", "checkpoint.key"), Sinks: rsyslogSinks(rs), Burst: 20000}

	first := startChild(t, cfg)
	var killedAt uint64
	first.await(t, 2*time.Minute, "4000 events appended", func(l string) bool {
		if s, ok := strings.CutPrefix(l, "appended "); ok {
			killedAt, _ = strconv.ParseUint(s, 10, 64)
			return killedAt >= 4000
		}
		return false
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	before := readReceived(t, rs.TLSFile())
	t.Logf("killed at seq >= %d; rsyslog (tls) had %d distinct seqs", killedAt, len(before.count))

	cfg.Burst = 1000 // the restarted process goes on appending
	second := startChild(t, cfg)
	second.await(t, time.Minute, "the end of the second burst", func(l string) bool { return l == "burst done" })
	var head uint64
	second.await(t, 2*time.Minute, "both sinks caught up", func(l string) bool {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "head" {
			return false
		}
		head, _ = strconv.ParseUint(f[1], 10, 64)
		return head > killedAt && f[2] == "0" && f[3] == "0"
	})
	second.cmd.Process.Signal(syscall.SIGTERM)
	<-second.done
	rs.Stop()

	st, err := badger.Open(t.Context(), cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tl, err := st.TailAudit(t.Context(), 1)
	if err != nil || len(tl) != 1 {
		t.Fatal(tl, err)
	}
	if tl[0].Seq < head {
		t.Fatalf("store head %d below what the child reported (%d)", tl[0].Seq, head)
	}
	head = tl[0].Seq
	pub, err := LoadPublicKey(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := KeySet{}
	if err := keys.Add(pub); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{rs.TLSFile(), rs.TCPFile()} {
		rc := readReceived(t, f)
		missing, dups := rc.gaps(head)
		if len(missing) > 0 {
			t.Errorf("%s: head %d, missing seqs %v", f, head, missing)
		}
		t.Logf("%s: %d distinct events of %d, %d duplicates, %d checkpoints", f, len(rc.count), head, dups, len(rc.cps))
		rep, err := Verify(t.Context(), st, VerifyOptions{Keys: keys, External: rc.cps})
		if err != nil || !rep.OK || rep.Checkpoints == 0 {
			t.Errorf("Verify against %s: %+v, %v", f, rep, err)
		}
	}
}
