package eaptls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// testPKI is a root -> intermediate -> leaf hierarchy (ECDSA P-256) built
// per test binary. Names are short so the TLS 1.2 server flight fits one
// 1386-byte fragment, as real deployments with P-256 chains do.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	rootPool          *x509.CertPool
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func nextSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newPKI(t testing.TB, name string) *testPKI {
	t.Helper()
	now := time.Now()
	p := &testPKI{rootKey: mustKey(t), interKey: mustKey(t)}
	rootTmpl := &x509.Certificate{
		SerialNumber: nextSerial(t), Subject: pkix.Name{CommonName: name + " root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	p.root = mustCert(t, rootTmpl, rootTmpl, &p.rootKey.PublicKey, p.rootKey)
	p.inter = mustCert(t, &x509.Certificate{
		SerialNumber: nextSerial(t), Subject: pkix.Name{CommonName: name + " ica"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}, p.root, &p.interKey.PublicKey, p.rootKey)
	p.rootPool = x509.NewCertPool()
	p.rootPool.AddCert(p.root)
	return p
}

type leafOpts struct {
	cn        string
	dns       string
	eku       x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
}

// leaf issues a leaf from the intermediate and returns it with the chain
// leaf + intermediate (no root), as devices and servers send it.
func (p *testPKI) leaf(t testing.TB, o leafOpts) tls.Certificate {
	t.Helper()
	k := mustKey(t)
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(t), Subject: pkix.Name{CommonName: o.cn},
		NotBefore: o.notBefore, NotAfter: o.notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{o.eku},
	}
	if o.dns != "" {
		tmpl.DNSNames = []string{o.dns}
	}
	c := mustCert(t, tmpl, p.inter, &k.PublicKey, p.interKey)
	return tls.Certificate{Certificate: [][]byte{c.Raw, p.inter.Raw}, PrivateKey: k, Leaf: c}
}
