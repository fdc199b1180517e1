package attesttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"hardbound/store/atomicfile"
)

// The files an Authority is saved to; `serve --dev` keeps them in
// data/dev-attest/ so `hardbound bench` can make evidence the dev server
// trusts.
var persistNames = []string{"apple-root", "apple-int", "android-root", "android-int", "tpm-ek-root", "tpm-ak-ca"}

func (a *Authority) cas() []*ca {
	return []*ca{&a.appleRoot, &a.appleInt, &a.androidRoot, &a.androidInt, &a.ekRoot, &a.akCA}
}

// Save writes the authority to dir (0700; each file 0600: they hold keys).
func (a *Authority) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("attesttest: save: %w", err)
	}
	var out []byte
	for i, c := range a.cas() {
		k, err := x509.MarshalPKCS8PrivateKey(c.key)
		if err != nil {
			return fmt.Errorf("attesttest: save %s: %w", persistNames[i], err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Name": persistNames[i]}, Bytes: c.cert.Raw})...)
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Name": persistNames[i]}, Bytes: k})...)
	}
	ak, err := x509.MarshalPKCS8PrivateKey(a.akKey)
	if err != nil {
		return fmt.Errorf("attesttest: save ak: %w", err)
	}
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Name": "ak"}, Bytes: ak})...)
	if err := atomicfile.Write(filepath.Join(dir, "authority.pem"), out, 0o600); err != nil {
		return fmt.Errorf("attesttest: save: %w", err)
	}
	return nil
}

// Load reads an authority written by Save.
func Load(dir string, opts ...Option) (*Authority, error) {
	b, err := os.ReadFile(filepath.Join(dir, "authority.pem"))
	if err != nil {
		return nil, fmt.Errorf("attesttest: load: %w", err)
	}
	a := &Authority{}
	a.now = time.Now
	for _, o := range opts {
		o(a)
	}
	certs := map[string]*x509.Certificate{}
	keys := map[string]crypto.Signer{}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		name := blk.Headers["Name"]
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("attesttest: load %s: %w", name, err)
			}
			certs[name] = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("attesttest: load %s: %w", name, err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("attesttest: load %s: not a signer", name)
			}
			keys[name] = s
		}
	}
	for i, c := range a.cas() {
		n := persistNames[i]
		if certs[n] == nil || keys[n] == nil {
			return nil, fmt.Errorf("attesttest: load: %s missing", n)
		}
		*c = ca{cert: certs[n], key: keys[n]}
	}
	ak, ok := keys["ak"].(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("attesttest: load: ak key missing")
	}
	a.akKey = ak
	return a, nil
}

// LoadOrCreate loads the authority in dir, or creates and saves a new one.
func LoadOrCreate(dir string, opts ...Option) (*Authority, error) {
	a, err := Load(dir, opts...)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return a, err
	}
	if a, err = NewAuthority(opts...); err != nil {
		return nil, err
	}
	return a, a.Save(dir)
}
