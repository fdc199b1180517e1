package posture_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbound/posture"
	"hardbound/store"
	"hardbound/store/badger"
	"hardbound/store/policy"
)

// Knobs for BenchmarkDecide1M (environment, so `make bench` needs none):
//
//	HARDBOUND_BENCH_DEVICES  store size, default 1,000,000
//	HARDBOUND_BENCH_STORE    Badger directory to build the devices in and
//	                         to reuse on later runs (default: a temporary
//	                         directory, rebuilt every run: ~7 min for 1M)
//	HARDBOUND_BENCH_WRITERS  concurrent RecordIssuance callers, default 64
//	                         (Badger commits concurrent transactions with
//	                         one fsync)
//	HARDBOUND_BENCH_CACHE    posture.WithCacheSize, default the Service's
//	HARDBOUND_BENCH_WARM     1: Service.Warm before timing (the server's
//	                         state once its start-up warming is done);
//	                         reports its time and the heap it added
//	HARDBOUND_BENCH_RELEASE  1: (*badger.Store).ReleaseTablePages just
//	                         before timing, as serve does after the warm;
//	                         reports its time, the bytes advised and RSS
func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchLeaf is device i's synthetic certificate. Decide reads only the
// leaf's Raw (its SHA-256 is the binding key) and NotAfter, so 64
// deterministic bytes stand in for the DER: no signing, and a reused store
// finds the same hashes again.
func benchLeaf(i int, notAfter time.Time) *x509.Certificate {
	raw := make([]byte, 64)
	binary.BigEndian.PutUint64(raw, uint64(i))
	h := sha256.Sum256(append([]byte("hardbound-bench-device"), raw[:8]...))
	copy(raw[8:], h[:])
	return &x509.Certificate{Raw: raw, NotAfter: notAfter, SerialNumber: big.NewInt(int64(i) + 1)}
}

// fillDecideStore records devices [0, n) that are not there yet: attested
// (tpm), compliant, active, default profile, valid for a year.
func fillDecideStore(ctx context.Context, st store.Store, n, writers int) (added int, err error) {
	now := time.Now().UTC()
	notAfter := now.Add(365 * 24 * time.Hour)
	// Devices are written in index order per writer, so checking the last
	// index tells whether a reused store is complete.
	if _, err := st.GetCert(ctx, store.HashCert(benchLeaf(n-1, notAfter))); err == nil {
		return 0, nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		count int
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				leaf := benchLeaf(i, notAfter)
				sha := store.HashCert(leaf)
				if _, err := st.GetCert(ctx, sha); err == nil {
					continue
				}
				id := fmt.Sprintf("bench-%07d", i)
				key := store.HashKey(leaf.Raw[8:40])
				attID := "att-" + key.String()[:32]
				err := st.RecordIssuance(ctx, store.Issuance{
					Device: &store.Device{V: store.RecordVersion, ID: id, Platform: "windows", Profile: policy.DefaultProfile,
						Status: store.DeviceActive, Posture: store.Posture{State: store.ComplianceCompliant, Source: "bench", UpdatedAt: now},
						CreatedAt: now, UpdatedAt: now},
					Cert: &store.Cert{V: store.RecordVersion, SHA256: sha, Serial: fmt.Sprintf("be%x", i+1), DeviceID: id, KeySHA256: key,
						NotBefore: now.Add(-time.Minute), NotAfter: notAfter, Profile: policy.DefaultProfile, Protocol: "bench",
						AttestationID: attID, Attested: true, DER: leaf.Raw},
					Attestation: &store.Attestation{V: store.RecordVersion, ID: attID, DeviceID: id, Format: "tpm", KeySHA256: key, VerifiedAt: now},
					Audit:       &store.AuditEvent{Time: now, Actor: "bench", Action: "enroll.bench", Subject: id, Result: "ok"},
				})
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("device %d: %w", i, err)
				}
				count++
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return count, first
}

