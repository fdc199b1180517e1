package ocsp_test

import (
	"crypto"
	"fmt"
	"testing"

	"hardbound/admin/metrics"
	"hardbound/enroll/ocsp"
)

// BenchmarkRespond: warm is a pre-signed answer from the cache (the
// common case: no nonce), nonce signs one ECDSA P-256 answer per request
// from the cached decision, cold decides (store + posture) and signs.
// ns/op is server CPU per response on one core; parallel is throughput.
func BenchmarkRespond(b *testing.B) {
	f := newFixture(b, ocsp.Config{Posture: true})
	const n = 1000
	reqs := make([][]byte, n)
	nonced := make([][]byte, n)
	for i := range n {
		d := f.bind(b, fmt.Sprintf("dev%04d", i), "")
		reqs[i] = request(b, d.Leaf, f.ca.Issuing(), crypto.SHA1)
		nonced[i] = withNonce(b, reqs[i], []byte(fmt.Sprintf("nonce-%08d", i)))
		f.resp.Respond(f.ctx, reqs[i])
	}
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			f.resp.Respond(f.ctx, reqs[i%n])
			i++
		}
	})
	// warm-metrics is warm with the Prometheus counters of the server
	// (admin/metrics): what /metrics costs per response.
	em := metrics.New().Enroll()
	fm := newFixture(b, ocsp.Config{Posture: true}, ocsp.WithMetrics(em))
	mreqs := make([][]byte, n)
	for i := range n {
		d := fm.bind(b, fmt.Sprintf("dev%04d", i), "")
		mreqs[i] = request(b, d.Leaf, fm.ca.Issuing(), crypto.SHA1)
		fm.resp.Respond(fm.ctx, mreqs[i])
	}
	b.Run("warm-metrics", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			fm.resp.Respond(fm.ctx, mreqs[i%n])
			i++
		}
	})
	// metrics-only is the two counter updates a warm answer makes, alone.
	b.Run("metrics-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			em.CacheLookup(true)
			em.Response("good")
		}
	})
	b.Run("warm-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				f.resp.Respond(f.ctx, reqs[i%n])
				i++
			}
		})
	})
	b.Run("nonce", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			f.resp.Respond(f.ctx, nonced[i%n])
			i++
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i%n == 0 {
				f.resp.DropCache()
			}
			f.resp.Respond(f.ctx, reqs[i%n])
			i++
		}
	})
}
