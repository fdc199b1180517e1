package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"hardbound/enroll/acme"
	"hardbound/enroll/acme/acmetest"
	"hardbound/store/policy"
)

// BenchmarkEnroll measures one whole device-attest-01 enrollment over
// HTTPS (loopback): order, attestation verify, issuance, durable record.
func BenchmarkEnroll(b *testing.B) {
	for _, format := range []string{policy.FormatApple, policy.FormatTPM, policy.FormatAndroidKey} {
		b.Run(format, func(b *testing.B) {
			e := newEnv(b, envOpts{})
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