// benchHeap is the live heap after a full collection.
func benchHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchGCCPU is the CPU time the GC has used so far (estimated by the
// runtime), in seconds.
func benchGCCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// benchRSS is the process's resident set (Linux), 0 elsewhere.
func benchRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkDecide1M measures posture.Decide over an on-disk Badger store
// (as the server runs it) holding a million devices, certificates picked
// uniformly at random: with cold caches most lookups read the store. It reports p50/p99/max of single
// Decide calls as custom metrics; use -benchtime 300000x or more for a
// stable p99.
func BenchmarkDecide1M(b *testing.B) {
	n := benchEnvInt("HARDBOUND_BENCH_DEVICES", 1_000_000)
	dir := os.Getenv("HARDBOUND_BENCH_STORE")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := badger.Open(ctx, dir, badger.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	t0 := time.Now()
	added, err := fillDecideStore(ctx, st, n, benchEnvInt("HARDBOUND_BENCH_WRITERS", 64))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d devices in %s (%d recorded now, in %v)", n, dir, added, time.Since(t0).Round(time.Millisecond))
	opts := []posture.Option{posture.WithLogger(quiet)}
	if n := benchEnvInt("HARDBOUND_BENCH_CACHE", 0); n > 0 {
		opts = append(opts, posture.WithCacheSize(n))
	}
	svc, err := posture.New(st, nil, opts...)
	if err != nil {
		b.Fatal(err)
	}
	notAfter := time.Now().Add(300 * 24 * time.Hour)
	// Reported after the loop: ResetTimer drops earlier metrics.
	var warmMetrics map[string]float64
	if os.Getenv("HARDBOUND_BENCH_WARM") == "1" {
		before := benchHeap()
		t := time.Now()
		if err := svc.Warm(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(t)
		after := benchHeap()
		b.Logf("Warm: %v; live heap %d -> %d MiB (+%d B per device); RSS %d MiB",
			took.Round(time.Millisecond), before>>20, after>>20, (after-before)/uint64(n), benchRSS()>>20)
		warmMetrics = map[string]float64{"warm-s": took.Seconds(), "heap-MiB": float64(after >> 20), "rss-MiB": float64(benchRSS() >> 20)}
	}
	if os.Getenv("HARDBOUND_BENCH_RELEASE") == "1" {
		t := time.Now()
		rel, err := st.ReleaseTablePages(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if warmMetrics == nil {
			warmMetrics = map[string]float64{}
		}
		warmMetrics["release-ms"] = float64(time.Since(t).Milliseconds())
		warmMetrics["released-MiB"] = float64(rel.Bytes >> 20)
		warmMetrics["rss-MiB"] = float64(benchRSS() >> 20)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	// b.N is unknown before b.Loop starts: keep up to 10M samples.
	var lat []time.Duration
	b.ReportAllocs()
	gc0 := benchGCCPU()
	b.ResetTimer()
	for b.Loop() {
		leaf := benchLeaf(rng.IntN(n), notAfter)
		t := time.Now()
		v := svc.Decide(ctx, leaf)
		d := time.Since(t)
		if !v.Allow {
			b.Fatalf("device %s: %s", v.DeviceID, v.Reason)
		}
		if len(lat) < 10_000_000 {
			lat = append(lat, d)
		}
	}
	b.StopTimer()
	// GC CPU per decision: what scanning the caches costs live traffic.
	b.ReportMetric((benchGCCPU()-gc0)*1e9/float64(len(lat)), "gc-cpu-ns/op")
	if len(lat) == 0 {
		b.Fatal(errors.New("no samples"))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat))*p/100+0.999999) - 1
		return float64(lat[max(0, min(i, len(lat)-1))].Nanoseconds())
	}
	b.ReportMetric(pct(50), "p50-ns")
	b.ReportMetric(pct(99), "p99-ns")
	b.ReportMetric(pct(100), "max-ns")
	for unit, v := range warmMetrics {
		b.ReportMetric(v, unit)
	}
}
