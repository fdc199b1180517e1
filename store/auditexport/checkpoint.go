package auditexport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"hardbound/store"
	"hardbound/store/atomicfile"
)

// Signature algorithms of checkpoints.
const (
	AlgEd25519 = "Ed25519"
	AlgP256    = "ECDSA-P256-SHA256"
)

// Checkpoint verification failures, matched with errors.Is.
var (
	ErrUnknownKey   = errors.New("auditexport: checkpoint signed by an unknown key")
	ErrBadSignature = errors.New("auditexport: checkpoint signature does not verify")
)

// signedBytes is what a checkpoint's signature covers: a fixed label and
// every field but the signature, one per line, so no two checkpoints share
// their bytes.
func signedBytes(cp *store.AuditCheckpoint) []byte {
	b := []byte("hardbound audit checkpoint v1\n")
	b = strconv.AppendUint(b, cp.Seq, 10)
	b = append(b, '\n')
	b = append(b, cp.Hash.String()...)
	b = append(b, '\n')
	b = cp.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '\n')
	b = append(b, cp.KeyID...)
	b = append(b, '\n')
	b = append(b, cp.Alg...)
	return b
}

// KeyID is the hex SHA-256 of a public key's SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("auditexport: key id: %w", err)
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:]), nil
}

// Signer signs checkpoints with the audit key: any crypto.Signer holding an
// Ed25519 or ECDSA P-256 key, so the key may live in a file (LoadOrCreateKey)
// or in an HSM.
type Signer struct {
	key   crypto.Signer
	id    string
	alg   string
	clock func() time.Time
}

// NewSigner wraps k.
func NewSigner(k crypto.Signer) (*Signer, error) {
	alg, err := algOf(k.Public())
	if err != nil {
		return nil, err
	}
	id, err := KeyID(k.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{key: k, id: id, alg: alg, clock: time.Now}, nil
}

// KeyID identifies the signer's key in its checkpoints.
func (s *Signer) KeyID() string { return s.id }

// Public is the key that verifies the signer's checkpoints.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

func algOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgP256, nil
		}
	}
	return "", fmt.Errorf("auditexport: audit key must be Ed25519 or ECDSA P-256, not %T", pub)
}

// Sign returns a checkpoint of the event (seq, hash), made now.
func (s *Signer) Sign(seq uint64, hash store.Hash) (*store.AuditCheckpoint, error) {
	cp := &store.AuditCheckpoint{V: store.RecordVersion, Seq: seq, Hash: hash,
		Time: s.clock().UTC().Round(0).Truncate(time.Microsecond), KeyID: s.id, Alg: s.alg}
	msg := signedBytes(cp)
	var err error
	switch s.alg {
	case AlgEd25519:
		cp.Sig, err = s.key.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		d := sha256.Sum256(msg)
		cp.Sig, err = s.key.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("auditexport: sign checkpoint %d: %w", seq, err)
	}
	return cp, nil
}

// KeySet holds the public keys checkpoints may be signed with, by key id:
// the current audit key and the rotated ones still trusted.
type KeySet map[string]crypto.PublicKey

// Add trusts pub.
func (ks KeySet) Add(pub crypto.PublicKey) error {
	if _, err := algOf(pub); err != nil {
		return err
	}
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	ks[id] = pub
	return nil
}

// Verify checks cp's signature: ErrUnknownKey or ErrBadSignature.
func (ks KeySet) Verify(cp *store.AuditCheckpoint) error {
	pub, ok := ks[cp.KeyID]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKey, cp.KeyID)
	}
	alg, _ := algOf(pub)
	if cp.Alg != alg {
		return fmt.Errorf("%w: alg %q for a %s key", ErrBadSignature, cp.Alg, alg)
	}
	msg := signedBytes(cp)
	var good bool
	switch k := pub.(type) {
	case ed25519.PublicKey:
		good = ed25519.Verify(k, msg, cp.Sig)
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		good = ecdsa.VerifyASN1(k, d[:], cp.Sig)
	}
	if !good {
		return fmt.Errorf("%w: seq %d", ErrBadSignature, cp.Seq)
	}
	return nil
}

// LoadOrCreateKey reads the audit key from path (PKCS #8 PEM), creating a
// new Ed25519 key there, 0600 in a 0700 directory, when the file does not
// exist. A key file readable by group or others is refused.
func LoadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("auditexport: generate audit key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("auditexport: encode audit key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("auditexport: audit key: %w", err)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := atomicfile.Write(path, pemBytes, 0o600); err != nil {
			return nil, fmt.Errorf("auditexport: write audit key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditexport: audit key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("auditexport: audit key %s is mode %o: must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auditexport: audit key %s: no PKCS #8 PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auditexport: audit key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("auditexport: audit key %s: %T cannot sign", path, k)
	}
	if _, err := algOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadPublicKey reads a PEM public key (PKIX "PUBLIC KEY") or the public
// half of a PEM private key, for trusted_keys and `audit verify --key`.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auditexport: public key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("auditexport: public key %s: no PEM block", path)
	}
	switch blk.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auditexport: public key %s: %w", path, err)
		}
		return pub, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auditexport: public key %s: %w", path, err)
		}
		if s, ok := k.(crypto.Signer); ok {
			return s.Public(), nil
		}
	}
	return nil, fmt.Errorf("auditexport: public key %s: PEM block %q", path, blk.Type)
}

// PublicKeyPEM encodes pub as a PKIX PEM block, what trusted_keys reads.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("auditexport: public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
