package badger_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hardbound/posture"
	"hardbound/store/badger"
)

// BenchmarkDecideAfterRelease measures what ReleaseTablePages costs
// posture.Decide on a store built by posture's BenchmarkDecide1M (1M
// devices), the way serve runs it. Environment:
//
//	HARDBOUND_BENCH_STORE    the store's directory (required; a copy:
//	                         Badger may compact it at open)
//	HARDBOUND_BENCH_DEVICES  devices in it, default 1,000,000
//	HARDBOUND_BENCH_WARM     1: Service.Warm first (Decide then answers
//	                         from the caches; serve releases right after)
//	HARDBOUND_BENCH_RELEASE  1: ReleaseTablePages just before timing
//
// It reports p50/p99/max of single Decide calls on random devices, the
// process's RSS before the loop, and the release's advised bytes.
func BenchmarkDecideAfterRelease(b *testing.B) {
	dir := os.Getenv("HARDBOUND_BENCH_STORE")
	if dir == "" {
		b.Skip("HARDBOUND_BENCH_STORE not set: needs the 1M-device store of posture's BenchmarkDecide1M")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("HARDBOUND_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := badger.Open(ctx, dir, badger.WithLogger(quiet), badger.WithPageReleaseInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	svc, err := posture.New(st, nil, posture.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("HARDBOUND_BENCH_WARM") == "1" {
		if err := svc.Warm(ctx); err != nil {
			b.Fatal(err)
		}
	}
	metrics := map[string]float64{}
	if os.Getenv("HARDBOUND_BENCH_RELEASE") == "1" {
		t := time.Now()
		rel, err := st.ReleaseTablePages(ctx)
		if err != nil {
			b.Fatal(err)
		}
		metrics["release-ms"] = float64(time.Since(t).Milliseconds())
		metrics["released-MiB"] = float64(rel.Bytes >> 20)
	}
	metrics["rss-MiB"] = float64(rss() >> 20)
	notAfter := time.Now().Add(300 * 24 * time.Hour)
	rng := mrand.New(mrand.NewPCG(3, 4))
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		leaf := leaf1M(rng.IntN(n), notAfter)
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
	metrics["rss-after-MiB"] = float64(rss() >> 20)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat))*p/100+0.999999) - 1
		return float64(lat[max(0, min(i, len(lat)-1))].Nanoseconds())
	}
	metrics["p50-ns"], metrics["p99-ns"], metrics["max-ns"] = pct(50), pct(99), pct(100)
	for unit, v := range metrics {
		b.ReportMetric(v, unit)
	}
}

// leaf1M is device i's synthetic certificate, as posture's benchLeaf
// builds it (the store's binding keys are the SHA-256 of these bytes).
func leaf1M(i int, notAfter time.Time) *x509.Certificate {
	raw := make([]byte, 64)
	binary.BigEndian.PutUint64(raw, uint64(i))
	h := sha256.Sum256(append([]byte("hardbound-bench-device"), raw[:8]...))
	copy(raw[8:], h[:])
	return &x509.Certificate{Raw: raw, NotAfter: notAfter, SerialNumber: big.NewInt(int64(i) + 1)}
}

func rss() uint64 {
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
