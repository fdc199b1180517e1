package auditexport

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/auditexport/rsyslogtest"
	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
)

// BenchmarkExportBacklog measures how fast a sink drains a backlog of
// 50,000 events into a real rsyslog (events/s), per transport.
func BenchmarkExportBacklog(b *testing.B) {
	const n = 50000
	pki := rsyslogtest.NewPKI(b, b.TempDir())
	for _, tr := range []string{"tls", "tcp"} {
		b.Run(tr, func(b *testing.B) {
			rs := rsyslogtest.Start(b, pki)
			for range b.N {
				st := badgertest.Memory(b)
				if err := appendEvents(b.Context(), st, n); err != nil {
					b.Fatal(err)
				}
				sc := rsyslogSinks(rs)[0]
				if tr == "tcp" {
					sc = rsyslogSinks(rs)[1]
				}
				exp, err := New(st, FileConfig{Sinks: []SinkConfig{sc}}, Options{Poll: 20 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(b.Context())
				var wg sync.WaitGroup
				start := time.Now()
				wg.Go(func() { exp.Run(ctx) })
				var sentAt time.Duration
				cpu0 := cpuTime()
				for {
					// Wait for rsyslog to write the last event (what
					// "exported" means to the receiver), not for the
					// confirmation window.
					if lastSeqIn(fileOf(rs, tr)) >= n {
						sentAt = time.Since(start)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				cpu := cpuTime() - cpu0
				cancel()
				wg.Wait()
				b.ReportMetric(float64(n)/sentAt.Seconds(), "events/s")
				b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/event")
				rs.Truncate(tr)
			}
		})
	}
}

// lastSeqIn reads the seq of the last event in a receiver's file from its
// tail, cheaply enough to poll.
func lastSeqIn(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, _ := f.Stat()
	off := max(fi.Size()-8192, 0)
	buf := make([]byte, fi.Size()-off)
	f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	last := 0
	ReadRecords(strings.NewReader(lines[len(lines)-1]), func(e *store.AuditEvent, _ *store.AuditCheckpoint) error {
		if e != nil {
			last = int(e.Seq)
		}
		return nil
	})
	return last
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fileOf(rs *rsyslogtest.Rsyslog, tr string) string {
	if tr == "tls" {
		return rs.TLSFile()
	}
	return rs.TCPFile()
}

// BenchmarkVerify285k measures `audit verify` on the soak's chain length:
// from the newest checkpoint (the default) and --full, with the Go heap
// in use after each (bounded: it does not grow with the chain).
func BenchmarkVerify285k(b *testing.B) {
	const n = 285000
	dir := filepath.Join(b.TempDir(), "db")
	st, err := badger.Open(b.Context(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := appendEventsBig(b.Context(), st, n); err != nil {
		b.Fatal(err)
	}
	signer := testSigner(b)
	cpr := NewCheckpointer(st, signer, CheckpointConfig{}, nil)
	if _, err := cpr.Checkpoint(b.Context()); err != nil {
		b.Fatal(err)
	}
	ks := KeySet{}
	ks.Add(signer.Public())
	for _, full := range []bool{false, true} {
		b.Run("full="+strconv.FormatBool(full), func(b *testing.B) {
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				rep, err := Verify(b.Context(), st, VerifyOptions{Keys: ks, Full: full})
				if err != nil || !rep.OK {
					b.Fatal(rep, err)
				}
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(rep.Events), "events")
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(max(rep.Events, 1)), "alloc-B/event")
			}
		})
		b.Run("store.VerifyAudit", func(b *testing.B) {
			if full {
				b.Skip()
			}
			for range b.N {
				if vr, err := st.VerifyAudit(b.Context()); err != nil || !vr.OK {
					b.Fatal(vr, err)
				}
			}
		})
	}
}

// appendEventsBig appends n events in groups of 500 (fewer fsyncs).
func appendEventsBig(ctx context.Context, st *badger.Store, n int) error {
	for n > 0 {
		k := min(n, 500)
		if err := appendEvents(ctx, st, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// BenchmarkRetentionSteadySize appends rounds of 20,000 events and, after
// each, prunes all but the newest ~20,000 through the Pruner (a sink
// confirmed everything, a checkpoint per round). It reports the store
// directory's size after the first and the last round: with retention
// it stays flat instead of growing with every round. Sizes are disk
// blocks in use (du), not the files' apparent sizes.
func BenchmarkRetentionSteadySize(b *testing.B) {
	const rounds, per = 15, 20000
	for _, prune := range []bool{true, false} {
		b.Run("prune="+strconv.FormatBool(prune), func(b *testing.B) { retentionRounds(b, rounds, per, prune) })
	}
}

func retentionRounds(b *testing.B, rounds, per int, prune bool) {
	for range b.N {
		dir := filepath.Join(b.TempDir(), "db")
		st, err := badger.Open(b.Context(), dir)
		if err != nil {
			b.Fatal(err)
		}
		signer := testSigner(b)
		cpr := NewCheckpointer(st, signer, CheckpointConfig{}, nil)
		p := NewPruner(st, FileConfig{Sinks: []SinkConfig{{Name: "siem"}}, Retention: RetentionConfig{MaxAge: 1}}, nil)
		var sizes []int64
		for r := range rounds {
			if err := appendEventsBig(b.Context(), st, per); err != nil {
				b.Fatal(err)
			}
			cp, err := cpr.Checkpoint(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if err := st.PutAuditCursor(b.Context(), &store.AuditCursor{Sink: "siem", Seq: cp.Seq, CheckpointSeq: cp.Seq}); err != nil {
				b.Fatal(err)
			}
			p.now = func() time.Time { return time.Now().Add(time.Hour) }
			if r > 0 && prune {
				// Keep the last round: prune up to the previous round's checkpoint.
				if _, _, err := p.Prune(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			sizes = append(sizes, dirSize(dir))
		}
		st.Close()
		peak := slices.Max(sizes)
		b.ReportMetric(float64(peak)/1e6, "MB-peak")
		b.ReportMetric(float64(sizes[len(sizes)-1])/1e6, "MB-after-last-round")
		b.Logf("store size per round (MB): %v", mb(sizes))
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			// Blocks in use: Badger preallocates its value log sparsely.
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func mb(s []int64) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.FormatFloat(float64(v)/1e6, 'f', 1, 64)
	}
	return out
}
