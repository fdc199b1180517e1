package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// Key size bounds for RSA. Below 2048 is breakable in practice; above 8192
// only costs the verifier (every EAP-TLS handshake) for no security gain.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// CheckCSR applies the CSR policy: the CSR must be self-signed by its key,
// the key must pass CheckPublicKey, and it must not ask for a CA certificate.
// Other requested extensions are allowed in the CSR but never copied into the
// issued certificate. Every rejection wraps ErrCSRPolicy.
func CheckCSR(csr *x509.CertificateRequest) error {
	if csr == nil {
		return fmt.Errorf("%w: no CSR", ErrCSRPolicy)
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return err
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: CSR signature does not verify with its public key: %v", ErrCSRPolicy, err)
	}
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidBasicConstraints) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		rest, err := asn1.Unmarshal(ext.Value, &bc)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("%w: CSR requests a malformed basicConstraints extension", ErrCSRPolicy)
		}
		if bc.IsCA {
			return fmt.Errorf("%w: CSR requests a CA certificate (basicConstraints cA=TRUE)", ErrCSRPolicy)
		}
	}
	return nil
}

// CheckPublicKey accepts RSA keys of 2048..8192 bits, ECDSA keys on P-256 or
// P-384, and Ed25519 keys; it rejects everything else with ErrCSRPolicy.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case nil:
		return fmt.Errorf("%w: no public key (unsupported or unparsable key algorithm)", ErrCSRPolicy)
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return fmt.Errorf("%w: empty RSA public key", ErrCSRPolicy)
		}
		bits := k.N.BitLen()
		if bits < minRSABits {
			return fmt.Errorf("%w: RSA key is %d bits, minimum is %d", ErrCSRPolicy, bits, minRSABits)
		}
		if bits > maxRSABits {
			return fmt.Errorf("%w: RSA key is %d bits, maximum is %d", ErrCSRPolicy, bits, maxRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return fmt.Errorf("%w: ECDSA public key without a curve", ErrCSRPolicy)
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s not allowed, want P-256 or P-384", ErrCSRPolicy, k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrCSRPolicy, len(k), ed25519.PublicKeySize)
		}
		return nil
	default:
		return fmt.Errorf("%w: public key type %T not allowed, want RSA, ECDSA P-256/P-384 or Ed25519", ErrCSRPolicy, pub)
	}
}
