package scep_test

import (
	"crypto/x509/pkix"
	"fmt"
	"testing"

	"hardbound/enroll/ca"
	"hardbound/enroll/scep"
	"hardbound/enroll/scep/sceptest"
)

// BenchmarkPKCSReq measures one full enrollment over httptest: mint a
// challenge, build and send the PKCSReq, issue, record, decrypt the CertRep;
// with the default ECDSA CA and with an RSA-3072 one (`ca init --key-type
// rsa`, for the clients that need RSA throughout), whose signature per
// issued certificate is the difference.
func BenchmarkPKCSReq(b *testing.B) {
	for _, kt := range []string{ca.KeyECDSA, ca.KeyRSA} {
		b.Run("ca="+kt, func(b *testing.B) { benchPKCSReq(b, kt) })
	}
}

func benchPKCSReq(b *testing.B, keyType string) {
	e := newEnvKeyType(b, keyType, nil)
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
