package scep_test

import (
	"crypto/x509/pkix"
	"fmt"
	"testing"

	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
)

// BenchmarkPKCSReq measures one full enrollment over httptest: mint a
// challenge, build and send the PKCSReq, issue, record, decrypt the CertRep.
func BenchmarkPKCSReq(b *testing.B) {
	e := newEnv(b, nil)
	ctx := b.Context()
	key := fixtureKey(b, "device.key")
	c := e.client("")
	certs, _, err := c.GetCACert(ctx)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench-%d", i)
		i++
		v := e.mint(scep.MintRequest{DeviceID: id, Profile: "corp"})
		signer, _, err := sceptest.SelfSigned(key, pkix.Name{CommonName: id})
		if err != nil {
			b.Fatal(err)
		}
		raw, err := sceptest.BuildMessageWithSigner(certs, sceptest.Request{Key: key, Challenge: v, Subject: pkix.Name{CommonName: id}}, signer)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := c.Send(ctx, raw, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sceptest.ParseCertRep(rep, signer, key); err != nil {
			b.Fatal(err)
		}
	}
}
