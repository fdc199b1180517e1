package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/store/inventory"
	"hardbound/store/policy"
)

// benchOrders lifts the per-account order bound: a benchmark enrolls
// thousands of devices with one account within the orders' hour.
const benchOrders = 1 << 20

// BenchmarkEnroll measures one whole device-attest-01 enrollment over
// HTTPS (loopback): order, attestation verify, issuance, durable record.
func BenchmarkEnroll(b *testing.B) {
	for _, format := range []string{policy.FormatApple, policy.FormatTPM, policy.FormatAndroidKey} {
		b.Run(format, func(b *testing.B) {
			e := newEnv(b, envOpts{maxOrders: benchOrders})
			ctx := context.Background()
			acctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			cl, err := acmetest.New(ctx, e.srv.Client(), e.dirURL, acctKey, jose.ES256)
			if err != nil {
				b.Fatal(err)
			}
			if err := cl.Register(ctx); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, dev)
				serial := fmt.Sprintf("BENCH-%d", i)
				b.StartTimer()
				_, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
					switch format {
					case policy.FormatApple:
						return e.auth.Apple(dev.Public(), serial, "", keyAuth)
					case policy.FormatTPM:
						return e.auth.TPM(dev.Public(), serial, keyAuth)
					default:
						return e.auth.Android(dev, serial, keyAuth)
					}
				}, csr)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnrollGate compares one Apple enrollment under a profile
// without the inventory requirement (the record is created by the
// issuance) and under one that requires inventory and has OS minimums
// (the record was added before the clock): the gate's lookups and checks
// run at the challenge and again at finalize.
func BenchmarkEnrollGate(b *testing.B) {
	mins, err := policy.ParseMinimums(map[string]string{"ios": "17.4", "macos": "14.3"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    acme.Profile
	}{
		{"open", acme.Profile{Name: "devices"}},
		{"inventory+min_os", acme.Profile{Name: "devices", RequireInventory: true, Minimums: mins}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, envOpts{profiles: []acme.Profile{tc.p}, maxOrders: benchOrders})
			ctx := context.Background()
			acctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			cl, err := acmetest.New(ctx, e.srv.Client(), e.dirURL, acctKey, jose.ES256)
			if err != nil {
				b.Fatal(err)
			}
			if err := cl.Register(ctx); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, dev)
				serial := fmt.Sprintf("GATE-%d", i)
				if tc.p.RequireInventory {
					rows := []inventory.Row{{Record: inventory.Record{Platform: "ios", Serial: serial}}}
					if _, err := inventory.Apply(ctx, e.store, rows, inventory.Options{Source: "bench"}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				_, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
					return e.auth.Apple(dev.Public(), serial, "", keyAuth)
				}, csr)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnrollCluster measures one whole Apple enrollment against 1
// and 2 Servers over one Badger store, every request to the next Server
// (in process, no TLS): what sharing orders and nonces through the store
// costs when requests move between nodes, against the same path on one.
func BenchmarkEnrollCluster(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			c := newBenchCluster(b, n)
			ctx := context.Background()
			acctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			cl, err := acmetest.New(ctx, &http.Client{Transport: &roundRobin{nodes: c.nodes}}, clusterBase+"/directory", acctKey, jose.ES256)
			if err != nil {
				b.Fatal(err)
			}
			if err := cl.Register(ctx); err != nil {
				b.Fatal(err)
			}
			auth := authority(b)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, dev)
				serial := fmt.Sprintf("CLUSTER-%d", i)
				b.StartTimer()
				if _, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
					return auth.Apple(dev.Public(), serial, "", keyAuth)
				}, csr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnrollOnDisk is BenchmarkEnroll/apple on a Badger store in a
// directory, where every store write is an fsync.
func BenchmarkEnrollOnDisk(b *testing.B) {
	e := newEnv(b, envOpts{onDisk: true, maxOrders: benchOrders})
	ctx := context.Background()
	acctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl, err := acmetest.New(ctx, e.srv.Client(), e.dirURL, acctKey, jose.ES256)
	if err != nil {
		b.Fatal(err)
	}
	if err := cl.Register(ctx); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dev, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, dev)
		serial := fmt.Sprintf("DISK-%d", i)
		b.StartTimer()
		if _, err := cl.Enroll(ctx, acme.TypePermanentIdentifier, serial, func(keyAuth string) ([]byte, error) {
			return e.auth.Apple(dev.Public(), serial, "", keyAuth)
		}, csr); err != nil {
			b.Fatal(err)
		}
	}
}
