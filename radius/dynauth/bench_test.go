package dynauth

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
)

// countingExchanger notes when the last answer of a mass change arrived.
type countingExchanger struct {
	next    Exchanger
	want    int64
	got     atomic.Int64
	acks    atomic.Int64
	retried atomic.Int64
	allDone chan struct{}
}

func (c *countingExchanger) Send(ctx context.Context, nas NAS, req Request) (Outcome, error) {
	out, err := c.next.Send(ctx, nas, req)
	if out.Result == ResultACK {
		c.acks.Add(1)
	}
	if out.Attempts > 1 {
		c.retried.Add(1)
	}
	if c.got.Add(1) == c.want {
		close(c.allDone)
	}
	return out, err
}

// BenchmarkMassDisconnect measures a mass posture change: 10,000 devices,
// each with one live session, spread over 20 NAS DAS listeners on
// 127.0.0.1, all turning noncompliant at once. One op is the time from the
// first posture event to the last Disconnect-ACK received.
//
//	go test -run '^$' -bench MassDisconnect -benchtime 5x ./radius/dynauth/
func BenchmarkMassDisconnect(b *testing.B) {
	b.Run("audit=memory", func(b *testing.B) { benchMassDisconnect(b, func(testing.TB) Auditor { return &recAuditor{} }) })
	// The real audit chain: one fsync'd writer, serialized. The Enforcer's
	// audit queue keeps it off the path to the last ACK.
	b.Run("audit=badger", func(b *testing.B) {
		benchMassDisconnect(b, func(tb testing.TB) Auditor {
			st, err := badger.Open(context.Background(), tb.TempDir())
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { st.Close() })
			return st
		})
	})
}

func benchMassDisconnect(b *testing.B, newAuditor func(testing.TB) Auditor) {
	const nases, devices = 20, 10_000
	lookup := map[string]NAS{}
	for i := range nases {
		secret := fmt.Sprintf("secret-%d", i)
		das := newFakeDAS(b, secret, nil)
		lookup[fmt.Sprintf("nas%d", i)] = NAS{Addr: das.addr(), Secret: []byte(secret)}
	}
	sessions := &memSessions{byID: map[string][]*store.Session{}, page: 100}
	evs := make([]posture.Event, devices)
	for i := range devices {
		id := fmt.Sprintf("dev-%05d", i)
		sessions.byID[id] = []*store.Session{{
			NAS: fmt.Sprintf("nas%d", i%nases), AcctSessionID: fmt.Sprintf("%016X", i),
			UserName: id, CallingStationID: fmt.Sprintf("02-00-00-00-%02X-%02X", i>>8&0xff, i&0xff),
		}}
		evs[i] = posture.Event{Kind: posture.EventCompliance, DeviceID: id, Device: device(id, "p", store.ComplianceNoncompliant)}
	}
	sender := NewSender(SenderConfig{})
	var worst, total, drain, cpu time.Duration
	for b.Loop() {
		ex := &countingExchanger{next: sender, want: devices, allDone: make(chan struct{})}
		events := &chanEvents{ch: make(chan posture.Event, devices)}
		e, err := NewEnforcer(EnforcerConfig{
			Events: events, Sessions: sessions, Sender: ex, Auditor: newAuditor(b),
			NAS: func(name string) (NAS, bool) { n, ok := lookup[name]; return n, ok },
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx, ready) }()
		<-ready
		cpu0 := cpuTime(b)
		start := time.Now()
		for _, ev := range evs {
			ev.At = start
			events.ch <- ev
		}
		<-ex.allDone
		elapsed := time.Since(start)
		cpu += cpuTime(b) - cpu0
		worst = max(worst, elapsed)
		total += elapsed
		t0 := time.Now()
		cancel()
		<-done // Run returns once every audit event is written
		drain += time.Since(t0)
		b.Logf("elapsed %v, retried %d", elapsed, ex.retried.Load())
		if n := ex.acks.Load(); n != devices {
			b.Fatalf("%d ACKs, want %d", n, devices)
		}
	}
	n := float64(b.N)
	b.ReportMetric(total.Seconds()/n, "last-ack-s")
	b.ReportMetric(worst.Seconds(), "worst-last-ack-s")
	b.ReportMetric(drain.Seconds()/n, "audit-drain-s")
	// CPU time (user+system, sender and fake NASes together) does not depend
	// on what else the machine runs, unlike wall time.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(devices)/(total.Seconds()/n), "acks/s")
}

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
