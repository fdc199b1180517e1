package postgres_test

import (
	"cmp"
	"context"
	"crypto/sha256"
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
	"hardbound/store/policy"
)

// BenchmarkDecideBackends measures posture.Decide over a Badger store on
// disk and a PostgreSQL store holding the same devices, in one run, cold
// (a fresh Service, every decision a device it has not seen: each one
// reads the store) and warm (after Service.Warm, devices picked at
// random). p50/p99/max of single calls are reported as custom metrics.
//
// Knobs (environment, so `make test` and `make bench` need none):
//
//	HB_DECIDE_DEVICES  devices in each store, default 10,000
//	HB_DECIDE_BADGER   Badger directory to fill and reuse on later runs
//	                   (default a temporary one)
//
// Badger is filled through RecordIssuance (64 writers: its commits share
// an fsync), PostgreSQL through Import (store copy's bulk path, one
// transaction) from a generator of the same records, both at once.
//
//	HB_DECIDE_DEVICES=1000000 go test -run '^$' -bench DecideBackends -benchtime 200000x -timeout 90m ./store/postgres/
func BenchmarkDecideBackends(b *testing.B) {
	n := envInt("HB_DECIDE_DEVICES", 10_000)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := os.Getenv("HB_DECIDE_BADGER")
	if dir == "" {
		dir = b.TempDir()
	}
	bs, err := badger.Open(ctx, dir, badger.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bs.Close() })
	ps := openDSN(b, newDB(b))
	var wg sync.WaitGroup
	var berr, perr error
	var btook, ptook time.Duration
	wg.Go(func() {
		t := time.Now()
		berr = fillBadger(ctx, bs, n, 64)
		btook = time.Since(t)
	})
	wg.Go(func() {
		t := time.Now()
		perr = ps.Import(ctx, decideRecords(n), nil)
		ptook = time.Since(t)
	})
	wg.Wait()
	if berr != nil || perr != nil {
		b.Fatalf("fill: badger %v, postgres %v", berr, perr)
	}
	b.Logf("%d devices: Badger filled in %v (in %s), PostgreSQL imported in %v",
		n, btook.Round(time.Millisecond), dir, ptook.Round(time.Millisecond))

	for _, be := range []struct {
		name string
		st   store.Store
	}{{"badger", bs}, {"postgres", ps}} {
		b.Run(be.name+"/cold", func(b *testing.B) {
			svc, err := posture.New(be.st, nil, posture.WithLogger(quiet))
			if err != nil {
				b.Fatal(err)
			}
			// A permutation: each decision is a device this Service has
			// not seen until all n have been asked for.
			perm := mrand.New(mrand.NewPCG(3, 4)).Perm(n)
			if b.N > n {
				b.Logf("b.N %d > %d devices: the last %d decisions repeat devices", b.N, n, b.N-n)
			}
			lat := make([]time.Duration, 0, b.N)
			runtime.GC() // the previous sub-benchmark's Service is garbage now
			i := 0
			for b.Loop() {
				lat = append(lat, decideOnce(ctx, b, svc, perm[i%n]))
				i++
			}
			reportLatency(b, lat)
		})
		b.Run(be.name+"/warm", func(b *testing.B) {
			svc, err := posture.New(be.st, nil, posture.WithLogger(quiet))
			if err != nil {
				b.Fatal(err)
			}
			t := time.Now()
			if err := svc.Warm(ctx); err != nil {
				b.Fatal(err)
			}
			warm := time.Since(t)
			rng := mrand.New(mrand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			runtime.GC()
			for b.Loop() {
				lat = append(lat, decideOnce(ctx, b, svc, rng.IntN(n)))
			}
			reportLatency(b, lat)
			b.ReportMetric(warm.Seconds(), "warm-s")
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// decideLeaf is device i's synthetic certificate: Decide reads only Raw
// (its SHA-256 is the binding key) and NotAfter, so 64 deterministic bytes
// stand in for the DER, and a reused store finds the same hashes.
func decideLeaf(i int, notAfter time.Time) *x509.Certificate {
	raw := make([]byte, 64)
	binary.BigEndian.PutUint64(raw, uint64(i))
	h := sha256.Sum256(append([]byte("hardbound-bench-device"), raw[:8]...))
	copy(raw[8:], h[:])
	return &x509.Certificate{Raw: raw, NotAfter: notAfter, SerialNumber: big.NewInt(int64(i) + 1)}
}

// decideIssuance is device i's records: attested (tpm), compliant, active,
// default profile, valid for a year.
func decideIssuance(i int, now time.Time) store.Issuance {
	notAfter := now.Add(365 * 24 * time.Hour)
	leaf := decideLeaf(i, notAfter)
	id := fmt.Sprintf("bench-%07d", i)
	key := store.HashKey(leaf.Raw[8:40])
	attID := "att-" + key.String()[:32]
	return store.Issuance{
		Device: &store.Device{V: store.RecordVersion, ID: id, Platform: "windows", Profile: policy.DefaultProfile,
			Status: store.DeviceActive, Posture: store.Posture{State: store.ComplianceCompliant, Source: "bench", UpdatedAt: now},
			CreatedAt: now, UpdatedAt: now},
		Cert: &store.Cert{V: store.RecordVersion, SHA256: store.HashCert(leaf), Serial: fmt.Sprintf("be%x", i+1), DeviceID: id, KeySHA256: key,
			NotBefore: now.Add(-time.Minute), NotAfter: notAfter, Profile: policy.DefaultProfile, Protocol: "bench",
			AttestationID: attID, Attested: true, DER: leaf.Raw},
		Attestation: &store.Attestation{V: store.RecordVersion, ID: attID, DeviceID: id, Format: "tpm", KeySHA256: key, VerifiedAt: now},
		Audit:       &store.AuditEvent{Time: now, Actor: "bench", Action: "enroll.bench", Subject: id, Result: "ok"},
	}
}

// fillBadger records devices [0, n) that are not there yet; a reused
// directory whose last device is present is taken as complete (each
// writer goes in index order).
func fillBadger(ctx context.Context, st store.Store, n, writers int) error {
	now := time.Now().UTC()
	if _, err := st.GetCert(ctx, decideIssuance(n-1, now).Cert.SHA256); err == nil {
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				is := decideIssuance(i, now)
				if _, err := st.GetCert(ctx, is.Cert.SHA256); err == nil {
					continue
				}
				if err := st.RecordIssuance(ctx, is); err != nil {
					mu.Lock()
					first = cmp.Or(first, fmt.Errorf("device %d: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// decideRecords is an Exporter of the devices, attestations and bindings
// fillBadger writes (the order Import wants), without their audit events:
// Decide reads none.
type decideRecords int

func (n decideRecords) Export(ctx context.Context, fn func(store.Record) error) error {
	now := time.Now().UTC()
	for pass := range 3 {
		for i := range int(n) {
			if i%10000 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			is := decideIssuance(i, now)
			var r store.Record
			switch pass {
			case 0:
				r.Device = is.Device
			case 1:
				r.Attestation = is.Attestation
			default:
				r.Cert = is.Cert
			}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func decideOnce(ctx context.Context, b *testing.B, svc *posture.Service, i int) time.Duration {
	leaf := decideLeaf(i, time.Now().Add(300*24*time.Hour))
	t := time.Now()
	v := svc.Decide(ctx, leaf)
	d := time.Since(t)
	if !v.Allow {
		b.Fatalf("device %d (%s): %s", i, v.DeviceID, v.Reason)
	}
	return d
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat))*p/100+0.999999) - 1
		return float64(lat[max(0, min(i, len(lat)-1))].Nanoseconds())
	}
	b.ReportMetric(pct(50), "p50-ns")
	b.ReportMetric(pct(99), "p99-ns")
	b.ReportMetric(pct(100), "max-ns")
}
