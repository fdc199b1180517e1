package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hardbound/store/atomicfile"
)

// File layout under the data directory. The whole ca/ directory appears in
// one rename, so a reader sees either no CA or a complete one.
const (
	SubDir      = "ca"
	RootCert    = "root.crt"
	RootKey     = "root.key"
	IssuingCert = "issuing.crt"
	IssuingKey  = "issuing.key"
)

const (
	rootValidityYears    = 10
	issuingValidityYears = 5
	maxPEMFile           = 64 << 10 // a CA cert or key is a few KiB; refuse anything absurd
)

// Key types of a new CA (InitOptions.KeyType).
const (
	// KeyECDSA is ECDSA P-256, the default.
	KeyECDSA = "ecdsa"
	// KeyRSA is RSA-3072. SCEP clients that need RSA throughout the chain
	// GetCACert returns (Debian's scep 2.1 scepclient, micromdm's
	// scepclient without -key-encipherment-selector) need it.
	KeyRSA = "rsa"
)

// rsaBits is the modulus of an RSA CA key: 3072 bits stays above NIST's
// 2030 floor for the CA's lifetime.
const rsaBits = 3072

// InitOptions configures Init.
type InitOptions struct {
	// Dir is the data directory; the CA is written to Dir/ca/.
	Dir string
	// Org is the subject organization; default "hardbound".
	Org string
	// RootCN and IssuingCN are the CAs' common names; default Org + " Root
	// CA" and Org + " Issuing CA".
	RootCN, IssuingCN string
	// KeyType is KeyECDSA (default) or KeyRSA, for both CAs.
	KeyType string
	// RootKeyPath, if set, is where the root key is written (created, mode
	// 0600, never overwritten) instead of Dir/ca/root.key, so it can be
	// carried offline at once: serving needs only the issuing key.
	RootKeyPath string
	// Now is the time source; default time.Now.
	Now func() time.Time
}

