package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckCSR(t *testing.T) {
	t.Parallel()
	ed := func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	badSig := func() *x509.CertificateRequest {
		der := makeCSRDER(t, ecKey(t, elliptic.P256()))
		der[len(der)-3] ^= 0xff // inside the signature value
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	tests := []struct {
		name    string
		csr     *x509.CertificateRequest
		wantErr string // substring; empty means accepted
	}{
		{"ok/p256", makeCSR(t, ecKey(t, elliptic.P256())), ""},
		{"ok/p384", makeCSR(t, ecKey(t, elliptic.P384())), ""},
		{"ok/ed25519", makeCSR(t, ed()), ""},
		{"ok/rsa-2048", makeCSR(t, rsa2048()), ""},
		{"ok/basic-constraints-not-ca", makeCSR(t, ecKey(t, elliptic.P256()), basicConstraintsExt(t, false)), ""},
		{"fail/rsa-1024", makeCSR(t, rsa1024()), "RSA key is 1024 bits, minimum is 2048"},
		{"fail/p224", makeCSR(t, ecKey(t, elliptic.P224())), "curve P-224 not allowed"},
		{"fail/p521", makeCSR(t, ecKey(t, elliptic.P521())), "curve P-521 not allowed"},
		{"fail/ca-request", makeCSR(t, ecKey(t, elliptic.P256()), basicConstraintsExt(t, true)), "requests a CA certificate"},
		{"fail/malformed-basic-constraints", makeCSR(t, ecKey(t, elliptic.P256()),
			pkix.Extension{Id: oidBasicConstraints, Value: []byte{0x05, 0x00}}), "malformed basicConstraints"},
		{"fail/bad-signature", badSig(), "signature does not verify"},
		{"fail/nil", nil, "no CSR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckCSR(tt.csr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckCSR rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCSRPolicy) {
				t.Fatalf("CheckCSR error = %v, want ErrCSRPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CheckCSR error = %q, want it to say %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckPublicKey(t *testing.T) {
	t.Parallel()
	// Big RSA moduli are built, not generated: only the size is checked.
	rsaOfBits := func(bits int) *rsa.PublicKey {
		return &rsa.PublicKey{N: new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits)), big.NewInt(1)), E: 65537}
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecKey(t, elliptic.P256()).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     crypto.PublicKey
		wantErr string
	}{
		{"ok/rsa-2048", rsaOfBits(2048), ""},
		{"ok/rsa-8192", rsaOfBits(8192), ""},
		{"ok/p256", ecKey(t, elliptic.P256()).Public(), ""},
		{"ok/p384", ecKey(t, elliptic.P384()).Public(), ""},
		{"ok/ed25519", edPub, ""},
		{"fail/rsa-2047", rsaOfBits(2047), "minimum is 2048"},
		{"fail/rsa-8200", rsaOfBits(8200), "maximum is 8192"},
		{"fail/rsa-nil-modulus", &rsa.PublicKey{E: 3}, "empty RSA"},
		{"fail/p224", ecKey(t, elliptic.P224()).Public(), "P-224"},
		{"fail/ecdsa-no-curve", &ecdsa.PublicKey{}, "without a curve"},
		{"fail/ed25519-short", ed25519.PublicKey(edPub[:16]), "16 bytes"},
		{"fail/ecdh-key", x25519.PublicKey(), "not allowed"},
		{"fail/nil", nil, "no public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckPublicKey(tt.pub)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPublicKey rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCSRPolicy) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckPublicKey error = %v, want ErrCSRPolicy saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	key := ecKey(t, elliptic.P256())
	csr := makeCSR(t, key)
	other := ecKey(t, elliptic.P256())
	tests := []struct {
		name        string
		req         IssueRequest
		wantErr     error
		wantCN      string
		wantNotAftr time.Time
	}{
		{name: "ok/csr-default-validity", req: IssueRequest{CSR: csr, DeviceID: "dev-1"},
			wantCN: "dev-1", wantNotAftr: testNow.Add(DefaultValidity)},
		{name: "ok/csr-and-matching-key", req: IssueRequest{CSR: csr, PublicKey: key.Public(), DeviceID: "dev-1", Profile: Profile{Name: "p", Validity: time.Hour}},
			wantCN: "dev-1", wantNotAftr: testNow.Add(time.Hour)},
		{name: "ok/key-only", req: IssueRequest{PublicKey: key.Public(), DeviceID: "SERIAL:C02X/Y z"},
			wantCN: "SERIAL:C02X/Y z", wantNotAftr: testNow.Add(DefaultValidity)},
		{name: "ok/explicit-subject", req: IssueRequest{CSR: csr, DeviceID: "dev-2", Subject: pkix.Name{CommonName: "laptop 7", Organization: []string{"Acme"}}},
			wantCN: "laptop 7", wantNotAftr: testNow.Add(DefaultValidity)},
		{name: "ok/validity-capped-at-issuing", req: IssueRequest{CSR: csr, DeviceID: "dev-3", Profile: Profile{Validity: 20 * 365 * 24 * time.Hour}},
			wantCN: "dev-3", wantNotAftr: testNow.AddDate(5, 0, 0)},
		{name: "fail/key-mismatch", req: IssueRequest{CSR: csr, PublicKey: other.Public(), DeviceID: "dev-1"}, wantErr: ErrCSRPolicy},
		{name: "fail/rsa-1024-key-only", req: IssueRequest{PublicKey: rsa1024().Public(), DeviceID: "dev-1"}, wantErr: ErrCSRPolicy},
		{name: "fail/no-key", req: IssueRequest{DeviceID: "dev-1"}, wantErr: ErrInvalidRequest},
		{name: "fail/empty-device-id", req: IssueRequest{CSR: csr}, wantErr: ErrInvalidRequest},
		{name: "fail/control-char-device-id", req: IssueRequest{CSR: csr, DeviceID: "a\nb"}, wantErr: ErrInvalidRequest},
		{name: "fail/long-device-id", req: IssueRequest{CSR: csr, DeviceID: strings.Repeat("x", maxDeviceIDLen+1)}, wantErr: ErrInvalidRequest},
		{name: "fail/negative-validity", req: IssueRequest{CSR: csr, DeviceID: "d", Profile: Profile{Validity: -time.Hour}}, wantErr: ErrInvalidRequest},
	}
	pool := c.Pool()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert, err := c.Issue(context.Background(), tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Issue error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			checkDeviceCert(t, c, cert, tt.req.DeviceID, tt.wantCN, tt.wantNotAftr)
			if !keysEqual(cert.PublicKey, key.Public()) {
				t.Error("issued for the wrong key")
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("client cert does not verify to issuing CA: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("device cert verifies for serverAuth")
			}
		})
	}
}

func checkDeviceCert(t *testing.T, c *CA, cert *x509.Certificate, deviceID, wantCN string, wantNotAfter time.Time) {
	t.Helper()
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || len(cert.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKU = %v %v, want clientAuth only", cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %b, want digitalSignature only", cert.KeyUsage)
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Errorf("basicConstraints valid=%v isCA=%v, want present and not CA", cert.BasicConstraintsValid, cert.IsCA)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != DeviceURI(deviceID).String() {
		t.Errorf("URIs = %v, want [%s]", cert.URIs, DeviceURI(deviceID))
	}
	if id, ok := DeviceID(cert); !ok || id != deviceID {
		t.Errorf("DeviceID = %q,%v, want %q", id, ok, deviceID)
	}
	if len(cert.DNSNames) != 0 || len(cert.EmailAddresses) != 0 || len(cert.IPAddresses) != 0 {
		t.Error("CSR-requested SANs were copied")
	}
	if cert.Subject.CommonName != wantCN {
		t.Errorf("CN = %q, want %q", cert.Subject.CommonName, wantCN)
	}
	if s := cert.SerialNumber; s.Sign() <= 0 || s.BitLen() > 128 {
		t.Errorf("serial %s not in [1, 2^128)", s)
	}
	if want := testNow.Add(-time.Minute); !cert.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %s, want %s", cert.NotBefore, want)
	}
	if !cert.NotAfter.Equal(wantNotAfter) {
		t.Errorf("NotAfter = %s, want %s", cert.NotAfter, wantNotAfter)
	}
	if cert.NotAfter.After(c.Issuing().NotAfter) {
		t.Error("leaf outlives issuing CA")
	}
	if len(cert.SubjectKeyId) != 20 || string(cert.AuthorityKeyId) != string(c.Issuing().SubjectKeyId) {
		t.Errorf("SKI=%x AKI=%x, want 20-byte SKI and AKI=%x", cert.SubjectKeyId, cert.AuthorityKeyId, c.Issuing().SubjectKeyId)
	}
}

func TestIssueSerialsUnique(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	pub := ecKey(t, elliptic.P256()).Public()
	seen := map[string]bool{}
	maxBits := 0
	for range 200 {
		cert, err := c.Issue(context.Background(), IssueRequest{PublicKey: pub, DeviceID: "d"})
		if err != nil {
			t.Fatal(err)
		}
		s := SerialString(cert.SerialNumber)
		if seen[s] {
			t.Fatalf("duplicate serial %s", s)
		}
		seen[s] = true
		maxBits = max(maxBits, cert.SerialNumber.BitLen())
	}
	// 200 uniform 128-bit draws all below 2^120 has probability 2^-1600.
	if maxBits <= 120 {
		t.Errorf("largest serial has %d bits; serials are not drawn from 128 bits", maxBits)
	}
}

func TestIssueOutsideCAValidity(t *testing.T) {
	t.Parallel()
	c, dir := newTestCA(t)
	pub := ecKey(t, elliptic.P256()).Public()
	for name, now := range map[string]time.Time{
		"fail/after-ca-expiry":    c.Issuing().NotAfter.Add(time.Second),
		"fail/before-ca-validity": c.Issuing().NotBefore.Add(-time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cc, err := Load(dir, WithClock(fixedClock(now)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cc.Issue(context.Background(), IssueRequest{PublicKey: pub, DeviceID: "d"}); !errors.Is(err, ErrCAExpired) {
				t.Fatalf("Issue error = %v, want ErrCAExpired", err)
			}
		})
	}
}

func TestIssueCanceledContext(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Issue(ctx, IssueRequest{PublicKey: ecKey(t, elliptic.P256()).Public(), DeviceID: "d"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Issue error = %v, want context.Canceled", err)
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	pub := ecKey(t, elliptic.P256()).Public()
	tests := []struct {
		name    string
		tmpl    *x509.Certificate
		wantErr bool
	}{
		{"ok/ra-cert", &x509.Certificate{Subject: pkix.Name{CommonName: "SCEP RA"}, NotAfter: testNow.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, false},
		{"ok/capped", &x509.Certificate{Subject: pkix.Name{CommonName: "long"}, NotAfter: testNow.AddDate(50, 0, 0)}, false},
		{"fail/ca-template", &x509.Certificate{Subject: pkix.Name{CommonName: "sub"}, NotAfter: testNow.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}, true},
		{"fail/raw-basic-constraints", &x509.Certificate{NotAfter: testNow.Add(time.Hour),
			ExtraExtensions: []pkix.Extension{basicConstraintsExt(t, true)}}, true},
		{"fail/no-not-after", &x509.Certificate{Subject: pkix.Name{CommonName: "x"}}, true},
		{"fail/nil", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var serialBefore *big.Int
			if tt.tmpl != nil {
				serialBefore = tt.tmpl.SerialNumber
			}
			cert, err := c.Sign(context.Background(), tt.tmpl, pub)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Sign succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if tt.tmpl.SerialNumber != serialBefore {
				t.Error("Sign mutated the caller's template")
			}
			if cert.IsCA || !cert.BasicConstraintsValid {
				t.Error("signed cert is a CA or lacks basicConstraints")
			}
			if cert.NotAfter.After(c.Issuing().NotAfter) {
				t.Error("signed cert outlives the issuing CA")
			}
			if err := cert.CheckSignatureFrom(c.Issuing()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestIssueServerTLS(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	tc, err := c.IssueServerTLS(context.Background(), []string{"radius.example", "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificate) != 2 || string(tc.Certificate[1]) != string(c.Issuing().Raw) {
		t.Fatalf("chain has %d certs, want leaf + issuing (no root)", len(tc.Certificate))
	}
	leaf := tc.Leaf
	if leaf.Subject.CommonName != "radius.example" || leaf.NotAfter != testNow.Add(DefaultServerValidity) {
		t.Errorf("CN=%q NotAfter=%s", leaf.Subject.CommonName, leaf.NotAfter)
	}
	if _, ok := tc.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("key is %T, want ECDSA", tc.PrivateKey)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	inter := x509.NewCertPool()
	inter.AddCert(c.Issuing())
	for _, name := range []string{"radius.example", "localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter, CurrentTime: testNow}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	// The key pair must be usable as-is by crypto/tls.
	if _, err := tls.X509KeyPair(pemChain(tc), pemKey(t, tc)); err != nil {
		t.Errorf("tls.X509KeyPair: %v", err)
	}

	if _, err := c.IssueServerTLS(context.Background(), nil, nil, 0); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("no names: error = %v, want ErrInvalidRequest", err)
	}
}

func pemChain(tc tls.Certificate) []byte {
	var out []byte
	for _, der := range tc.Certificate {
		out = append(out, certPEM(der)...)
	}
	return out
}

func pemKey(t *testing.T, tc tls.Certificate) []byte {
	t.Helper()
	b, err := keyPEM(tc.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRL(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	revokedAt := testNow.Add(-time.Hour).Truncate(time.Second)
	entries := []x509.RevocationListEntry{
		{SerialNumber: big.NewInt(0xabc), RevocationTime: revokedAt, ReasonCode: 1}, // keyCompromise
		{SerialNumber: big.NewInt(0xdef), RevocationTime: revokedAt, ReasonCode: 4}, // superseded
		{SerialNumber: big.NewInt(0x123), RevocationTime: revokedAt, ReasonCode: 0}, // unspecified
	}
	next := testNow.Add(24 * time.Hour)
	der, err := c.CRL(context.Background(), entries, big.NewInt(42), next)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(c.Issuing()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if crl.Number.Int64() != 42 || !crl.NextUpdate.Equal(next) || !crl.ThisUpdate.Equal(testNow) {
		t.Errorf("number=%s this=%s next=%s", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if string(crl.AuthorityKeyId) != string(c.Issuing().SubjectKeyId) {
		t.Error("CRL AKI does not name the issuing CA")
	}
	if len(crl.RevokedCertificateEntries) != len(entries) {
		t.Fatalf("%d entries, want %d", len(crl.RevokedCertificateEntries), len(entries))
	}
	for i, got := range crl.RevokedCertificateEntries {
		want := entries[i]
		if got.SerialNumber.Cmp(want.SerialNumber) != 0 || got.ReasonCode != want.ReasonCode || !got.RevocationTime.Equal(want.RevocationTime) {
			t.Errorf("entry %d = %s/%d/%s, want %s/%d/%s", i, got.SerialNumber, got.ReasonCode, got.RevocationTime,
				want.SerialNumber, want.ReasonCode, want.RevocationTime)
		}
	}

	bad := []struct {
		name    string
		entries []x509.RevocationListEntry
		number  *big.Int
		next    time.Time
	}{
		{"fail/nil-number", nil, nil, next},
		{"fail/zero-number", nil, big.NewInt(0), next},
		{"fail/huge-number", nil, new(big.Int).Lsh(big.NewInt(1), 160), next},
		{"fail/next-update-in-past", nil, big.NewInt(1), testNow.Add(-time.Second)},
		{"fail/reason-7", []x509.RevocationListEntry{{SerialNumber: big.NewInt(1), RevocationTime: revokedAt, ReasonCode: 7}}, big.NewInt(1), next},
		{"fail/reason-11", []x509.RevocationListEntry{{SerialNumber: big.NewInt(1), RevocationTime: revokedAt, ReasonCode: 11}}, big.NewInt(1), next},
		{"fail/no-serial", []x509.RevocationListEntry{{RevocationTime: revokedAt}}, big.NewInt(1), next},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := c.CRL(context.Background(), tt.entries, tt.number, tt.next); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("CRL error = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestDeviceURIRoundTrip(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	pub := ecKey(t, elliptic.P256()).Public()
	ids := []string{"simple", "with space", "a/b:c?d#e%f", "ünïcödé-设备", "urn:hardbound:device:nested", "00008030-001A2B3C4D5E6F"}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			if want := "urn:hardbound:device:"; !strings.HasPrefix(DeviceURI(id).String(), want) {
				t.Errorf("DeviceURI(%q) = %s, want prefix %s", id, DeviceURI(id), want)
			}
			cert, err := c.Issue(context.Background(), IssueRequest{PublicKey: pub, DeviceID: id})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := DeviceID(cert)
			if !ok || got != id {
				t.Errorf("DeviceID = %q,%v, want %q", got, ok, id)
			}
		})
	}
}

func TestDeviceIDAbsent(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	tc, err := c.IssueServerTLS(context.Background(), []string{"x"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	twoURIs := *tc.Leaf
	twoURIs.URIs = []*url.URL{DeviceURI("a"), DeviceURI("b")}
	for name, cert := range map[string]*x509.Certificate{"no-uri": tc.Leaf, "nil": nil, "two-device-uris": &twoURIs} {
		if id, ok := DeviceID(cert); ok {
			t.Errorf("%s: DeviceID = %q, want none", name, id)
		}
	}
}

func TestSerialString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   *big.Int
		want string
	}{
		{big.NewInt(0xABCDEF), "abcdef"},
		{big.NewInt(0x0102), "102"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := SerialString(tt.in); got != tt.want {
			t.Errorf("SerialString(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMetricsRecordsOutcomes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must(t, Init(InitOptions{Dir: dir}))
	m := &recMetrics{}
	c, err := Load(dir, WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = c.Issue(ctx, IssueRequest{PublicKey: ecKey(t, elliptic.P256()).Public(), DeviceID: "d"})
	_, _ = c.Issue(ctx, IssueRequest{PublicKey: ecKey(t, elliptic.P224()).Public(), DeviceID: "d"})
	_, _ = c.Issue(ctx, IssueRequest{DeviceID: "d"})
	want := []string{"device/ok", "device/policy", "device/error"}
	if strings.Join(m.got, ",") != strings.Join(want, ",") {
		t.Errorf("metrics = %v, want %v", m.got, want)
	}
}

type recMetrics struct{ got []string }

func (r *recMetrics) Signed(kind, result string) { r.got = append(r.got, kind+"/"+result) }

func BenchmarkIssue(b *testing.B) {
	c, _ := newTestCA(b)
	csr := makeCSR(b, ecKey(b, elliptic.P256()))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Issue(ctx, IssueRequest{CSR: csr, DeviceID: "bench-device"}); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzCSR(f *testing.F) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []crypto.Signer{ecKey(f, elliptic.P256()), ecKey(f, elliptic.P224()), edKey} {
		f.Add(makeCSRDER(f, k))
	}
	f.Add(makeCSRDER(f, ecKey(f, elliptic.P256()), basicConstraintsExt(f, true)))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		if err := CheckCSR(csr); err != nil && !errors.Is(err, ErrCSRPolicy) {
			t.Fatalf("CheckCSR error does not wrap ErrCSRPolicy: %v", err)
		}
	})
}
