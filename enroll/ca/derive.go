package ca

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrNotDerivable is returned by DeriveKey for a signer whose private key
// cannot be read (a key held by an HSM or a KMS).
var ErrNotDerivable = errors.New("ca: the issuing key cannot be read to derive keys from")

// DeriveKey returns n octets derived from the issuing CA's private key
// with HKDF-SHA256 (RFC 5869): the key's PKCS #8 DER is the input keying
// material, the issuing certificate's SHA-256 the salt and purpose the
// info, so each purpose gets an independent key and nobody without the
// CA key learns any of them. Every node that issues holds the same CA
// files (docs/ha.md), so every node derives the same key: a secret the
// nodes must agree on needs no file or database record of its own.
func (c *CA) DeriveKey(purpose string, n int) ([]byte, error) {
	if purpose == "" {
		return nil, errors.New("ca: derive key: a purpose is required")
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotDerivable, err)
	}
	salt := sha256.Sum256(c.issuing.Raw)
	k, err := hkdf.Key(sha256.New, der, salt[:], "hardbound "+purpose, n)
	if err != nil {
		return nil, fmt.Errorf("ca: derive key: %w", err)
	}
	return k, nil
}
