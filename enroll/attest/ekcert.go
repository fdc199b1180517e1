package attest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
)

// EKIdentity is what a verified EK certificate proves: a TPM of that
// manufacturer, model and version holds the EK private key.
type EKIdentity struct {
	Cert      *x509.Certificate
	PublicKey crypto.PublicKey // RSA or ECDSA
	// SHA256 is the hex SHA-256 of the EK's SubjectPublicKeyInfo DER: the
	// TPM's device id (docs/attestation.md §3.3 step 4).
	SHA256                       string
	Manufacturer, Model, Version string
}

// VerifyEK verifies an EK certificate (DER; a TCG NV header in front is
// tolerated) with the TCG EK Credential Profile checks and its chain to
// Roots.TPM, through chain and Roots.TPMIntermediates, as ActivateTPM
// does. It is for an attestation CA that certifies AKs after its own
// credential activation (enroll/akca). Errors wrap ErrBadAttestation, and
// ErrNotConfigured without Roots.TPM.
func (v *Verifier) VerifyEK(ctx context.Context, der []byte, chain [][]byte) (*EKIdentity, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	ek, pub, err := v.verifyEK(der, chain)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(ek.RawSubjectPublicKeyInfo)
	return &EKIdentity{
		Cert: ek.Certificate, PublicKey: pub, SHA256: hex.EncodeToString(sum[:]),
		Manufacturer: ek.TpmManufacturer, Model: ek.TpmModel, Version: ek.TpmVersion,
	}, nil
}
