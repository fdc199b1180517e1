package scep

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"hardbound/store/atomicfile"
)

// RA file names under <data dir>/scep.
const (
	raDirName  = "scep"
	raKeyFile  = "ra.key"
	raCertFile = "ra.crt"
)

// raValidity is the lifetime of a new RA certificate; it is renewed when
// less than raRenewBefore remains, at the next start.
const (
	raValidity    = 365 * 24 * time.Hour
	raRenewBefore = 30 * 24 * time.Hour
)

// RA is the SCEP registration authority: the RSA key clients encrypt their
// CSRs to and that signs every CertRep. The issuing CA may be ECDSA, which
// CMS key transport cannot use, so the RA has its own RSA key and a
// certificate issued by our CA.
type RA struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// LoadOrCreateRA loads <dir>/scep/ra.key and ra.crt, or creates them: an RSA
// 2048 key (file mode 0600) and a certificate signed by signer for
// digitalSignature + keyEncipherment. The certificate is re-issued for the
// same key when it expires within 30 days or was not issued by the current
// issuing CA.
func LoadOrCreateRA(ctx context.Context, dir string, signer RASigner) (*RA, error) {
	if signer == nil || signer.Issuing() == nil {
		return nil, fmt.Errorf("%w: RA signer is required", ErrConfig)
	}
	raDir := filepath.Join(dir, raDirName)
	if err := os.MkdirAll(raDir, 0o700); err != nil {
		return nil, fmt.Errorf("scep: ra: %w", err)
	}
	keyPath := filepath.Join(raDir, raKeyFile)
	certPath := filepath.Join(raDir, raCertFile)

	key, err := readRAKey(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("scep: ra: generate key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("scep: ra: marshal key: %w", err)
		}
		if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("scep: ra: %w", err)
		}
	case err != nil:
		return nil, err
	}

	cert, err := readRACert(certPath)
	if err == nil && raCertUsable(cert, key, signer.Issuing(), time.Now()) {
		return &RA{Cert: cert, Key: key}, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "hardbound SCEP RA", Organization: signer.Issuing().Subject.Organization},
		NotAfter:    time.Now().Add(raValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
		ExtKeyUsage: nil,
	}
	cert, err = signer.Sign(ctx, tmpl, &key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("scep: ra: sign certificate: %w", err)
	}
	if err := atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return nil, fmt.Errorf("scep: ra: %w", err)
	}
	return &RA{Cert: cert, Key: key}, nil
}

func raCertUsable(cert *x509.Certificate, key *rsa.PrivateKey, issuing *x509.Certificate, now time.Time) bool {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return false
	}
	if now.Before(cert.NotBefore) || now.Add(raRenewBefore).After(cert.NotAfter) {
		return false
	}
	return cert.CheckSignatureFrom(issuing) == nil
}

func readRAKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scep: ra: read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("scep: ra: %s: no PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("scep: ra: parse key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("scep: ra: %s: key is %T, SCEP needs RSA", path, k)
	}
	return rk, nil
}

func readRACert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scep: ra: read certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("scep: ra: %s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("scep: ra: parse certificate: %w", err)
	}
	return c, nil
}
