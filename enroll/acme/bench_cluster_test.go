package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/enroll/attest"
	"hardbound/enroll/ca/catest"
	"hardbound/enroll/limit"
	"hardbound/store/badger"
	"hardbound/store/postgres"
	"hardbound/store/postgres/pgtest"
)

// BenchmarkEnrollThroughput measures whole Apple enrollments per second
// with six concurrent clients, each its own account, every request to
// the next node: one node on Badger (on disk), one node on PostgreSQL,
// three nodes on one PostgreSQL database (three stores, as three
// processes would open it). All nodes run in this process on this
// machine's cores, so three nodes add no CPU: the comparison shows what
// sharing one database costs, not how a cluster of machines scales. The
// tests' PostgreSQL runs with fsync off.
//
//	go test -run '^$' -bench EnrollThroughput -benchtime 300x ./enroll/acme/
func BenchmarkEnrollThroughput(b *testing.B) {
	var (
		pgOnce sync.Once
		pg     *pgtest.Cluster
		pgErr  error
	)
	b.Cleanup(func() {
		if pg != nil {
			pg.Stop()
		}
	})
	for _, tc := range []struct {
		name  string
		nodes int
		pg    bool
	}{{"badger/nodes=1", 1, false}, {"postgres/nodes=1", 1, true}, {"postgres/nodes=3", 3, true}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			var stores []acme.Store
			if tc.pg {
				pgOnce.Do(func() { pg, pgErr = pgtest.Start() })
				pgtest.Require(b, pg, pgErr)
				dsn := pg.NewDatabase(b)
				for range tc.nodes {
					st, err := postgres.Open(ctx, dsn)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { st.Close() })
					stores = append(stores, st)
				}
			} else {
				st, err := badger.Open(ctx, b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				stores = append(stores, st)
			}
			c := catest.New(b, b.TempDir())
			auth := authority(b)
			rr := &roundRobin{}
			for _, st := range stores {
				s, err := acme.New(acme.Config{BaseURL: clusterBase, Profiles: []acme.Profile{{Name: "devices"}}, MaxOrdersPerAccount: benchOrders},
					acme.Deps{Issuer: c, Attester: attest.New(auth.Roots()), Store: st, Limiter: limit.New(limit.Config{}),
						Accounts: acme.StoreAccounts(st.(acme.AccountRecords)), NonceKey: sharedKey(0)})
				if err != nil {
					b.Fatal(err)
				}
				rr.nodes = append(rr.nodes, s)
			}
			hc := &http.Client{Transport: rr}
			var seq atomic.Int64
			b.SetParallelism(3)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				cl, err := acmetest.New(ctx, hc, clusterBase+"/directory", key, jose.ES256)
				if err == nil {
					err = cl.Register(ctx)
				}
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
					csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, dev)
					serial := fmt.Sprintf("TP-%d", seq.Add(1))
					if _, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
						return auth.Apple(dev.Public(), serial, "", keyAuth)
					}, csr); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
		})
	}
}
