package attesttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/legacy/tpm2"
)

// tpmGeneratedMagic is TPM_GENERATED_VALUE ("\xffTCG").
const tpmGeneratedMagic = 0xff544347

// Attribute sets seen on real TPMs (docs/attestation.md §3.4).
const (
	appKeyAttrs = tpm2.FlagSign | tpm2.FlagFixedTPM | tpm2.FlagFixedParent |
		tpm2.FlagSensitiveDataOrigin | tpm2.FlagUserWithAuth
	akAttrs = appKeyAttrs | tpm2.FlagRestricted
)

// tpmPublic builds a TPMT_PUBLIC for a signing key.
func tpmPublic(pub crypto.PublicKey, attrs tpm2.KeyProp) (tpm2.Public, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		curve, size := tpm2.CurveNISTP256, 32
		switch k.Curve {
		case elliptic.P256():
		case elliptic.P384():
			curve, size = tpm2.CurveNISTP384, 48
		default:
			return tpm2.Public{}, fmt.Errorf("%w: curve %s", errUnsupportedKey, k.Curve.Params().Name)
		}
		return tpm2.Public{
			Type:       tpm2.AlgECC,
			NameAlg:    tpm2.AlgSHA256,
			Attributes: attrs,
			ECCParameters: &tpm2.ECCParams{
				Sign:    &tpm2.SigScheme{Alg: tpm2.AlgECDSA, Hash: tpm2.AlgSHA256},
				CurveID: curve,
				Point:   tpm2.ECPoint{XRaw: k.X.FillBytes(make([]byte, size)), YRaw: k.Y.FillBytes(make([]byte, size))},
			},
		}, nil
	case *rsa.PublicKey:
		exp := uint32(k.E)
		if k.E == 65537 {
			exp = 0 // TPM encodes the default exponent as 0
		}
		return tpm2.Public{
			Type:       tpm2.AlgRSA,
			NameAlg:    tpm2.AlgSHA256,
			Attributes: attrs,
			RSAParameters: &tpm2.RSAParams{
				Sign:        &tpm2.SigScheme{Alg: tpm2.AlgRSASSA, Hash: tpm2.AlgSHA256},
				KeyBits:     uint16(k.N.BitLen()),
				ExponentRaw: exp,
				ModulusRaw:  k.N.Bytes(),
			},
		}, nil
	}
	return tpm2.Public{}, fmt.Errorf("%w: %T", errUnsupportedKey, pub)
}

// softCertify plays TPM2_Certify: the AK signs a TPMS_ATTEST naming pub's
// TPMT_PUBLIC with the given qualifying data.
func softCertify(pub crypto.PublicKey, ak *ecdsa.PrivateKey, extra []byte, exportable, rawSig bool) (pubArea, certInfo, sig []byte, err error) {
	attrs := appKeyAttrs
	if exportable {
		attrs &^= tpm2.FlagFixedTPM | tpm2.FlagFixedParent
	}
	kp, err := tpmPublic(pub, attrs)
	if err != nil {
		return nil, nil, nil, err
	}
	if pubArea, err = kp.Encode(); err != nil {
		return nil, nil, nil, fmt.Errorf("attesttest: pubArea: %w", err)
	}
	keyName, err := kp.Name()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("attesttest: key name: %w", err)
	}
	akp, err := tpmPublic(&ak.PublicKey, akAttrs)
	if err != nil {
		return nil, nil, nil, err
	}
	akName, err := akp.Name()
	if err != nil {
		return nil, nil, nil, err
	}
	ad := tpm2.AttestationData{
		Magic:               tpmGeneratedMagic,
		Type:                tpm2.TagAttestCertify,
		QualifiedSigner:     akName,
		ExtraData:           extra,
		ClockInfo:           tpm2.ClockInfo{Clock: 1000, ResetCount: 1, RestartCount: 0, Safe: 1},
		FirmwareVersion:     0x0001000200030004,
		AttestedCertifyInfo: &tpm2.CertifyInfo{Name: keyName, QualifiedName: keyName},
	}
	if certInfo, err = ad.Encode(); err != nil {
		return nil, nil, nil, fmt.Errorf("attesttest: certInfo: %w", err)
	}
	sum := sha256.Sum256(certInfo)
	if rawSig {
		sig, err = ecdsa.SignASN1(rand.Reader, ak, sum[:])
		return pubArea, certInfo, sig, err
	}
	r, s, err := ecdsa.Sign(rand.Reader, ak, sum[:])
	if err != nil {
		return nil, nil, nil, err
	}
	sig, err = tpm2.Signature{Alg: tpm2.AlgECDSA, ECC: &tpm2.SignatureECC{HashAlg: tpm2.AlgSHA256, R: r, S: new(big.Int).Set(s)}}.Encode()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("attesttest: sig: %w", err)
	}
	return pubArea, certInfo, sig, nil
}
