package auditexport

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"hardbound/store/badger"
	"hardbound/store/badger/badgertest"
)

// BenchmarkExportBacklog measures how fast a sink drains a backlog of
// 50,000 events into a real rsyslog (events/s), per transport.
func BenchmarkExportBacklog(b *testing.B) {
	const n = 50000
	pki := newPKI(b, b.TempDir())
	for _, tr := range []string{"tls", "tcp"} {
		b.Run(tr, func(b *testing.B) {
			rs := startRsyslogB(b, pki)
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
				for {
					// Wait for rsyslog to write the last event (what
					// "exported" means to the receiver), not for the
					// confirmation window.
					if rc := readReceived(b, fileOf(rs, tr)); rc.count[uint64(n)] > 0 {
						sentAt = time.Since(start)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				cancel()
				wg.Wait()
				b.ReportMetric(float64(n)/sentAt.Seconds(), "events/s")
				rs.truncate(tr)
			}
		})
	}
}

func fileOf(rs *rsyslog, tr string) string {
	if tr == "tls" {
		return rs.tlsFile()
	}
	return rs.tcpFile()
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
