package posture_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
)

// decide1M is the shared fixture of BenchmarkDecide1M: building a million
// devices takes a while, so it is built once per test binary and only when
// that benchmark runs (benchmarks never run under plain `go test`).
var (
	decide1MOnce sync.Once
	decide1M     *decideFixture
	decide1MErr  error
)

type decideFixture struct {
	svc    *posture.Service
	leaves []*x509.Certificate
	build  time.Duration
}

// benchDevices is the store size: HARDBOUND_BENCH_DEVICES, default 1,000,000.
func benchDevices() int {
	if v, err := strconv.Atoi(os.Getenv("HARDBOUND_BENCH_DEVICES")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

// buildDecideFixture records n attested, compliant devices with synthetic
// certificates: Decide reads only the leaf's Raw (its hash is the binding
// key) and NotAfter, so 64 random bytes stand in for the DER and no
// signing is needed. Writers run in parallel; the store retries the audit
// chain's conflicts.
func buildDecideFixture(n int) (*decideFixture, error) {
	ctx := context.Background()
	st, err := badger.Open(ctx, "", badger.WithInMemory(), badger.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, err
	}
	svc, err := posture.New(st, nil, posture.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	notAfter := now.Add(365 * 24 * time.Hour)
	f := &decideFixture{svc: svc, leaves: make([]*x509.Certificate, n)}
	start := time.Now()
	workers := runtime.GOMAXPROCS(0) * 2
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				raw := make([]byte, 64)
				if _, err := rand.Read(raw); err != nil {
					errc <- err
					return
				}
				binary.BigEndian.PutUint64(raw, uint64(i)) // unique even if rand repeats
				leaf := &x509.Certificate{Raw: raw, NotAfter: notAfter, SerialNumber: big.NewInt(int64(i) + 1)}
				f.leaves[i] = leaf
				id := fmt.Sprintf("dev-%07d", i)
				sha := store.HashCert(leaf)
				key := store.HashKey(raw[:32])
				attID := "att-" + key.String()[:32]
				is := store.Issuance{
					Device: &store.Device{V: store.RecordVersion, ID: id, Platform: "windows", Profile: posture.DefaultProfile,
						Status: store.DeviceActive, Posture: store.Posture{State: store.ComplianceCompliant, Source: "bench", UpdatedAt: now},
						CreatedAt: now, UpdatedAt: now},
					Cert: &store.Cert{V: store.RecordVersion, SHA256: sha, Serial: fmt.Sprintf("%x", i+1), DeviceID: id, KeySHA256: key,
						NotBefore: now.Add(-time.Minute), NotAfter: notAfter, Profile: posture.DefaultProfile, Protocol: "bench",
						AttestationID: attID, Attested: true, DER: raw},
					Attestation: &store.Attestation{V: store.RecordVersion, ID: attID, DeviceID: id, Format: "tpm", KeySHA256: key, VerifiedAt: now},
					Audit:       &store.AuditEvent{Time: now, Actor: "bench", Action: "enroll.bench", Subject: id, Result: "ok"},
				}
				if err := svc.Store().RecordIssuance(ctx, is); err != nil {
					errc <- fmt.Errorf("device %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	f.build = time.Since(start)
	return f, nil
}

// BenchmarkDecide1M measures posture.Decide over a store of a million
// devices (HARDBOUND_BENCH_DEVICES overrides), certificates picked
// uniformly at random so most lookups miss the Service's caches (2^18
// entries each) and read Badger. It reports p50/p99/max per Decide as
// custom metrics; run with -benchtime 200000x or more for a stable p99.
func BenchmarkDecide1M(b *testing.B) {
	n := benchDevices()
	decide1MOnce.Do(func() { decide1M, decide1MErr = buildDecideFixture(n) })
	if decide1MErr != nil {
		b.Fatal(decide1MErr)
	}
	f := decide1M
	b.Logf("%d devices recorded in %v", len(f.leaves), f.build.Round(time.Millisecond))
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(1, 2))
	// b.N is unknown before b.Loop starts: keep up to 10M samples.
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		leaf := f.leaves[rng.IntN(len(f.leaves))]
		t0 := time.Now()
		v := f.svc.Decide(ctx, leaf)
		d := time.Since(t0)
		if !v.Allow {
			b.Fatalf("device %s: %s", v.DeviceID, v.Reason)
		}
		if len(lat) < 10_000_000 {
			lat = append(lat, d)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(float64(len(lat))*p/100+0.999999) - 1
		return float64(lat[max(0, min(i, len(lat)-1))].Nanoseconds())
	}
	b.ReportMetric(pct(50), "p50-ns")
	b.ReportMetric(pct(99), "p99-ns")
	b.ReportMetric(pct(100), "max-ns")
}
