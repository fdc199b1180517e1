package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// newTestCA initialises a CA in a temp dir at testNow and loads it.
func newTestCA(tb testing.TB) (*CA, string) {
	tb.Helper()
	dir := tb.TempDir()
	if err := Init(InitOptions{Dir: dir, Org: "Test", Now: fixedClock(testNow)}); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	c, err := Load(dir, WithClock(fixedClock(testNow)))
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return c, dir
}

// rsa1024 is generated once: RSA key generation is the slow part of the suite.
var rsa1024 = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

var rsa2048 = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func ecKey(tb testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func makeCSR(tb testing.TB, key crypto.Signer, extra ...pkix.Extension) *x509.CertificateRequest {
	tb.Helper()
	der := makeCSRDER(tb, key, extra...)
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		tb.Fatal(err)
	}
	return csr
}

func makeCSRDER(tb testing.TB, key crypto.Signer, extra ...pkix.Extension) []byte {
	tb.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "requested-cn", Organization: []string{"Evil"}},
		DNSNames:        []string{"evil.example"},
		ExtraExtensions: extra,
	}, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func basicConstraintsExt(tb testing.TB, isCA bool) pkix.Extension {
	tb.Helper()
	v, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{isCA})
	if err != nil {
		tb.Fatal(err)
	}
	return pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: v}
}

func TestInitLoadRoundTrip(t *testing.T) {
	t.Parallel()
	c, dir := newTestCA(t)

	root, iss := c.Root(), c.Issuing()
	if !root.IsCA || !iss.IsCA {
		t.Fatal("root and issuing must be CAs")
	}
	if iss.MaxPathLen != 0 || !iss.MaxPathLenZero {
		t.Errorf("issuing pathlen = %d (zero=%v), want 0", iss.MaxPathLen, iss.MaxPathLenZero)
	}
	if got, want := root.NotAfter, testNow.AddDate(10, 0, 0); !got.Equal(want) {
		t.Errorf("root NotAfter = %s, want %s", got, want)
	}
	if got, want := iss.NotAfter, testNow.AddDate(5, 0, 0); !got.Equal(want) {
		t.Errorf("issuing NotAfter = %s, want %s", got, want)
	}
	for name, cert := range map[string]*x509.Certificate{"root": root, "issuing": iss} {
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s key is %T, want ECDSA P-256", name, cert.PublicKey)
		}
		if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
			t.Errorf("%s serial %s out of range", name, cert.SerialNumber)
		}
		if len(cert.SubjectKeyId) == 0 {
			t.Errorf("%s has no SubjectKeyId", name)
		}
	}
	if iss.KeyUsage&x509.KeyUsageCertSign == 0 || iss.KeyUsage&x509.KeyUsageCRLSign == 0 {
		t.Errorf("issuing KeyUsage = %b, want certSign|crlSign", iss.KeyUsage)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := iss.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow}); err != nil {
		t.Errorf("issuing does not verify under root: %v", err)
	}

	// A second Load sees the same CA.
	c2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Issuing().Equal(iss) || !c2.Root().Equal(root) {
		t.Error("second Load returned different certificates")
	}
	if !keysEqual(c2.Signer().Public(), iss.PublicKey) {
		t.Error("loaded signer does not match the issuing key")
	}
}

func TestInitFileModes(t *testing.T) {
	t.Parallel()
	_, dir := newTestCA(t)
	want := map[string]os.FileMode{
		SubDir:                             0o700 | os.ModeDir,
		filepath.Join(SubDir, RootKey):     0o600,
		filepath.Join(SubDir, IssuingKey):  0o600,
		filepath.Join(SubDir, RootCert):    0o644,
		filepath.Join(SubDir, IssuingCert): 0o644,
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s mode = %s, want %s", name, fi.Mode(), mode)
		}
	}
	// No temp directory is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != SubDir {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("data dir holds %v, want only %q", names, SubDir)
	}
}

func TestInitRefusesOverwrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
	}{
		{"fail/existing-ca", func(t *testing.T, dir string) {
			if err := Init(InitOptions{Dir: dir}); err != nil {
				t.Fatal(err)
			}
		}, ErrExists},
		{"fail/stray-file-in-ca-dir", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, SubDir), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, SubDir, IssuingKey), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrExists},
		{"fail/ca-path-is-a-file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, SubDir), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrExists},
		{"ok/empty-ca-dir", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, SubDir), 0o700); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"ok/missing-data-dir", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			var before []byte
			if tt.want != nil {
				before, _ = os.ReadFile(filepath.Join(dir, SubDir, IssuingKey))
			}
			err := Init(InitOptions{Dir: dir})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Init error = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				after, _ := os.ReadFile(filepath.Join(dir, SubDir, IssuingKey))
				if string(before) != string(after) {
					t.Error("refused Init changed the existing issuing key")
				}
				return
			}
			if _, err := Load(dir); err != nil {
				t.Errorf("Load after Init: %v", err)
			}
		})
	}
}

func TestInitConcurrentExactlyOneWins(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = Init(InitOptions{Dir: dir}) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrExists):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d Inits succeeded, want exactly 1", ok)
	}
	if _, err := Load(dir); err != nil {
		t.Errorf("Load: %v", err)
	}
}

func TestLoadRejectsBadMaterial(t *testing.T) {
	t.Parallel()
	// A second, unrelated CA supplies mismatching files.
	_, other := newTestCA(t)
	tests := []struct {
		name   string
		mutate func(t *testing.T, caDir string)
	}{
		{"fail/missing-issuing-key", func(t *testing.T, caDir string) {
			must(t, os.Remove(filepath.Join(caDir, IssuingKey)))
		}},
		{"fail/key-from-other-ca", func(t *testing.T, caDir string) {
			copyFile(t, filepath.Join(other, SubDir, IssuingKey), filepath.Join(caDir, IssuingKey))
		}},
		{"fail/root-from-other-ca", func(t *testing.T, caDir string) {
			copyFile(t, filepath.Join(other, SubDir, RootCert), filepath.Join(caDir, RootCert))
		}},
		{"fail/cert-in-key-file", func(t *testing.T, caDir string) {
			copyFile(t, filepath.Join(caDir, IssuingCert), filepath.Join(caDir, IssuingKey))
		}},
		{"fail/garbage-cert", func(t *testing.T, caDir string) {
			must(t, os.WriteFile(filepath.Join(caDir, IssuingCert), []byte("not pem"), 0o644))
		}},
		{"fail/root-as-issuing-with-issuing-key", func(t *testing.T, caDir string) {
			copyFile(t, filepath.Join(caDir, RootCert), filepath.Join(caDir, IssuingCert))
		}},
		{"fail/oversized-file", func(t *testing.T, caDir string) {
			must(t, os.WriteFile(filepath.Join(caDir, RootCert), make([]byte, maxPEMFile+1), 0o644))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			must(t, Init(InitOptions{Dir: dir}))
			tt.mutate(t, filepath.Join(dir, SubDir))
			if c, err := Load(dir); err == nil {
				t.Fatalf("Load succeeded with issuing %s", c.Issuing().Subject)
			}
		})
	}
}

func TestNewRejectsMismatch(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t)
	other, _ := newTestCA(t)
	tests := []struct {
		name    string
		issuing *x509.Certificate
		signer  crypto.Signer
		root    *x509.Certificate
		wantErr bool
	}{
		{"ok/matching", c.Issuing(), c.Signer(), c.Root(), false},
		{"fail/wrong-signer", c.Issuing(), other.Signer(), c.Root(), true},
		{"fail/wrong-root", c.Issuing(), c.Signer(), other.Root(), true},
		{"fail/nil-root", c.Issuing(), c.Signer(), nil, true},
		{"fail/nil-signer", c.Issuing(), nil, c.Root(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.issuing, tt.signer, tt.root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o600))
}
