package auditexport

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger/badgertest"
	"hardbound/store/config"
)

// rsyslogSinks are the two stream sinks of a test rsyslog.
func rsyslogSinks(r *rsyslogtest.Rsyslog) []SinkConfig {
	return []SinkConfig{
		{Name: "siem-tls", Type: "syslog", Transport: "tls", Address: "127.0.0.1:" + strconv.Itoa(r.TLSPort),
			CAFile: r.PKI.CAFile, Hostname: "hb-test", ConfirmAfter: config.Duration(500 * time.Millisecond), Timeout: config.Duration(3 * time.Second)},
		{Name: "siem-tcp", Type: "syslog", Transport: "tcp", Address: "127.0.0.1:" + strconv.Itoa(r.TCPPort),
			Hostname: "hb-test", ConfirmAfter: config.Duration(500 * time.Millisecond), Timeout: config.Duration(3 * time.Second)},
	}
}

// TestRsyslogOutageCatchUp: events stream to rsyslog over TLS and TCP while
// they are appended; rsyslog is stopped for 30 s (5 s with -short) while
// appends go on, and the lag grows; once it is started again every sink
// catches up, the lag returns to 0, and each file holds every seq from 1
// to the head, with the signed checkpoints among them.
func TestRsyslogOutageCatchUp(t *testing.T) {
	pki := rsyslogtest.NewPKI(t, t.TempDir())
	rs := rsyslogtest.Start(t, pki)
	st := badgertest.Memory(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	signer := testSigner(t)
	m := newLagMetrics()
	exp, err := New(st, FileConfig{Sinks: rsyslogSinks(rs)}, Options{Metrics: m, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cpr := NewCheckpointer(st, signer, CheckpointConfig{Every: 100, Interval: config.Duration(time.Second)}, nil)
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	wg.Go(func() { cpr.Run(ctx) })

	// A steady stream of events: 25 every 50 ms.
	appCtx, stopAppending := context.WithCancel(ctx)
	var appended sync.WaitGroup
	appended.Go(func() {
		for appCtx.Err() == nil {
			if err := appendEvents(appCtx, st, 25); err != nil && appCtx.Err() == nil {
				t.Errorf("append: %v", err)
				return
			}
			sleep(appCtx, 50*time.Millisecond)
		}
	})
	head := func() uint64 {
		tl, err := st.TailAudit(ctx, 1)
		if err != nil || len(tl) == 0 {
			return 0
		}
		return tl[0].Seq
	}
	waitFor(t, 30*time.Second, func() bool {
		return len(readReceived(t, rs.TLSFile()).count) > 200 && len(readReceived(t, rs.TCPFile()).count) > 200
	}, func() string { return "no events reached rsyslog" })

	outage := 30 * time.Second
	if testing.Short() {
		outage = 5 * time.Second
	}
	rs.Stop()
	stoppedAt := head()
	time.Sleep(outage)
	for _, s := range []string{"siem-tls", "siem-tcp"} {
		// The lag is refreshed between attempts, so it trails the head
		// by up to one backoff; it must have grown past the events
		// appended in the first half of the outage.
		moved := head() - stoppedAt
		lag, _, errs := m.get(s)
		if lag < moved/2 || errs == 0 {
			t.Errorf("%s during the outage: lag %d (head moved %d), %d errors", s, lag, moved, errs)
		}
	}
	rs.Start()
	time.Sleep(time.Second) // appends go on after the restart too
	stopAppending()
	appended.Wait()
	final := head()
	if _, err := cpr.Checkpoint(ctx); err != nil { // sign the final head
		t.Fatal(err)
	}
	for _, s := range []string{"siem-tls", "siem-tcp"} {
		waitFor(t, 60*time.Second, func() bool { lag, _, _ := m.get(s); return lag == 0 },
			func() string { lag, _, _ := m.get(s); return fmt.Sprintf("%s still lags %d of %d", s, lag, final) })
	}
	// The cursors are saved and the last checkpoint exported.
	waitFor(t, 30*time.Second, func() bool {
		for _, s := range []string{"siem-tls", "siem-tcp"} {
			c, err := st.GetAuditCursor(ctx, s)
			if err != nil || c.Seq != final || c.CheckpointSeq != final {
				return false
			}
		}
		return true
	}, func() string { return "cursors did not reach the head" })
	cancel()
	wg.Wait()
	rs.Stop() // flush the files

	keys := KeySet{}
	if err := keys.Add(signer.Public()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{rs.TLSFile(), rs.TCPFile()} {
		rc := readReceived(t, f)
		missing, dups := rc.gaps(final)
		if len(missing) > 0 {
			t.Errorf("%s: head %d, missing seqs %v", f, final, missing)
		}
		for seq, ev := range rc.evs {
			if ev.ComputeHash() != ev.Hash {
				t.Fatalf("%s: event %d arrived altered", f, seq)
			}
		}
		if len(rc.cps) == 0 {
			t.Errorf("%s: no checkpoint arrived", f)
		}
		for _, cp := range rc.cps {
			if err := keys.Verify(&cp); err != nil {
				t.Errorf("%s: checkpoint %d: %v", f, cp.Seq, err)
			}
		}
		_, maxLag, _ := m.get(map[string]string{rs.TLSFile(): "siem-tls", rs.TCPFile(): "siem-tcp"}[f])
		t.Logf("%s: %d events (head %d), %d duplicates (at-least-once), %d checkpoints, max lag %d", f, len(rc.count), final, dups, len(rc.cps), maxLag)
		// What rsyslog received verifies the store's chain.
		rep, err := Verify(t.Context(), st, VerifyOptions{Keys: keys, External: rc.cps})
		if err != nil || !rep.OK {
			t.Errorf("Verify against %s: %+v, %v", f, rep, err)
		}
	}
}

// TestRsyslogMutualTLS: rsyslog's input that requires a client
// certificate (gtls x509/certvalid) takes the events from a sink with
// cert_file/key_file, and none from a sink without them, which retries.
func TestRsyslogMutualTLS(t *testing.T) {
	pki := rsyslogtest.NewPKI(t, t.TempDir())
	rs := rsyslogtest.Start(t, pki)
	tests := []struct {
		name       string
		clientCert bool
	}{
		{"client_certificate", true},
		{"no_client_certificate", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs.Truncate("mtls")
			st := badgertest.Memory(t)
			if err := appendEvents(t.Context(), st, 100); err != nil {
				t.Fatal(err)
			}
			sc := SinkConfig{Name: "mtls", Type: "syslog", Transport: "tls", Address: "127.0.0.1:" + strconv.Itoa(rs.MTLSPort),
				CAFile: pki.CAFile, ConfirmAfter: config.Duration(200 * time.Millisecond), Timeout: config.Duration(3 * time.Second)}
			if tt.clientCert {
				sc.CertFile, sc.KeyFile = pki.CertFile, pki.KeyFile
			}
			m := newLagMetrics()
			exp, err := New(st, FileConfig{Sinks: []SinkConfig{sc}}, Options{Metrics: m, Poll: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { exp.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			if tt.clientCert {
				waitFor(t, 30*time.Second, func() bool {
					lag, _, _ := m.get("mtls")
					return lag == 0 && len(readReceived(t, rs.MTLSFile()).count) == 100
				},
					func() string { return strconv.Itoa(len(readReceived(t, rs.MTLSFile()).count)) + " of 100 arrived" })
				return
			}
			waitFor(t, 30*time.Second, func() bool { _, _, errs := m.get("mtls"); return errs >= 2 },
				func() string { return "the sink without a certificate did not fail and retry" })
			if n := len(readReceived(t, rs.MTLSFile()).count); n != 0 {
				t.Fatalf("%d events accepted without a client certificate", n)
			}
			if lag, _, _ := m.get("mtls"); lag != 100 {
				t.Fatalf("lag %d, want 100", lag)
			}
		})
	}
}
