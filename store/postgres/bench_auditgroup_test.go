package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hardbound/store"
	"hardbound/store/auditgroup"
)

// BenchmarkAuditGroup appends authentication events through
// store/auditgroup from 64 goroutines (as the RADIUS server does under
// load) while one goroutine records issuances, as enrollment does beside
// it, and reports the events written per second and the issuances'
// median and p99 latency. It measures what the order of group writes
// costs on the audit_head row lock and the connection pool.
//
//	go test -run '^$' -bench AuditGroup -benchtime 20000x -count 3 ./store/postgres/
func BenchmarkAuditGroup(b *testing.B) {
	for _, syncMode := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", syncMode), func(b *testing.B) { benchAuditGroup(b, syncMode) })
	}
}

func benchAuditGroup(b *testing.B, syncMode bool) {
	s := openDSN(b, newDB(b))
	ctx := context.Background()
	w := auditgroup.New(s, auditgroup.Options{Window: 10 * time.Millisecond, Sync: syncMode})
	var (
		next    atomic.Int64
		stop    = make(chan struct{})
		issueWG sync.WaitGroup
		lat     []time.Duration
	)
	issueWG.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if err := s.RecordIssuance(ctx, issuance(fmt.Sprintf("agbench-%d", i), i+1)); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
	})
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				ev := &store.AuditEvent{Actor: "nas:bench", Action: "radius.auth", Subject: "bench-dev", Result: "ok"}
				if err := w.Append(ctx, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	w.Flush() // async: the events are durable only now
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	issueWG.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "issue-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "issue-p99-ms")
	}
}