func (o *InitOptions) defaults() error {
	if o.Dir == "" {
		return fmt.Errorf("ca: init: %w: Dir is required", ErrInvalidRequest)
	}
	if o.Org == "" {
		o.Org = "hardbound"
	}
	if o.RootCN == "" {
		o.RootCN = o.Org + " Root CA"
	}
	if o.IssuingCN == "" {
		o.IssuingCN = o.Org + " Issuing CA"
	}
	if o.RootCN == o.IssuingCN {
		// Chain building matches issuer to subject: equal names would make
		// the issuing CA look self-issued.
		return fmt.Errorf("ca: init: %w: root and issuing CA names are both %q", ErrInvalidRequest, o.RootCN)
	}
	switch o.KeyType {
	case "":
		o.KeyType = KeyECDSA
	case KeyECDSA, KeyRSA:
	default:
		return fmt.Errorf("ca: init: %w: key type %q (want %s or %s)", ErrInvalidRequest, o.KeyType, KeyECDSA, KeyRSA)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func newCAKey(keyType string) (crypto.Signer, error) {
	if keyType == KeyRSA {
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// Init creates a root CA (10 years) and an issuing CA (5 years, pathlen
// 0), both ECDSA P-256 or both RSA-3072, in Dir/ca/. Dir and Dir/ca are
// 0700, keys 0600 (PKCS#8 PEM), certificates PEM. It returns ErrExists if
// Dir/ca already holds anything (or RootKeyPath exists). The files are
// written into a temporary sibling directory, synced, and renamed into
// place, so a crash never leaves half a CA behind.
//
// Without RootKeyPath the root key is written next to the issuing key so a
// single-box trial works out of the box; Load never reads it, so it can be
// moved offline at any time.
func Init(opts InitOptions) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	final := filepath.Join(opts.Dir, SubDir)
	if err := checkAbsent(final); err != nil {
		return err
	}
	if opts.RootKeyPath != "" {
		abs, err := filepath.Abs(opts.RootKeyPath)
		if err != nil {
			return fmt.Errorf("ca: init: root key: %w", err)
		}
		if absFinal, _ := filepath.Abs(final); strings.HasPrefix(abs, absFinal+string(filepath.Separator)) {
			return fmt.Errorf("ca: init: %w: the root key path %s is inside %s, which serving reads", ErrInvalidRequest, opts.RootKeyPath, final)
		}
		if _, err := os.Lstat(opts.RootKeyPath); err == nil {
			return fmt.Errorf("%w: root key %s", ErrExists, opts.RootKeyPath)
		}
	}

	now := opts.Now()
	rootKey, err := newCAKey(opts.KeyType)
	if err != nil {
		return fmt.Errorf("ca: init: root key: %w", err)
	}
	rootSerial, err := newSerial()
	if err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{Organization: []string{opts.Org}, CommonName: opts.RootCN},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(rootValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return fmt.Errorf("ca: init: root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return fmt.Errorf("ca: init: root certificate: %w", err)
	}

	issKey, err := newCAKey(opts.KeyType)
	if err != nil {
		return fmt.Errorf("ca: init: issuing key: %w", err)
	}
	issSerial, err := newSerial()
	if err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	issTmpl := &x509.Certificate{
		SerialNumber:          issSerial,
		Subject:               pkix.Name{Organization: []string{opts.Org}, CommonName: opts.IssuingCN},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(issuingValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	issDER, err := x509.CreateCertificate(rand.Reader, issTmpl, root, issKey.Public(), rootKey)
	if err != nil {
		return fmt.Errorf("ca: init: issuing certificate: %w", err)
	}

	rootKeyPEM, err := keyPEM(rootKey)
	if err != nil {
		return err
	}
	issKeyPEM, err := keyPEM(issKey)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RootCert, certPEM(rootDER), 0o644},
		{IssuingCert, certPEM(issDER), 0o644},
		{IssuingKey, issKeyPEM, 0o600},
	}
	if opts.RootKeyPath == "" {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{RootKey, rootKeyPEM, 0o600})
	} else {
		// Written first and exclusively: if it cannot be, no CA appears.
		if err := writeSynced(opts.RootKeyPath, rootKeyPEM, 0o600); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: root key %s", ErrExists, opts.RootKeyPath)
			}
			return fmt.Errorf("ca: init: root key: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(opts.RootKeyPath)); err != nil {
			return fmt.Errorf("ca: init: root key: %w", err)
		}
	}
	keepRootKey := false
	defer func() {
		if opts.RootKeyPath != "" && !keepRootKey {
			_ = os.Remove(opts.RootKeyPath)
		}
	}()

	tmp, err := os.MkdirTemp(opts.Dir, ".ca-init-")
	if err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	for _, f := range files {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("ca: init: %w", err)
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	// An empty ca/ left by an operator is removed first (rmdir only removes
	// empty directories). Renaming onto an existing directory fails, which
	// also settles a race between two concurrent Inits: exactly one wins.
	if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrExists, final)
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("%w: %s", ErrExists, final)
		}
		return fmt.Errorf("ca: init: %w", err)
	}
	renamed, keepRootKey = true, true
	if err := atomicfile.SyncDir(opts.Dir); err != nil {
		return fmt.Errorf("ca: init: %w", err)
	}
	return nil
}

// checkAbsent returns ErrExists if dir exists and is not an empty directory.
func checkAbsent(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		// Exists but unreadable or not a directory: never overwrite it.
		if _, statErr := os.Stat(dir); statErr == nil {
			return fmt.Errorf("%w: %s", ErrExists, dir)
		}
		return fmt.Errorf("ca: init: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("%w: %s", ErrExists, dir)
	}
	return nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	// The umask may have narrowed the mode; set it exactly.
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(k crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("ca: init: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Load reads the CA written by Init from dir/ca/ (root.crt, issuing.crt,
// issuing.key; the root key is never read) and checks it with New.
func Load(dir string, opts ...Option) (*CA, error) {
	base := filepath.Join(dir, SubDir)
	root, err := readCert(filepath.Join(base, RootCert))
	if err != nil {
		return nil, err
	}
	issuing, err := readCert(filepath.Join(base, IssuingCert))
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(base, IssuingKey)
	signer, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	c, err := New(issuing, signer, root, opts...)
	if err != nil {
		return nil, fmt.Errorf("ca: load %s: %w", base, err)
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.log.Warn("issuing key is readable by group or others", "path", keyPath, "mode", fi.Mode().Perm().String())
	}
	return c, nil
}

func readPEM(path, wantType string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ca: load: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("ca: load %s: %w", path, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("ca: load %s: file larger than %d bytes", path, maxPEMFile)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("ca: load %s: no PEM block", path)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("ca: load %s: PEM type %q, want %q", path, block.Type, wantType)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("ca: load %s: more than one PEM block", path)
	}
	return block.Bytes, nil
}

func readCert(path string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: load %s: %w", path, err)
	}
	return cert, nil
}

func readKey(path string) (crypto.Signer, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("ca: load %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ca: load %s: key type %T cannot sign", path, k)
	}
	return s, nil
}
